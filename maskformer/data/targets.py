"""Label maps -> the matcher's targets: one binary mask and one class label per segment.

The matcher and the loss take, per image, `{"labels": int64 [N], "masks": bool [N, H, W]}`.

- Semantic training (ADE20K): one mask per class present, ignore pixels in no mask
  (:func:`semantic_to_targets`).
- Instance / panoptic training: one mask per segment id, with an id -> class mapping
  (:func:`instance_to_targets`); ids missing from the mapping (e.g. 0 = unlabelled) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["reduce_labels", "semantic_to_targets", "instance_to_targets"]


def reduce_labels(labels: Tensor, ignore_index: int = 255) -> Tensor:
    """ADE20K's label rule: 0 ("other") -> `ignore_index`, l -> l - 1. `[H, W]` -> `[H, W]` int64."""
    labels = labels.long()
    return torch.where(labels == 0, ignore_index, labels - 1)


def semantic_to_targets(semantic: Tensor, ignore_index: int = 255) -> dict[str, Tensor]:
    """A semantic map `[H, W]` of class ids -> `labels` `[N]` (sorted classes present) and `masks` `[N, H, W]`.

    Pixels equal to `ignore_index` belong to no mask (they count as background in the loss).
    """
    labels = semantic.unique()
    labels = labels[labels != ignore_index].long()  # [N]
    masks = semantic[None] == labels[:, None, None]  # [N, H, W]
    return {"labels": labels, "masks": masks}


def instance_to_targets(segments: Tensor, id_to_class: Mapping[int, int]) -> dict[str, Tensor]:
    """A map of segment ids `[H, W]` and `{segment id: class}` -> `labels` `[N]` and `masks` `[N, H, W]`.

    Works for instance maps (things only) and panoptic maps (stuff regions carry an id too).
    Segments are listed in increasing id; ids not present in the map are skipped, and pixels
    whose id is not in `id_to_class` belong to no mask.
    """
    ids = [i for i in segments.unique().tolist() if i in id_to_class]
    ids_tensor = torch.tensor(ids, dtype=segments.dtype)
    labels = torch.tensor([int(id_to_class[i]) for i in ids], dtype=torch.long)  # [N]
    masks = segments[None] == ids_tensor[:, None, None]  # [N, H, W]
    return {"labels": labels, "masks": masks}
