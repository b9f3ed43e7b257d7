"""One sample format for every dataset, and the batch that training and evaluation consume.

A **sample** (what `ADE20K`, `SegmentationFolder`, `HFSegmentationDataset` and `Shapes` return)
is a plain dict:

| key | value |
|---|---|
| `image` | float32 `[3, H, W]`, normalised with the ImageNet mean/std, after the transforms |
| `semantic` | int64 `[H, W]` class ids `0..K-1`, 255 = ignore, aligned with `image` |
| `targets` | `{"labels": int64 [N], "masks": bool [N, H, W]}`, the matcher's format |
| `image_size` | `(H, W)` of `image` |
| `original_size` | `(H0, W0)` of the file on disk, before any transform |
| `original_semantic` | int64 `[H0, W0]`, the labels at the original size (evaluate against these) |
| `instance` | int64 `[H, W]` segment ids (only for data with instances, e.g. `Shapes`) |
| `name` | str, the file stem or the row index |

A **batch** (`collate(samples)`) pads every image bottom/right to a common size that is a
multiple of 32:

| key | value |
|---|---|
| `images` | float32 `[B, 3, Hp, Wp]`, padding 0 (the mean colour after normalisation) |
| `targets` | list of B dicts, `masks` padded with False to `[N_b, Hp, Wp]` |
| `semantic` | int64 `[B, Hp, Wp]`, padding 255 |
| `pixel_mask` | bool `[B, Hp, Wp]`, True on real pixels |
| `image_sizes` | list of B `(H, W)`: pass to `maskformer.postprocess` as `image_sizes` |
| `original_sizes` | list of B `(H0, W0)`: pass as `original_sizes` |
| `original_semantic` | list of B int64 `[H0, W0]` |
| `instance` | int64 `[B, Hp, Wp]`, padding 0 (when the samples have it) |
| `names` | list of B str |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import tv_tensors

from .io import DataError
from .targets import instance_to_targets, reduce_labels as reduce_label_map, semantic_to_targets

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "make_sample", "collate", "check_labels", "check_ignore_index"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_ignore_index(num_classes: int, ignore_index: int, where: str = "maskformer/data") -> None:
    """Refuse an `ignore_index` that is also a class id: pixels of that class would be ignored without a word."""
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"{where}: ignore_index={ignore_index} is also a class id ({num_classes} classes, 0..{num_classes - 1}), "
            f"so that class would be ignored; pass an ignore_index outside 0..{num_classes - 1} (e.g. "
            f"ignore_index=65535 for 16-bit label maps)"
        )


def check_labels(semantic: Tensor, num_classes: int, ignore_index: int, name: str, reduce_labels: bool = False) -> None:
    """Refuse label values that are no class, naming the file and reporting the values as stored in it.

    `semantic` holds the values read from the file. Without `reduce_labels` they must be
    `0..num_classes-1` or `ignore_index`; with it (0 = unlabelled, class l stored as l + 1, the
    ADE20K rule) they must be `0..num_classes`.
    """
    check_ignore_index(num_classes, ignore_index)
    if reduce_labels:
        bad = (semantic < 0) | (semantic > num_classes)
        expected = f"0..{num_classes} (0 = unlabelled, class l stored as l + 1, as reduce_labels=True reads them)"
        advice = "or set reduce_labels=False if the classes are stored as 0..K-1"
    else:
        bad = (semantic < 0) | ((semantic >= num_classes) & (semantic != ignore_index))
        expected = f"0..{num_classes - 1} (and {ignore_index} = ignore)"
        advice = "or set reduce_labels=True if 0 means 'unlabelled' and classes start at 1"
    if bad.any():
        values = semantic[bad].unique().tolist()  # sorted
        raise DataError(f"maskformer/data: {name} has label values {values[:10]} outside {expected}; fix the label "
                        f"file, pass the right class_names, {advice}")


def make_sample(
    image: Tensor,
    semantic: Tensor,
    transforms: Callable | None = None,
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
    reduce_labels: bool = False,
    instance: Tensor | None = None,
    id_to_class: Mapping[int, int] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """Build a sample (format in the module docstring) from uint8 `image` `[3, H0, W0]` and
    `semantic` `[H0, W0]`.

    With `num_classes`, the values of `semantic` are checked as stored (:func:`check_labels`);
    `reduce_labels` then maps 0 -> `ignore_index` and l -> l - 1 (the ADE20K rule).
    `transforms` are called as `transforms(image, semantic)` (or `(image, semantic, instance)`)
    on `tv_tensors`. With `instance` and `id_to_class` the targets are one mask per segment
    (instance / panoptic training); otherwise one mask per class (an `instance` map is then only
    carried along, e.g. for panoptic evaluation).
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise DataError(f"maskformer/data: {name}: image must be [3, H, W], got {tuple(image.shape)}")
    if image.shape[-2:] != semantic.shape[-2:]:
        raise DataError(
            f"maskformer/data: {name}: image size {tuple(image.shape[-2:])} differs from annotation size "
            f"{tuple(semantic.shape[-2:])}; the label must have exactly the image's height and width "
            f"(re-export it, or resize it with nearest-neighbour interpolation)"
        )
    if num_classes is not None:
        check_labels(semantic, num_classes, ignore_index, name, reduce_labels)
    if reduce_labels:
        semantic = reduce_label_map(semantic, ignore_index)
    original_size = tuple(semantic.shape[-2:])
    inputs = [tv_tensors.Image(image), tv_tensors.Mask(semantic.long())]
    if instance is not None:
        inputs.append(tv_tensors.Mask(instance.long()))
    if transforms is not None:
        inputs = transforms(*inputs)
    image_t, semantic_t = inputs[0].as_subclass(Tensor), inputs[1].as_subclass(Tensor)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    sample = {
        "image": (image_t.float() / 255 - mean) / std,  # [3, H, W]
        "semantic": semantic_t,  # [H, W]
        "image_size": tuple(semantic_t.shape[-2:]),
        "original_size": original_size,
        "original_semantic": semantic.long(),
        "name": name,
    }
    if instance is not None:
        sample["instance"] = inputs[2].as_subclass(Tensor)
    if id_to_class is not None:
        if instance is None:
            raise ValueError(f"maskformer/data: {name}: id_to_class needs an instance map")
        sample["targets"] = instance_to_targets(sample["instance"], id_to_class)
    else:
        sample["targets"] = semantic_to_targets(semantic_t, ignore_index)
    return sample


def _pad(x: Tensor, size: tuple[int, int], value: float) -> Tensor:
    return F.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]), value=value)


def collate(samples: Sequence[Mapping[str, Any]], size_divisibility: int = 32, ignore_index: int = 255) -> dict[str, Any]:
    """Stack samples into a batch padded bottom/right to a multiple of `size_divisibility`.

    Use as `DataLoader(dataset, batch_size=..., collate_fn=collate)`. Format in the module docstring.
    """
    if not samples:
        raise ValueError("maskformer/data/collate.py: collate got an empty list of samples")
    d = size_divisibility
    H = -(-max(s["image"].shape[-2] for s in samples) // d) * d
    W = -(-max(s["image"].shape[-1] for s in samples) // d) * d
    pixel_mask = torch.zeros(len(samples), H, W, dtype=torch.bool)
    for b, s in enumerate(samples):
        pixel_mask[b, : s["image"].shape[-2], : s["image"].shape[-1]] = True
    batch = {
        "images": torch.stack([_pad(s["image"], (H, W), 0.0) for s in samples]),  # [B, 3, Hp, Wp]
        "targets": [
            {"labels": s["targets"]["labels"], "masks": _pad(s["targets"]["masks"], (H, W), False)}
            for s in samples
        ],
        "semantic": torch.stack([_pad(s["semantic"], (H, W), ignore_index) for s in samples]),  # [B, Hp, Wp]
        "pixel_mask": pixel_mask,
        "image_sizes": [tuple(s["image_size"]) for s in samples],
        "original_sizes": [tuple(s["original_size"]) for s in samples],
        "original_semantic": [s["original_semantic"] for s in samples],
        "names": [s.get("name", "") for s in samples],
    }
    if all("instance" in s for s in samples):
        batch["instance"] = torch.stack([_pad(s["instance"], (H, W), 0) for s in samples])
    return batch
