"""Loading any checkpoint of this package by name: ``from_pretrained(dir_or_hub_id)`` builds the model
its config names (a MaskFormer or the per-pixel baseline). The file formats and the Hub download are
in :mod:`maskformer.pretrained`."""

from __future__ import annotations

import os

from torch import nn

from .builders import build_model
from .convert import load_converted
from .pretrained import read_pretrained, save_pretrained

__all__ = ["from_pretrained", "save_pretrained"]


def from_pretrained(name_or_path: str | os.PathLike, revision: str | None = None) -> nn.Module:
    """Build the model a checkpoint describes and load its weights, with no missing or unexpected key.

    Our own directories give a :class:`~maskformer.MaskFormer` or a
    :class:`~maskformer.baseline.PerPixelBaseline`, as their ``architecture`` says; Hugging Face
    checkpoints are always MaskFormers.

    Args:
        name_or_path: a directory (ours or Hugging Face layout) or a Hub id such as
            ``"facebook/maskformer-swin-tiny-ade"`` (downloaded with ``huggingface_hub``).
        revision: a Hub branch, tag or commit (Hub ids only).

    The model is returned in eval mode.
    """
    config, weights, source = read_pretrained(name_or_path, revision)
    model = build_model(config)
    load_converted(model, weights, source=source)
    return model.eval()
