"""Datasets by name, the one registry the configs, the trainer and ``evaluate`` share.

``build_dataset("ade20k", "val")`` builds one split; ``build_datasets(config.data, seed)`` builds a
training config's training set (with its augmentation) and validation set.

Every dataset returned here has ``class_names``, ``num_classes`` and ``palette`` (one RGB triple per
class), and returns samples in the format of :mod:`maskformer.data.collate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from torch.utils.data import Dataset, Subset

from .ade20k import ADE20K
from .shapes import Shapes

__all__ = ["build_dataset", "build_datasets", "build_split", "DATASETS", "DATASET_NAMES", "TASKS", "AUGMENTATIONS"]

# Every dataset a config can name (``data.dataset``), built by :func:`build_split`: "ade20k": ADE20K-150;
# "shapes": built-in synthetic data; "folder": your images and label PNGs; "hf": a Hugging Face
# ``datasets`` dataset (from the Hub, or saved to disk); "coco_panoptic" and "coco_instances": COCO in
# detectron2's ``datasets/coco`` layout under ``root``; "ade20k_panoptic": ADE20K-150 panoptic as the original's
# ``datasets/prepare_ade20k_pan_seg.py`` writes it into ``ADEChallengeData2016``. All but "folder" and "hf" can be
# built by name alone.
DATASET_NAMES = ("ade20k", "shapes", "folder", "hf", "hf_panoptic", "coco_panoptic", "coco_instances", "ade20k_panoptic")
DATASETS = ("shapes", "ade20k", "coco_panoptic", "coco_instances", "ade20k_panoptic")
# What a model is trained and evaluated for (``data.task``): mIoU, PQ or mask AP.
TASKS = ("semantic", "panoptic", "instance")
# Training augmentations of real photos (``data.augmentation``; orig INPUT.DATASET_MAPPER_NAME): the ADE20K
# recipe of maskformer.data.transforms, or DETR's COCO panoptic recipe of maskformer.data.coco_transforms.
AUGMENTATIONS = ("mask_former", "detr_panoptic")
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
                  seed: int = 0, task: str = "semantic", class_cue: str = "shape_colour") -> Dataset:
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
        task: Shapes only: "panoptic" or "instance" give one target per shape (one of :data:`TASKS`).
        class_cue: Shapes only: what tells a class (:data:`maskformer.data.shapes.CLASS_CUES`).
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
            targets="semantic" if task == "semantic" else "panoptic",
            class_cue=class_cue,
        )
    if key.startswith("coco") or key == "ade20k_panoptic":
        return _coco_split(key, split, root, transforms, num_samples)

    if image_size is not None:
        raise ValueError(f"maskformer/data/build.py: image_size={image_size} applies to shapes only; ADE20K images keep "
                         f"their sizes, resize them with transforms (e.g. train_transforms(crop_size))")
    if num_classes not in (None, 150):
        raise ValueError(f"maskformer/data/build.py: ADE20K-150 has 150 classes, got num_classes={num_classes}; "
                         f"leave it unset or build a SegmentationFolder for other label sets")
    if root is not None:
        dataset = ADE20K(root, "training" if split == "train" else "validation", transforms)
    else:
        from ..pretrained import hub_endpoint_reachable
        from .ade20k import ADE20K_URL

        if not hub_endpoint_reachable():
            raise RuntimeError(f"ADE20K without --data-root comes from the Hugging Face Hub (scene_parse_150), which "
                               f"cannot be reached: download {ADE20K_URL} on a machine with internet, unzip it and "
                               f"pass --data-root DIR (the ADEChallengeData2016 folder)")
        dataset = ADE20K.from_hub("train" if split == "train" else "validation", transforms)
    return FirstSamples(dataset, num_samples) if num_samples is not None else dataset


def build_datasets(data, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The training set (with the recipe's augmentation) and the validation set (original size, no
    transforms: :func:`maskformer.evaluation.evaluate_semantic` resizes it itself) that a
    :class:`~maskformer.recipes.DataConfig` describes."""
    return build_split(data, "train", seed), build_split(data, "val", seed)


def train_augmentation(data) -> Callable:
    """The training transforms of a DataConfig: Shapes flips only; real photos get the original recipe
    (``data.augmentation``: ADE20K's, or COCO panoptic's)."""
    from torchvision.transforms import v2

    from .transforms import ColorJitterSSD, train_transforms

    if data.dataset == "shapes":
        return v2.RandomHorizontalFlip()
    if data.augmentation == "detr_panoptic":
        from .coco_transforms import detr_panoptic_transforms

        return detr_panoptic_transforms(data.train_short_edges, data.max_size, tuple(data.crop_range))
    tf = train_transforms(data.crop_size, max_size=data.max_size, single_category_max_area=data.single_category_max_area,
                          ignore_index=data.ignore_index)  # crop statistics and padding use the data's ignore value
    if not data.color_aug_ssd:
        tf = v2.Compose([t for t in tf.transforms if not isinstance(t, ColorJitterSSD)])
    return tf


def build_split(data, split: str, seed: int = 0, augment: bool | None = None) -> Dataset:
    """One split of the dataset a DataConfig names: "train" with the training augmentation, "val" at
    the original size (``augment`` overrides which)."""
    augment = split == "train" if augment is None else augment
    transforms = train_augmentation(data) if augment else None
    if data.dataset == "shapes":
        return build_dataset("shapes", split, transforms=transforms, image_size=data.image_size,
                             num_classes=data.num_classes, seed=seed, task=data.task, class_cue=data.class_cue,
                             num_samples=data.num_train if split == "train" else data.num_val)
    if data.dataset == "folder":
        return _folder_split(data, split, seed, transforms)
    if data.dataset in ("hf", "hf_panoptic"):
        return _hf_split(data, split, seed, transforms)
    return build_dataset(data.dataset, split, root=data.root, transforms=transforms)


def _coco_split(key: str, split: str, root: str | Path | None, transforms: Callable | None,
                num_samples: int | None) -> Dataset:
    """COCO 2017 in detectron2's ``datasets/coco`` layout: ``{train,val}2017/``, ``panoptic_{train,val}2017/`` and
    ``annotations/{panoptic,instances}_{train,val}2017.json``."""
    from .coco import COCOInstances, COCOPanoptic

    if key == "ade20k_panoptic":
        if root is None:
            raise ValueError("maskformer/data/build.py: ade20k_panoptic needs --data-root: the ADEChallengeData2016 "
                             "folder after the original's datasets/prepare_ade20k_pan_seg.py has written "
                             "ade20k_panoptic_{train,val}/ and ade20k_panoptic_{train,val}.json into it")
        root, name = Path(root), "train" if split == "train" else "val"
        dataset = COCOPanoptic(root / "images" / ("training" if split == "train" else "validation"),
                               root / f"ade20k_panoptic_{name}", root / f"ade20k_panoptic_{name}.json", transforms)
        return FirstSamples(dataset, num_samples) if num_samples is not None else dataset
    if root is None:
        raise ValueError(f"maskformer/data/build.py: {key} needs --data-root: the folder holding train2017/, val2017/, "
                         f"panoptic_val2017/ and annotations/ (https://cocodataset.org/#download)")
    root, name = Path(root), f"{split}2017"
    if key == "coco_panoptic":
        dataset = COCOPanoptic(root / name, root / f"panoptic_{name}", root / "annotations" / f"panoptic_{name}.json",
                               transforms)
    else:
        dataset = COCOInstances(root / name, root / "annotations" / f"instances_{name}.json", transforms)
    return FirstSamples(dataset, num_samples) if num_samples is not None else dataset


class ClassedSubset(Subset):
    """Some samples of a dataset, keeping its ``class_names``, ``num_classes`` and ``palette``."""

    class_names = FirstSamples.class_names
    num_classes = FirstSamples.num_classes
    palette = FirstSamples.palette


def read_class_names(spec: str) -> list[str]:
    """Class names from a text file (one per line; blank lines and ``#`` comments skipped) or a
    comma-separated list (``"road,car,tree"``)."""
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"--classes {path}: cannot read the class-name file ({err})") from None
        names = [line.split("#", 1)[0].strip() for line in lines]
        names = [n for n in names if n]
        if not names:
            raise ValueError(f"--classes {path}: the file holds no class names; write one name per line")
        return names
    if "," in spec or not (path.suffix or os.sep in spec):
        names = [n.strip() for n in spec.split(",") if n.strip()]
        if names:
            return names
    raise FileNotFoundError(f"--classes {spec}: no such file; pass a text file with one class name per line, "
                            f"or the names separated by commas")


def held_out(n: int, fraction: float, seed: int, what: str) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): ``fraction`` of ``range(n)`` (at least one) held out, chosen by ``seed``."""
    import torch

    if n < 2:
        raise ValueError(f"{what} has {n} image(s): too few to hold out a validation split; add images, or pass a "
                         f"separate validation set")
    num_val = min(n - 1, max(1, round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[num_val:]), sorted(order[:num_val])


def _folder_split(data, split: str, seed: int, transforms: Callable | None) -> Dataset:
    from .folder import SegmentationFolder

    names = read_class_names(data.classes)
    kw = dict(reduce_labels=data.reduce_labels, ignore_index=data.ignore_index)
    if data.val_images is not None:
        images, labels = (data.images, data.labels) if split == "train" else (data.val_images, data.val_labels)
        return SegmentationFolder(images, labels, names, transforms, **kw)
    dataset = SegmentationFolder(data.images, data.labels, names, transforms, **kw)
    train, val = held_out(len(dataset), data.val_fraction, seed, f"--images {data.images}")
    return ClassedSubset(dataset, train if split == "train" else val)


def load_hf_dataset(name: str):
    """A ``datasets`` dataset: a folder written by ``save_to_disk`` (offline), else a Hub name."""
    import datasets

    from ..pretrained import hub_endpoint_reachable, offline_hint

    path = Path(name).expanduser()
    if path.exists():
        try:
            return datasets.load_from_disk(str(path))
        except Exception as err:  # not a save_to_disk folder
            raise ValueError(f"--hf-name {path}: not a dataset written by datasets' save_to_disk "
                             f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"--hf-name {name}: no such folder; pass a folder written by datasets' "
                                f"save_to_disk, or a Hub dataset name such as 'owner/name'")
    if not hub_endpoint_reachable():
        raise RuntimeError(f"--hf-name {name}: no such folder, and the Hugging Face Hub cannot be reached: "
                           f"{offline_hint(name, 'dataset', 'dataset')}, or load it and save_to_disk(DIR)")
    try:
        return datasets.load_dataset(name)
    except Exception as err:
        raise RuntimeError(f"--hf-name {name}: could not load it from the Hugging Face Hub ({type(err).__name__}: "
                           f"{str(err).splitlines()[0]})") from None


def read_categories(path: str) -> list[dict]:
    """COCO panoptic categories (``id``, ``name``, ``isthing``) from a JSON file: a panoptic annotation file (its
    ``categories``) or the list itself."""
    import json

    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"data.categories {path}: no such file; pass a COCO panoptic JSON (its 'categories' "
                                f"are read) or a JSON list of {{'id', 'name', 'isthing'}}")
    try:
        loaded = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"data.categories {file}: not readable as JSON ({err})") from None
    categories = loaded.get("categories") if isinstance(loaded, dict) else loaded
    if not isinstance(categories, list) or not categories or not all(
            isinstance(c, dict) and "id" in c and "name" in c for c in categories):
        raise ValueError(f"data.categories {file}: holds no category list; expected a COCO panoptic JSON with "
                         f"'categories', or a list of {{'id', 'name', 'isthing'}}")
    return categories


def _hf_split(data, split: str, seed: int, transforms: Callable | None) -> Dataset:
    """"hf" (semantic label maps, class names from data.classes) or "hf_panoptic" (COCO-encoded panoptic PNGs and
    ``segments_info`` per row, categories from data.categories) from a Hub name or a ``save_to_disk`` folder."""
    from .coco import HFPanoptic
    from .folder import HFSegmentationDataset

    if data.dataset == "hf_panoptic":
        categories = read_categories(data.categories)  # DataConfig has checked that it is given

        def make(rows):
            return HFPanoptic(rows, categories, transforms, image_column=data.image_column,
                              panoptic_column=data.panoptic_column, segments_column=data.segments_column)
    else:
        if data.classes is None:
            raise ValueError("--dataset hf needs the class names: pass --classes FILE (one name per line) or "
                             "data.classes=a,b,c")
        names = read_class_names(data.classes)

        def make(rows):
            return HFSegmentationDataset(rows, names, transforms, image_column=data.image_column,
                                         label_column=data.label_column, reduce_labels=data.reduce_labels,
                                         ignore_index=data.ignore_index)
    loaded = load_hf_dataset(data.hf_name)
    if hasattr(loaded, "keys"):  # a DatasetDict: named splits
        available = list(loaded.keys())
        if data.hf_train_split not in loaded:
            raise ValueError(f"--hf-name {data.hf_name} has no split {data.hf_train_split!r} (data.hf_train_split); "
                             f"it has {available}")
        if data.hf_val_split is not None and data.hf_val_split in loaded:
            return make(loaded[data.hf_train_split] if split == "train" else loaded[data.hf_val_split])
        if data.hf_val_split is not None:
            raise ValueError(f"--hf-name {data.hf_name} has no split {data.hf_val_split!r} (data.hf_val_split); it has "
                             f"{available}: name one, or set data.hf_val_split=null to hold out data.val_fraction")
        loaded = loaded[data.hf_train_split]
    dataset = make(loaded)
    train, val = held_out(len(dataset), data.val_fraction, seed, f"--hf-name {data.hf_name}")
    return ClassedSubset(dataset, train if split == "train" else val)
