"""The original ADE20K augmentation, on `torchvision.transforms.v2` and `tv_tensors` (the `INPUT.*` keys
of the original `Base-ADE20K-150.yaml`).

Every transform here takes an image (`tv_tensors.Image`, uint8 `[3, H, W]`) and any number of
label maps (`tv_tensors.Mask`, `[H, W]`) and moves them together: masks are resized with nearest
neighbour (the rows and columns detectron2 picks, :func:`resize_labels`), cropped and flipped like
the image, and padded with the ignore value. The *first* Mask is taken to be the semantic map
(the category-area crop reads it). Random choices use torch's global generator, so
`torch.manual_seed` makes a pipeline repeatable.

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
import torch.nn.functional as F
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
    "resize_labels",
    "rgb_to_hsv_opencv",
    "hsv_to_rgb_opencv",
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


class _Transform(v2.Transform):
    """A `v2.Transform` written with the hooks torchvision calls from 0.21 on, `make_params` and
    `transform`; torchvision 0.19 and 0.20 call them `_get_params` and `_transform`."""

    def _get_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return self.make_params(flat_inputs)

    def _transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self.transform(inpt, params)


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


class ResizeShortestEdge(_Transform):
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
        if isinstance(inpt, tv_tensors.Mask):
            return tv_tensors.wrap(resize_labels(inpt.as_subclass(Tensor), params["size"]), like=inpt)
        return self._call_kernel(TF.resize, inpt, size=params["size"], antialias=True)


def resize_labels(labels: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of label maps `[..., H, W]` -> `[..., h, w]`, exactly as the original.

    detectron2 reads label PNGs as float64 and resizes them with `F.interpolate(mode="nearest")`,
    which computes source row `floor(i * H / h)` from a double-precision scale. torchvision resizes
    int64 masks as float32, with a float scale: at 512 -> 614 its output row 307 reads input row
    255, where 307 * 512 / 614 is exactly 256. Ids up to 2**53 survive the float64 round trip.
    """
    maps = labels.reshape(-1, 1, 1, *labels.shape[-2:]).double()  # [N, 1, 1, H, W]
    resized = [F.interpolate(m, size=list(size), mode="nearest") for m in maps]  # one 2-D map at a time, as detectron2
    return torch.cat(resized).reshape(*labels.shape[:-2], *size).to(labels.dtype)


class RandomCropCategoryArea(_Transform):
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


class ColorJitterSSD(_Transform):
    """The SSD photometric distortion used by MaskFormer (detectron2's `ColorAugSSDTransform`), on uint8 RGB.

    Brightness (add uniform(-32, 32)), then in random order either contrast, saturation, hue or
    saturation, hue, contrast; each step applied with probability 1/2. Contrast multiplies pixel
    values by uniform(0.5, 1.5); saturation multiplies the 8-bit HSV saturation by uniform(0.5, 1.5);
    hue adds an integer in -18..18 to the 8-bit hue (OpenCV's 180 steps: up to 36 degrees), modulo 180.
    Labels pass through.

    Each step rounds as the original does. Brightness, contrast and the saturation factor are
    applied in float32, clipped to 0..255 and truncated to uint8 (`astype(np.uint8)`). Saturation
    and hue go through OpenCV's 8-bit HSV (`cv2.cvtColor`), rebuilt here in torch: RGB -> HSV with
    OpenCV's integer arithmetic, HSV -> RGB with the float32 formula of its AVX2 code path (`1 - s * f`
    fused into one multiply-add, then truncation). Both equal OpenCV 4.5.5 and 4.14 on every input
    (all 2**24 colours, all 180 * 256 * 256 HSV values) in pixels that OpenCV's vector code handles:
    it takes each row in blocks of 32 pixels and rounds to nearest on the last `width % 32` pixels.
    There, after a saturation or hue step, a value here can be one below OpenCV's. A 512-wide crop,
    the ADE20K training size, has no such pixels.
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

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor)  # [3, H, W] uint8
        if params["brightness"] is not None:
            x = _to_uint8(x.float() + params["brightness"])
        if params["contrast_first"]:
            x = self._contrast(x, params["contrast"])
        x = self._saturation(x, params["saturation"])
        x = self._hue(x, params["hue"])
        if not params["contrast_first"]:
            x = self._contrast(x, params["contrast"])
        return tv_tensors.wrap(x, like=inpt)

    @staticmethod
    def _contrast(x: Tensor, factor: float | None) -> Tensor:
        return x if factor is None else _to_uint8(x.float() * factor)

    @staticmethod
    def _saturation(x: Tensor, factor: float | None) -> Tensor:
        if factor is None:
            return x
        h, s, v = rgb_to_hsv_opencv(x)
        return hsv_to_rgb_opencv(h, _to_uint8(s.float() * factor), v)

    @staticmethod
    def _hue(x: Tensor, delta: int | None) -> Tensor:
        if delta is None:
            return x
        h, s, v = rgb_to_hsv_opencv(x)
        return hsv_to_rgb_opencv((h.long() + delta) % 180, s, v)


def _to_uint8(x: Tensor) -> Tensor:
    """float -> uint8 as numpy's `np.clip(x, 0, 255).astype(np.uint8)`: clipped, then truncated."""
    return x.clamp(0, 255).to(torch.uint8)


def _opencv_hsv_tables() -> tuple[Tensor, Tensor]:
    """OpenCV's fixed-point reciprocals (12 fractional bits), int32 `[256]`: `255 / v` for the
    saturation and `30 / d` for the hue (0 at 0)."""
    i = torch.arange(1, 256, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.int32)
    s_div = torch.cat([zero, ((255 << 12) / i).round().int()])
    h_div = torch.cat([zero, ((180 << 12) / (6 * i)).round().int()])
    return s_div, h_div


def rgb_to_hsv_opencv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """uint8 RGB `[3, H, W]` -> OpenCV's 8-bit HSV (`cv2.COLOR_RGB2HSV`): H in 0..179, S and V in 0..255,
    each uint8 `[H, W]`, with OpenCV's integer arithmetic (bit-exact)."""
    r, g, b = rgb.int().unbind(0)  # [H, W] each
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    s_div, h_div = _opencv_hsv_tables()
    s = (diff * s_div[v.long()] + (1 << 11)) >> 12  # round(255 * diff / v)
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))  # hue * diff / 60 degrees
    h = (h * h_div[diff.long()] + (1 << 11)) >> 12  # round(30 * h / diff); the shift floors negative values too
    h = torch.where(h < 0, h + 180, h)
    return h.to(torch.uint8), s.to(torch.uint8), v.to(torch.uint8)


def hsv_to_rgb_opencv(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """OpenCV's 8-bit HSV `[H, W]` each (H in 0..179) -> uint8 RGB `[3, H, W]` (`cv2.COLOR_HSV2RGB`),
    with the float32 arithmetic of OpenCV's AVX2 path: `1 - s * f` in one fused multiply-add, then
    truncation (see :class:`ColorJitterSSD` for where OpenCV rounds instead)."""
    h = h.float() * (6 / 180)  # [H, W], 0..6: sector + fraction
    s, v = s.float() * (1 / 255), v.float() * (1 / 255)
    sector = h.floor()
    f = h - sector
    fused = lambda a, b: (1 - a.double() * b.double()).float()  # noqa: E731 - 1 - a*b rounded once, as an FMA
    p, q, t = v * (1 - s), v * fused(s, f), v * fused(s, 1 - f)
    # sector: 0       1       2       3       4       5
    #   R     v       q       p       p       t       v
    #   G     t       v       v       q       p       p
    #   B     p       p       t       v       v       q
    table = torch.stack([v, p, q, t])  # [4, H, W]
    picks = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]])  # [3 channels, 6 sectors]
    rgb = table.gather(0, picks[:, sector.long()])  # [3, H, W]
    return _to_uint8(rgb * 255)


class PadTo(_Transform):
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
    """The original ADE20K training augmentation (`INPUT.*` of the original `Base-ADE20K-150.yaml`).

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

