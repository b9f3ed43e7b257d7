"""The original COCO panoptic augmentation: DETR's flip, resize and random crop.

MaskFormer trains COCO panoptic with DETR's recipe (the original config's
``INPUT.DATASET_MAPPER_NAME: detr_panoptic``, facebookresearch/MaskFormer
`mask_former/data/dataset_mappers/detr_panoptic_dataset_mapper.py`), not with the ADE20K one:

1. horizontal flip with probability 0.5;
2. with probability 0.5: resize the short side to one of 400, 500, 600 (no cap on the long side), then
   crop a random ``h x w`` window with ``h, w`` drawn uniformly from ``INPUT.CROP.SIZE = (384, 600)``
   (each at most the image side; detectron2's ``RandomCrop("absolute_range")``);
3. resize the short side to one of ``INPUT.MIN_SIZE_TRAIN = (480, 512, ..., 800)``, long side at most
   ``INPUT.MAX_SIZE_TRAIN`` (1333, detectron2's default; 1000 in the Swin-L config).

No colour jitter and no padding to a fixed size. Like :mod:`maskformer.data.transforms`, the transforms
take an image and any number of masks (semantic map, segment numbers) and move them together; random
choices use torch's global generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .transforms import ResizeShortestEdge, _image_size, _Transform

__all__ = ["COCO_PANOPTIC_TRAIN_SHORT_EDGES", "RandomCropAbsoluteRange", "detr_panoptic_transforms"]

COCO_PANOPTIC_TRAIN_SHORT_EDGES = tuple(range(480, 801, 32))  # orig: INPUT.MIN_SIZE_TRAIN (480, 512, ..., 800)
CROP_SHORT_EDGES = (400, 500, 600)  # fixed in the original mapper (DETR's values), not a config key
NO_LIMIT = 1 << 30  # detectron2's ResizeShortestEdge default max_size is sys.maxsize


class RandomCropAbsoluteRange(_Transform):
    """Crop a random window whose height and width are drawn uniformly from ``[low, high]`` (each at most the
    image's side), at a uniformly random position: detectron2's ``RandomCrop("absolute_range", (low, high))``."""

    def __init__(self, low: int = 384, high: int = 600):
        super().__init__()
        if not 1 <= low <= high:
            raise ValueError(f"maskformer/data/coco_transforms.py: crop range ({low}, {high}) must have "
                             f"1 <= low <= high")
        self.low, self.high = low, high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        H, W = _image_size(flat_inputs)
        h = int(torch.randint(min(H, self.low), min(H, self.high) + 1, ()))
        w = int(torch.randint(min(W, self.low), min(W, self.high) + 1, ()))
        top, left = int(torch.randint(0, H - h + 1, ())), int(torch.randint(0, W - w + 1, ()))
        return {"top": top, "left": left, "height": h, "width": w}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return TF.crop(inpt, **params)
        return inpt


def detr_panoptic_transforms(short_edges: Sequence[int] = COCO_PANOPTIC_TRAIN_SHORT_EDGES, max_size: int = 1333,
                             crop_range: tuple[int, int] = (384, 600)) -> v2.Compose:
    """The COCO panoptic training augmentation of the original (module docstring)."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomApply([ResizeShortestEdge(CROP_SHORT_EDGES, NO_LIMIT), RandomCropAbsoluteRange(*crop_range)], p=0.5),
        ResizeShortestEdge(tuple(short_edges), max_size),
    ])
