"""Your own data: a folder of images with same-named label PNGs, or a `datasets.Dataset`.

Both return the sample format of :mod:`maskformer.data.collate`, so fine-tuning on custom
data needs only::

    train = SegmentationFolder("photos/", "labels/", class_names=["road", "car", ...],
                               transforms=train_transforms())
    loader = DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate)

Label PNGs hold class ids `0..K-1` per pixel and 255 for "unlabelled" (or, with
`reduce_labels=True`, 0 for "unlabelled" and classes from 1, the ADE20K convention). More than
255 classes need 16-bit PNGs and an `ignore_index` that is no class, e.g. `ignore_index=65535`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .collate import check_ignore_index, make_sample
from .io import DataError, image_from_pil, label_from_pil, read_image, read_label
from .palette import distinct_palette

__all__ = ["SegmentationFolder", "HFSegmentationDataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _palette(palette: Sequence[tuple[int, int, int]] | None, num_classes: int) -> list[tuple[int, int, int]]:
    """The given palette (one RGB triple per class, checked) or distinct colours."""
    if palette is None:
        return list(distinct_palette(num_classes))
    if len(palette) != num_classes:
        raise ValueError(f"maskformer/data/folder.py: {len(palette)} palette colours for {num_classes} classes; "
                         f"pass one (R, G, B) per class name, or palette=None for generated colours")
    return [tuple(int(v) for v in colour) for colour in palette]


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class SegmentationFolder(Dataset):
    """Images in `images_dir`, labels as `<same stem>.png` in `masks_dir`.

    Args:
        images_dir: folder of images (jpg, png, ...); subfolders are not searched.
        masks_dir: folder of label PNGs with the same file stems.
        class_names: the K class names; label ids must be `0..K-1` or `ignore_index`.
        transforms: a `torchvision.transforms.v2` pipeline on (Image, Mask), e.g.
            `train_transforms()` or `eval_transforms()`; None keeps the original size.
        reduce_labels: 0 -> ignore, l -> l-1 (for label files where 0 is "unlabelled").
        ignore_index: the "unlabelled" value in the (reduced) labels; it may not be a class id.
        palette: one RGB colour per class for drawing; None picks distinct colours.

    Every image must have a label and every label an image; sizes and values are checked when
    a sample is read, with a one-line :class:`~maskformer.data.io.DataError` that names the file.
    """

    def __init__(self, images_dir: str | Path, masks_dir: str | Path, class_names: Sequence[str],
                 transforms: Callable | None = None, *, reduce_labels: bool = False, ignore_index: int = 255,
                 palette: Sequence[tuple[int, int, int]] | None = None):
        self.images_dir, self.masks_dir = Path(images_dir), Path(masks_dir)
        self.class_names = list(class_names)
        self.transforms, self.reduce_labels, self.ignore_index = transforms, reduce_labels, ignore_index
        if not self.class_names:
            raise ValueError("maskformer/data/folder.py: class_names is empty; pass the name of every class id")
        check_ignore_index(len(self.class_names), ignore_index, "maskformer/data/folder.py")
        self.palette = _palette(palette, len(self.class_names))
        for kind, folder in (("images", self.images_dir), ("labels", self.masks_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"maskformer/data/folder.py: {kind} folder {folder} does not exist; "
                                        f"pass the folder that holds the {kind} files")
        images = {p.stem: p for p in sorted(self.images_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
        labels = {p.stem: p for p in sorted(self.masks_dir.iterdir()) if p.suffix.lower() == ".png"}
        if not images:
            raise FileNotFoundError(f"maskformer/data/folder.py: no images ({', '.join(IMAGE_EXTENSIONS)}) in "
                                    f"{self.images_dir}")
        missing = sorted(set(images) - set(labels))
        if missing:
            raise FileNotFoundError(
                f"maskformer/data/folder.py: {len(missing)} images in {self.images_dir} have no label PNG in "
                f"{self.masks_dir}: {_listing([images[m].name for m in missing])}; add <name>.png labels or "
                f"remove these images")
        orphans = sorted(set(labels) - set(images))
        if orphans:
            raise FileNotFoundError(
                f"maskformer/data/folder.py: {len(orphans)} label PNGs in {self.masks_dir} have no image in "
                f"{self.images_dir}: {_listing([labels[o].name for o in orphans])}; add the images or remove "
                f"these labels")
        self.names = sorted(images)
        self.image_paths = [images[n] for n in self.names]
        self.label_paths = [labels[n] for n in self.names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image, label = read_image(image_path), read_label(label_path)
        if image.shape[-2:] != label.shape:
            raise DataError(
                f"maskformer/data/folder.py: image {image_path} is {tuple(image.shape[-2:])} (H, W) but its label "
                f"{label_path} is {tuple(label.shape)}; labels must have the image's size (re-export the label, or "
                f"resize it with nearest-neighbour interpolation)")
        return make_sample(image, label, self.transforms, num_classes=self.num_classes, ignore_index=self.ignore_index,
                           reduce_labels=self.reduce_labels, name=str(label_path))


def _to_image(value: Any, name: str, label: bool) -> torch.Tensor:
    """A datasets cell (PIL image, array, tensor or {'path'|'bytes'}) -> image `[3,H,W]` or label `[H,W]`."""
    if isinstance(value, dict) and ("path" in value or "bytes" in value):
        if value.get("bytes") is not None:
            import io

            value = Image.open(io.BytesIO(value["bytes"]))
        else:
            return read_label(value["path"]) if label else read_image(value["path"])
    if isinstance(value, Image.Image):
        return label_from_pil(value, name) if label else image_from_pil(value, name)
    array = torch.as_tensor(np.array(value))
    if label:
        if array.dim() != 2:
            raise DataError(f"maskformer/data/folder.py: {name} must be a 2-D label map, got shape {tuple(array.shape)}")
        return array.long()
    if array.dim() == 2:
        array = array[None].expand(3, -1, -1)
    elif array.dim() == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].permute(2, 0, 1)
    if array.dtype != torch.uint8:
        raise DataError(f"maskformer/data/folder.py: {name} has dtype {array.dtype}; pass uint8 RGB images")
    return array.contiguous()


class HFSegmentationDataset(Dataset):
    """Any `datasets.Dataset` (or indexable of dict rows) with an image and an annotation column.

    Args:
        dataset: e.g. `datasets.load_dataset("imagefolder", ...)["train"]` or `Dataset.from_dict(...)`.
        class_names, transforms, reduce_labels, ignore_index, palette: as in :class:`SegmentationFolder`.
        image_column, label_column: column names (PIL images, arrays or `{"path"|"bytes"}` dicts).
    """

    def __init__(self, dataset: Any, class_names: Sequence[str], transforms: Callable | None = None, *,
                 image_column: str = "image", label_column: str = "annotation",
                 reduce_labels: bool = False, ignore_index: int = 255,
                 palette: Sequence[tuple[int, int, int]] | None = None):
        columns = getattr(dataset, "column_names", None)
        if columns is not None:
            for kind, column in (("image_column", image_column), ("label_column", label_column)):
                if column not in columns:
                    raise KeyError(f"maskformer/data/folder.py: {kind}={column!r} is not a column of the dataset, "
                                   f"which has {columns}; pass {kind}=<the right name>")
        self.dataset, self.class_names, self.transforms = dataset, list(class_names), transforms
        self.image_column, self.label_column = image_column, label_column
        self.reduce_labels, self.ignore_index = reduce_labels, ignore_index
        check_ignore_index(len(self.class_names), ignore_index, "maskformer/data/folder.py")
        self.palette = _palette(palette, len(self.class_names))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.dataset[index]
        name = f"row {index}"
        image = _to_image(row[self.image_column], f"{name} column {self.image_column!r}", label=False)
        label = _to_image(row[self.label_column], f"{name} column {self.label_column!r}", label=True)
        return make_sample(image, label, self.transforms, num_classes=self.num_classes, ignore_index=self.ignore_index,
                           reduce_labels=self.reduce_labels, name=name)
