"""The original ADE20K augmentation, on `torchvision.transforms.v2` and `tv_tensors` (REFERENCE §5).

Every transform here takes an image (`tv_tensors.Image`, uint8 `[3, H, W]`) and any number of
label maps (`tv_tensors.Mask`, `[H, W]`) and moves them together: masks are resized with nearest
neighbour, cropped and flipped like the image, and padded with the ignore value. The *first*
Mask is taken to be the semantic map (the category-area crop reads it). Random choices use
torch's global generator, so `torch.manual_seed` makes a pipeline repeatable.

- :func:`train_transforms`: shortest edge chosen from 256..1024 (max 2048), random 512x512 crop
  with the category-area constraint, SSD colour jitter, horizontal flip, pad to 512 (image 128,
  labels 255). The detectron2 config of MaskFormer's ADE20K runs.
- :func:`eval_transforms`: shortest edge 512 (max 2048); batches are padded to 32 by `collate`.

Normalisation is not a transform: :func:`maskformer.data.make_sample` always applies it last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "ADE20K_TRAIN_SHORT_EDGES",
    "shortest_edge_size",
    "ResizeShortestEdge",
    "RandomCropCategoryArea",
    "ColorJitterSSD",
    "PadTo",
    "train_transforms",
    "eval_transforms",
]

# 512 x (0.5, 0.6, ..., 2.0): the original's `int(x * 0.1 * 512) for x in range(5, 21)`
ADE20K_TRAIN_SHORT_EDGES = tuple(int(x * 0.1 * 512) for x in range(5, 21))


def _image_size(flat_inputs: list[Any]) -> tuple[int, int]:
    for x in flat_inputs:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)):
            return tuple(x.shape[-2:])
    raise TypeError("maskformer/data/transforms.py: pass a tv_tensors.Image or tv_tensors.Mask")


def _choice(n: int) -> int:
    return int(torch.randint(n, ()).item())


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def shortest_edge_size(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """`(H, W)` after scaling the short side to `short_edge`, unless that makes the long side exceed
    `max_size` (then the long side is `max_size`); rounded to the nearest integer as in detectron2.

    Shared by :class:`ResizeShortestEdge` and evaluation (`maskformer.evaluation`), so that test-time
    sizes are exactly the ones the transforms produce.
    """
    scale = short_edge / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class ResizeShortestEdge(v2.Transform):
    """Resize so that the short side is one of `short_edges` (chosen uniformly), the long side at
    most `max_size`; sizes rounded to the nearest integer as in detectron2.

    Example: `(480, 640)` with short edge 512 -> `(512, 683)`.
    """

    def __init__(self, short_edges: int | Sequence[int], max_size: int = 2048):
        super().__init__()
        self.short_edges = (short_edges,) if isinstance(short_edges, int) else tuple(short_edges)
        self.max_size = max_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _image_size(flat_inputs)
        short = self.short_edges[_choice(len(self.short_edges))]
        return {"size": list(shortest_edge_size(h, w, short, self.max_size))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"], antialias=True)  # masks: nearest


class RandomCropCategoryArea(v2.Transform):
    """Random crop of `crop_size` (clipped to the image) in which no single category covers more
    than `single_category_max_area` of the labelled pixels (detectron2's
    `RandomCrop_CategoryAreaConstraint`): up to `max_tries` crops are drawn and the first that
    passes (at least two categories, the largest below the ratio) is used, else the last one.
    Pixels equal to `ignore_index` are not counted. With the ADE20K setting 1.0 the constraint
    can never bind, so, as in detectron2, one plain random crop is drawn.
    """

    def __init__(self, crop_size: int | tuple[int, int] = 512, single_category_max_area: float = 1.0,
                 ignore_index: int = 255, max_tries: int = 10):
        super().__init__()
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.single_category_max_area = single_category_max_area
        self.ignore_index = ignore_index
        self.max_tries = max_tries

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _image_size(flat_inputs)
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        semantic = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        tries = self.max_tries if self.single_category_max_area < 1.0 and semantic is not None else 1
        for _ in range(tries):
            top, left = _choice(h - ch + 1), _choice(w - cw + 1)
            if tries == 1:
                break
            crop = semantic[..., top : top + ch, left : left + cw].flatten()
            counts = crop[crop != self.ignore_index].unique(return_counts=True)[1]
            if len(counts) > 1 and counts.max() < counts.sum() * self.single_category_max_area:
                break
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.crop, inpt, **params)


class ColorJitterSSD(v2.Transform):
    """The SSD photometric distortion used by MaskFormer (`ColorAugSSDTransform`), on uint8 RGB.

    Brightness (add uniform(-32, 32)), then in random order either contrast, saturation, hue or
    saturation, hue, contrast; each step applied with probability 1/2. Contrast multiplies pixel
    values by uniform(0.5, 1.5); saturation multiplies the HSV saturation by uniform(0.5, 1.5)
    (keeping hue and value); hue shifts by up to 18 of OpenCV's 180 hue steps (36 degrees).
    Values are clipped to 0..255 after each step. Labels pass through.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, brightness_delta: float = 32, contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), hue_delta: int = 18):
        super().__init__()
        self.brightness_delta, self.contrast, self.saturation, self.hue_delta = brightness_delta, contrast, saturation, hue_delta

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        coin = lambda: bool(torch.randint(2, ()).item())  # noqa: E731
        return {
            "brightness": _uniform(-self.brightness_delta, self.brightness_delta) if coin() else None,
            "contrast_first": coin(),
            "contrast": _uniform(*self.contrast) if coin() else None,
            "saturation": _uniform(*self.saturation) if coin() else None,
            "hue": int(torch.randint(-self.hue_delta, self.hue_delta + 1, ()).item()) if coin() else None,
        }

    @staticmethod
    def _scale_saturation(x: Tensor, factor: float) -> Tensor:
        """Multiply HSV saturation by `factor` in float RGB `[3, H, W]` (0..255), hue and value kept.

        With V = max and S = (V - min) / V, keeping hue means every channel keeps its relative
        position between min and max, so c' = V - (V - c) * S' / S with S' = min(S * factor, 1).
        """
        value = x.max(0).values  # [H, W]
        spread = value - x.min(0).values  # [H, W], V * S
        ratio = torch.minimum(torch.full_like(value, factor), value / spread.clamp(min=1e-6))  # S'/S
        return value - (value - x) * ratio

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor).float()  # [3, H, W], 0..255
        clip = lambda t: t.clamp(0, 255).round()  # noqa: E731 - the original casts back to uint8 after each step
        if params["brightness"] is not None:
            x = clip(x + params["brightness"])
        if params["contrast_first"]:
            x = self._contrast_step(x, params, clip)
        x = self._saturation_step(x, params, clip)
        x = self._hue_step(x, params, clip)
        if not params["contrast_first"]:
            x = self._contrast_step(x, params, clip)
        return tv_tensors.wrap(x.to(torch.uint8), like=inpt)

    def _contrast_step(self, x: Tensor, params: dict[str, Any], clip) -> Tensor:
        return clip(x * params["contrast"]) if params["contrast"] is not None else x

    def _saturation_step(self, x: Tensor, params: dict[str, Any], clip) -> Tensor:
        return clip(self._scale_saturation(x, params["saturation"])) if params["saturation"] is not None else x

    def _hue_step(self, x: Tensor, params: dict[str, Any], clip) -> Tensor:
        if params["hue"] is None:
            return x
        return clip(TF.adjust_hue(x / 255, params["hue"] / 180) * 255)


class PadTo(v2.Transform):
    """Pad bottom/right to at least `size` (and/or to a multiple of `size_divisibility`).

    The image is filled with `image_fill` (128, mid-grey before normalisation, as the original),
    every Mask with `ignore_index`, so padded pixels are never a class.
    """

    def __init__(self, size: int | tuple[int, int] | None = None, size_divisibility: int = 1,
                 image_fill: int = 128, ignore_index: int = 255):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else size
        self.size_divisibility = size_divisibility
        self.image_fill, self.ignore_index = image_fill, ignore_index

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _image_size(flat_inputs)
        th, tw = (max(h, self.size[0]), max(w, self.size[1])) if self.size else (h, w)
        d = self.size_divisibility
        th, tw = -(-th // d) * d, -(-tw // d) * d
        return {"padding": [0, 0, tw - w, th - h]}  # left, top, right, bottom

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else self.image_fill
        return self._call_kernel(TF.pad, inpt, padding=params["padding"], fill=fill)


def train_transforms(crop_size: int = 512, short_edges: Sequence[int] | None = None, max_size: int = 2048,
                     single_category_max_area: float = 1.0, ignore_index: int = 255) -> v2.Compose:
    """The original ADE20K training augmentation (REFERENCE §5).

    `short_edges` defaults to `crop_size x (0.5, 0.6, ..., 2.0)` (256..1024 for 512; the Swin-B/L
    640 recipe: `train_transforms(640, max_size=2560)`).
    """
    if short_edges is None:
        short_edges = tuple(int(x * 0.1 * crop_size) for x in range(5, 21))
    return v2.Compose([
        ResizeShortestEdge(short_edges, max_size),
        RandomCropCategoryArea(crop_size, single_category_max_area, ignore_index),
        ColorJitterSSD(),
        v2.RandomHorizontalFlip(),
        PadTo(crop_size, ignore_index=ignore_index),
    ])


def eval_transforms(short_edge: int = 512, max_size: int = 2048) -> v2.Compose:
    """Evaluation: shortest edge `short_edge` (max `max_size`); padding to 32 is done by `collate`."""
    return v2.Compose([ResizeShortestEdge(short_edge, max_size)])

