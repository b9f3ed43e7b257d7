"""The output type every model of this package returns (a module of its own, so that the models,
the loss and the checkpoint code can all import it without importing each other)."""

from __future__ import annotations

from typing import Any

__all__ = ["MaskFormerOutput"]


class MaskFormerOutput(dict):
    """A dict whose keys are also attributes: ``out["pred_logits"] is out.pred_logits``.

    Keys: ``pred_logits [B, Q, K+1]``, ``pred_masks [B, Q, ceil(H/4), ceil(W/4)]`` and ``aux_outputs``, a
    list with one ``{"pred_logits", "pred_masks"}`` per earlier decoder layer (first layer first).
    The per-pixel baseline (:class:`maskformer.baseline.PerPixelBaseline`) returns only
    ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"MaskFormerOutput has no field {name!r}; fields: {list(self)}") from None
