"""Datasets by name, for the command line, the trainer and evaluation: ``build_dataset("ade20k", "val")``.

Every dataset returned here has ``class_names``, ``num_classes`` and ``palette`` (one RGB triple per
class), and returns samples in the format of :mod:`maskformer.data.collate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from torch.utils.data import Dataset, Subset

from .ade20k import ADE20K
from .shapes import Shapes

__all__ = ["build_dataset", "DATASETS"]

DATASETS = ("shapes", "ade20k")
SPLITS = {"train": "train", "training": "train", "val": "val", "validation": "val"}

# Shapes defaults: small enough for CPU training in minutes. Validation uses another seed, so no
# validation image is a training image (Shapes draws sample i from (seed, i)).
SHAPES_DEFAULTS = {"train": 2000, "val": 100}
SHAPES_IMAGE_SIZE = 64
SHAPES_NUM_CLASSES = 7
SHAPES_VAL_SEED_OFFSET = 10_000


class FirstSamples(Subset):
    """The first ``num_samples`` of a dataset, keeping its ``class_names``, ``num_classes`` and ``palette``."""

    def __init__(self, dataset: Dataset, num_samples: int):
        super().__init__(dataset, range(min(num_samples, len(dataset))))

    @property
    def class_names(self) -> Sequence[str]:
        return self.dataset.class_names

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def palette(self) -> Sequence[tuple[int, int, int]]:
        return self.dataset.palette


def build_dataset(name: str, split: str, *, root: str | Path | None = None, transforms: Callable | None = None,
                  num_samples: int | None = None, image_size: int | None = None, num_classes: int | None = None,
                  seed: int = 0) -> Dataset:
    """A dataset by name.

    Args:
        name: "shapes" (synthetic, no download) or "ade20k" (ADE20K-150).
        split: "train" / "training" or "val" / "validation".
        root: ADE20K only: the ``ADEChallengeData2016`` folder (or its parent); None loads
            ``scene_parse_150`` from the Hugging Face Hub (needs internet, or the ``datasets`` cache).
        transforms: e.g. ``train_transforms()``; None keeps images at their original size (evaluation).
        num_samples: dataset length. Shapes: default 2000 (train) / 100 (val); ADE20K: the first
            ``num_samples`` images (default all).
        image_size: Shapes only: image side (default 64).
        num_classes: Shapes: K including background (default 7); ADE20K: must be None or 150.
        seed: Shapes only: the train split uses ``seed``, the val split ``seed + 10000``.
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"maskformer/data/build.py: unknown dataset {name!r}; choose one of {DATASETS}")
    if split.lower() not in SPLITS:
        raise ValueError(f"maskformer/data/build.py: unknown split {split!r} for {name!r}; choose one of {tuple(SPLITS)}")
    split = SPLITS[split.lower()]
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"maskformer/data/build.py: num_samples={num_samples}; pass a positive number or None")

    if key == "shapes":
        if root is not None:
            raise ValueError(f"maskformer/data/build.py: the shapes dataset is generated and takes no root (got {root}); "
                             f"drop --data-root or choose --dataset ade20k")
        return Shapes(
            num_samples=num_samples if num_samples is not None else SHAPES_DEFAULTS[split],
            image_size=image_size if image_size is not None else SHAPES_IMAGE_SIZE,
            num_classes=num_classes if num_classes is not None else SHAPES_NUM_CLASSES,
            seed=seed if split == "train" else seed + SHAPES_VAL_SEED_OFFSET,
            transforms=transforms,
        )

    if image_size is not None:
        raise ValueError(f"maskformer/data/build.py: image_size={image_size} applies to shapes only; ADE20K images keep "
                         f"their sizes, resize them with transforms (e.g. train_transforms(crop_size))")
    if num_classes not in (None, 150):
        raise ValueError(f"maskformer/data/build.py: ADE20K-150 has 150 classes, got num_classes={num_classes}; "
                         f"leave it unset or build a SegmentationFolder for other label sets")
    if root is not None:
        dataset = ADE20K(root, "training" if split == "train" else "validation", transforms)
    else:
        dataset = ADE20K.from_hub("train" if split == "train" else "validation", transforms)
    return FirstSamples(dataset, num_samples) if num_samples is not None else dataset
