"""COCO panoptic and COCO instance data, in the sample format of :mod:`maskformer.data.collate`.

:class:`COCOPanoptic` reads the COCO panoptic format: RGB PNGs whose colour encodes a segment id
(`R + 256 G + 256^2 B`, 0 = void) and a JSON file with `categories` (`id`, `name`, `isthing`),
`images` and one `annotations` entry per image listing its `segments_info`. Every non-crowd
segment becomes one training target, as the original panoptic mapper makes them
(facebookresearch/MaskFormer `mask_former/data/dataset_mappers/mask_former_panoptic_dataset_mapper.py`):
a thing class has one target per instance, a stuff class one per image (COCO stores it as one
segment). Crowd segments are no target; their pixels belong to no mask, so they count as
background in the loss, as in the original. The semantic map gives every segment's pixels its class,
crowd included, and void 255 (the rule of the original's COCO semantic annotations made from the
panoptic ones).

:class:`COCOInstances` reads a COCO instance JSON (`instances_val2017.json`): polygons, RLE and
uncompressed RLE, decoded with pycocotools. Crowd annotations are no target. Targets come from a map
of instance ids in which overlapping instances are painted largest first, so the smaller one keeps
the shared pixels; COCO evaluation (:func:`maskformer.evaluation.evaluate_instance`) uses the JSON's
own masks, overlaps included.

Categories get contiguous class ids `0..K-1` in the order of their COCO ids (133 panoptic classes,
80 instance classes); `contiguous_to_category` maps them back for COCO-format results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .collate import make_sample
from .io import DataError, MissingFileError, read_image
from .palette import distinct_palette

__all__ = ["COCOPanoptic", "COCOInstances", "HFPanoptic"]

WHERE = "maskformer/data/coco.py"


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingFileError(f"{WHERE}: {what} {path} does not exist; pass the annotation JSON, e.g. "
                               f"annotations/panoptic_val2017.json or annotations/instances_val2017.json")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{WHERE}: cannot read {what} {path} ({' '.join(str(err).split())}); re-download it") from None
    missing = [key for key in ("images", "annotations", "categories") if key not in content]
    if missing:
        raise DataError(f"{WHERE}: {path} has no {', '.join(repr(k) for k in missing)}; it is not a COCO {what}")
    return content


def _folder(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"{WHERE}: {what} {path} does not exist or is not a folder")
    return path


class _COCOCategories:
    """Contiguous class ids for COCO categories, sorted by their COCO id."""

    def _set_categories(self, categories: Sequence[Mapping[str, Any]]) -> None:
        categories = sorted(categories, key=lambda c: int(c["id"]))
        self.categories = [dict(c) for c in categories]
        self.category_to_contiguous = {int(c["id"]): i for i, c in enumerate(categories)}
        self.contiguous_to_category = [int(c["id"]) for c in categories]
        self.class_names = [str(c["name"]) for c in categories]
        self.num_classes = len(categories)
        self.thing_ids = [i for i, c in enumerate(categories) if c.get("isthing", 1)]
        self.stuff_ids = [i for i, c in enumerate(categories) if not c.get("isthing", 1)]
        colours = [c.get("color") for c in categories]
        self.palette = ([tuple(int(v) for v in colour) for colour in colours] if all(colours)
                        else list(distinct_palette(self.num_classes)))

    def _class_of(self, category_id: int, where: str) -> int:
        if int(category_id) not in self.category_to_contiguous:
            raise DataError(f"{WHERE}: {where} has category_id {category_id}, which the JSON's categories do not "
                            f"list ({len(self.contiguous_to_category)} categories); fix the annotation file")
        return self.category_to_contiguous[int(category_id)]


class COCOPanoptic(_COCOCategories, Dataset):
    """COCO panoptic segmentation (e.g. `train2017/`, `panoptic_train2017/`, `panoptic_train2017.json`).

    Args:
        image_dir: the photos (`file_name` of the JSON's `images`).
        panoptic_dir: the panoptic PNGs (`file_name` of the JSON's `annotations`).
        json_file: the panoptic JSON.
        transforms: a `torchvision.transforms.v2` pipeline on (Image, Mask, Mask), e.g.
            `train_transforms()`; None keeps the original size (evaluation).

    Samples follow :mod:`maskformer.data.collate` (`targets`: one mask per non-crowd segment), with
    `instance` (segment numbers `1..S` in `segments_info` order, 0 = void, after the transforms),
    `original_instance` (the same at the original size), `segments_info` (per segment `id` = its
    number in `instance`, `category_id` = contiguous class, `iscrowd`, `isthing`, `coco_id`) and
    `image_id`. The JSON is checked when the dataset is built (unknown categories, annotations of
    unknown images); each PNG when it is read (ids that `segments_info` does not list).
    """

    def __init__(self, image_dir: str | Path, panoptic_dir: str | Path, json_file: str | Path,
                 transforms: Callable | None = None):
        self.json_file = Path(json_file)
        content = _read_json(self.json_file, "panoptic JSON")
        self.image_dir = _folder(image_dir, "image folder")
        self.panoptic_dir = _folder(panoptic_dir, "panoptic PNG folder")
        self.transforms = transforms
        self._set_categories(content["categories"])
        images = {im["id"]: im for im in content["images"]}
        self.records = []
        for ann in content["annotations"]:
            if ann["image_id"] not in images:
                raise DataError(f"{WHERE}: {self.json_file}: annotation {ann.get('file_name')} is for image_id "
                                f"{ann['image_id']!r}, which 'images' does not list; fix the JSON")
            for s in ann["segments_info"]:
                self._class_of(s["category_id"], f"{self.json_file}: image {ann['image_id']!r}, segment {s['id']}")
            self.records.append({"image": images[ann["image_id"]], "annotation": ann})

    def __len__(self) -> int:
        return len(self.records)

    def read(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """Sample `index` before transforms: uint8 image `[3, H, W]`, semantic `[H, W]` (255 = void),
        segment numbers `[H, W]` (0 = void) and its `segments_info`."""
        record = self.records[index]
        image = read_image(self.image_dir / record["image"]["file_name"])
        png = self.panoptic_dir / record["annotation"]["file_name"]
        if not png.is_file():
            raise MissingFileError(f"{WHERE}: panoptic PNG {png} does not exist; check panoptic_dir")
        try:
            with Image.open(png) as pil:
                rgb = np.asarray(pil.convert("RGB"))
        except OSError as err:
            raise DataError(f"{WHERE}: cannot read {png} ({' '.join(str(err).split())}); re-download it") from None
        return self._decode(image, rgb, record["annotation"]["segments_info"], str(png))

    def _decode(self, image: torch.Tensor, rgb: np.ndarray, segments: Sequence[Mapping[str, Any]], png: str):
        """(image, RGB-encoded ids `[H, W, 3]`, segments_info) -> :meth:`read`'s four values, checked."""
        rgb = np.asarray(rgb).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]  # [H, W] COCO segment ids
        listed = {int(s["id"]) for s in segments}
        unlisted = sorted(set(np.unique(ids).tolist()) - listed - {0})
        if unlisted:
            raise DataError(f"{WHERE}: {png} holds segment ids {unlisted[:10]} that the JSON's segments_info does not "
                            f"list; the PNG and its segments_info do not belong together")
        semantic = np.full(ids.shape, 255, np.int64)
        numbers = np.zeros(ids.shape, np.int64)
        info = []
        for number, s in enumerate(segments, start=1):
            inside = ids == int(s["id"])
            label = self._class_of(s["category_id"], f"{png}, segment {s['id']}")
            semantic[inside], numbers[inside] = label, number
            info.append({"id": number, "category_id": label, "iscrowd": int(s.get("iscrowd", 0)),
                         "isthing": label in self.thing_ids, "coco_id": int(s["id"])})
        return image, torch.from_numpy(semantic), torch.from_numpy(numbers), info

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, semantic, numbers, info = self.read(index)
        targets = {s["id"]: s["category_id"] for s in info if not s["iscrowd"]}  # crowd: no target
        stem = Path(self.records[index]["image"]["file_name"]).stem
        sample = make_sample(image, semantic, self.transforms, instance=numbers, id_to_class=targets, name=stem)
        sample.update(original_instance=numbers, segments_info=info, image_id=self.records[index]["image"]["id"])
        return sample


class COCOInstances(_COCOCategories, Dataset):
    """COCO instance segmentation (e.g. `val2017/` and `annotations/instances_val2017.json`); needs pycocotools.

    Args:
        image_dir: the photos (`file_name` of the JSON's `images`).
        json_file: the instance JSON (polygons, RLE or uncompressed RLE per annotation).
        transforms: as for :class:`COCOPanoptic`.

    Samples follow :mod:`maskformer.data.collate`, with `instance` (annotation numbers `1..N` in
    JSON order, 0 = no instance), `original_instance`, `segments_info` (`id`, `category_id`
    contiguous, `iscrowd`, `isthing`, `coco_id` = the annotation id) and `image_id`. The semantic
    map is 255 outside the instances (COCO instance data has no background class).
    """

    def __init__(self, image_dir: str | Path, json_file: str | Path, transforms: Callable | None = None):
        try:
            from pycocotools import mask as mask_utils
        except ImportError:
            raise ImportError(f"{WHERE}: COCOInstances decodes polygons and RLE with pycocotools; "
                              f"pip install pycocotools") from None
        self._mask_utils = mask_utils
        self.json_file = Path(json_file)
        content = _read_json(self.json_file, "instance JSON")
        self.image_dir = _folder(image_dir, "image folder")
        self.transforms = transforms
        self._set_categories(content["categories"])
        self.images = sorted(content["images"], key=lambda im: im["id"])
        known = {im["id"] for im in self.images}
        self.annotations: dict[Any, list[dict]] = {im["id"]: [] for im in self.images}
        for ann in content["annotations"]:
            if ann["image_id"] not in known:
                raise DataError(f"{WHERE}: {self.json_file}: annotation {ann.get('id')} is for image_id "
                                f"{ann['image_id']!r}, which 'images' does not list; fix the JSON")
            self._class_of(ann["category_id"], f"{self.json_file}: annotation {ann.get('id')}")
            self.annotations[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def decode(self, ann: Mapping[str, Any], height: int, width: int) -> np.ndarray:
        """One annotation's mask, bool `[H, W]`, from a polygon list, an RLE or an uncompressed RLE."""
        segmentation = ann["segmentation"]
        try:
            if isinstance(segmentation, list):  # polygons
                rle = self._mask_utils.merge(self._mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
                covered = sum(int(c) for c in segmentation["counts"])
                if list(segmentation["size"]) != [height, width] or covered != height * width:
                    # pycocotools would leave the pixels the counts do not reach uninitialised: garbage, not zeros
                    raise DataError(f"{WHERE}: {self.json_file}: annotation {ann.get('id')} has an uncompressed RLE "
                                    f"of size {segmentation['size']} whose counts cover {covered} pixels; a "
                                    f"{height}x{width} image needs size [{height}, {width}] and {height * width}")
                rle = self._mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            return self._mask_utils.decode(rle).astype(bool)
        except DataError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise DataError(f"{WHERE}: {self.json_file}: annotation {ann.get('id')} has a segmentation that is not a "
                            f"polygon list or an RLE of a {height}x{width} image ({err})") from None

    def read(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """Sample `index` before transforms: image, semantic (255 outside instances), annotation numbers, info."""
        record = self.images[index]
        image = read_image(self.image_dir / record["file_name"])
        H, W = image.shape[-2:]
        if (record.get("height", H), record.get("width", W)) != (H, W):
            raise DataError(f"{WHERE}: {self.image_dir / record['file_name']} is {H}x{W} but {self.json_file.name} "
                            f"says {record['height']}x{record['width']}; the image and the JSON do not belong together")
        anns = self.annotations[record["id"]]
        masks = [self.decode(ann, H, W) for ann in anns]
        semantic = np.full((H, W), 255, np.int64)
        numbers = np.zeros((H, W), np.int64)
        for k in sorted(range(len(anns)), key=lambda k: -int(masks[k].sum())):  # largest first: small ones stay seen
            semantic[masks[k]] = self.category_to_contiguous[int(anns[k]["category_id"])]
            numbers[masks[k]] = k + 1
        info = [{"id": k + 1, "category_id": self.category_to_contiguous[int(ann["category_id"])],
                 "iscrowd": int(ann.get("iscrowd", 0)), "isthing": True, "coco_id": ann.get("id")}
                for k, ann in enumerate(anns)]
        return image, torch.from_numpy(semantic), torch.from_numpy(numbers), info

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, semantic, numbers, info = self.read(index)
        targets = {s["id"]: s["category_id"] for s in info if not s["iscrowd"]}
        stem = Path(self.images[index]["file_name"]).stem
        sample = make_sample(image, semantic, self.transforms, instance=numbers, id_to_class=targets, name=stem)
        sample.update(original_instance=numbers, segments_info=info, image_id=self.images[index]["id"])
        return sample


class HFPanoptic(COCOPanoptic):
    """Panoptic data as a `datasets.Dataset` (from the Hub when online, or `load_from_disk`), in the same samples.

    Each row holds a photo, a COCO-encoded panoptic PNG (both PIL images, as `datasets`' Image feature decodes
    them) and its `segments_info` (`id`, `category_id`, `iscrowd`); the categories (`id`, `name`,
    `isthing`) are given, as the Hub's panoptic datasets keep them outside the rows::

        rows = datasets.load_dataset("NAME", split="validation")
        val = HFPanoptic(rows, categories)

    Args:
        rows: the `datasets.Dataset` (any sequence of dicts works).
        categories: the category list of the dataset's panoptic JSON.
        transforms: as for :class:`COCOPanoptic`.
        image_column, panoptic_column, segments_column: the three columns' names.
    """

    def __init__(self, rows, categories: Sequence[Mapping[str, Any]], transforms: Callable | None = None, *,
                 image_column: str = "image", panoptic_column: str = "label", segments_column: str = "segments_info"):
        columns = getattr(rows, "column_names", None)
        if columns is not None:
            missing = [c for c in (image_column, panoptic_column, segments_column) if c not in columns]
            if missing:
                raise DataError(f"{WHERE}: the dataset has no column {', '.join(map(repr, missing))} (it has "
                                f"{columns}); name them with image_column=, panoptic_column=, segments_column=")
        self.rows, self.transforms = rows, transforms
        self.columns = (image_column, panoptic_column, segments_column)
        self._set_categories(categories)

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int):
        from .io import image_from_pil

        row = self.rows[index]
        image_column, panoptic_column, segments_column = self.columns
        where = f"row {index}"
        image = image_from_pil(row[image_column], f"{where} {image_column!r}")
        panoptic = row[panoptic_column]
        if not hasattr(panoptic, "convert"):
            raise DataError(f"{WHERE}: {where}: column {panoptic_column!r} holds {type(panoptic).__name__}, not a PNG "
                            f"image; pass the column of RGB-encoded panoptic PNGs as panoptic_column=")
        return self._decode(image, np.asarray(panoptic.convert("RGB")), row[segments_column],
                            f"{where} {panoptic_column!r}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, semantic, numbers, info = self.read(index)
        targets = {s["id"]: s["category_id"] for s in info if not s["iscrowd"]}
        sample = make_sample(image, semantic, self.transforms, instance=numbers, id_to_class=targets, name=str(index))
        sample.update(original_instance=numbers, segments_info=info, image_id=index)
        return sample
