"""A small COCO look-alike drawn from :class:`~maskformer.data.Shapes`, in the official file formats.

:func:`write_coco_sample` saves Shapes images with their ground truth as COCO stores it::

    root/                                   the layout of detectron2's datasets/coco
        train2017/000000.png ...            the photos (val2017/ likewise)
        panoptic_train2017/000000.png ...   RGB-encoded segment ids (R + 256 G + 256^2 B), 0 = void
        annotations/panoptic_train2017.json categories (isthing), images, annotations with segments_info
        annotations/instances_train2017.json the thing segments as COCO instances (RLE)

The shape classes are things with COCO ids `1..K-1`; the background is a stuff class with id
`STUFF_ID`. With `crowd_fraction > 0`, that share of the images marks one shape as a crowd region
(`iscrowd: 1`), and `void_fraction` of the images have a band of void pixels, so that every rule of
COCO's evaluation is exercised. Read it back with :class:`~maskformer.data.COCOPanoptic` and
:class:`~maskformer.data.COCOInstances`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .shapes import Shapes

__all__ = ["write_coco_sample", "STUFF_ID"]

STUFF_ID = 100  # the background's COCO category id: after the things, as COCO's stuff ids follow its things


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def write_coco_sample(root: str | Path, num_train: int = 8, num_val: int = 4, image_size: int = 64,
                      num_classes: int = 7, seed: int = 0, crowd_fraction: float = 0.25,
                      void_fraction: float = 0.25) -> Path:
    """Write Shapes images in the COCO panoptic and instance formats under `root`; returns `root`.

    Args:
        root: the folder to write (created; files of the same names are replaced).
        num_train, num_val: images of the `train2017` and `val2017` splits.
        image_size, num_classes, seed: as :class:`~maskformer.data.Shapes` (val uses `seed + 10000`).
        crowd_fraction: share of the images in which one shape becomes a crowd region.
        void_fraction: share of the images with a band of void pixels along the bottom.
    """
    root = Path(root)
    for split, num_images, split_seed in (("train2017", num_train, seed), ("val2017", num_val, seed + 10_000)):
        _write_split(root, split, num_images, image_size, num_classes, split_seed, crowd_fraction, void_fraction)
    return root


def _write_split(root: Path, split: str, num_images: int, image_size: int, num_classes: int, seed: int,
                 crowd_fraction: float, void_fraction: float) -> None:
    from pycocotools import mask as mask_utils

    shapes = Shapes(num_samples=num_images, image_size=image_size, num_classes=num_classes, seed=seed)
    for folder in (split, f"panoptic_{split}", "annotations"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((seed, 7))
    categories = [{"id": c, "name": shapes.class_names[c], "isthing": 1, "color": list(shapes.palette[c])}
                  for c in shapes.thing_ids]
    categories.append({"id": STUFF_ID, "name": "background", "isthing": 0, "color": list(shapes.palette[0])})
    images, panoptic, instances = [], [], []
    for index in range(num_images):
        image, _, instance, id_to_class = shapes.draw(index)
        name = f"{index:06d}"
        Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB").save(root / split / f"{name}.png")
        instance = instance.numpy()
        if rng.random() < void_fraction:
            instance = instance.copy()
            instance[-max(2, image_size // 10):] = -1  # void
        shape_ids = [i for i in sorted(id_to_class) if i != 0 and (instance == i).any()]
        crowd = {int(rng.choice(shape_ids))} if shape_ids and rng.random() < crowd_fraction else set()
        # COCO segment ids are arbitrary 24-bit numbers; these are large on purpose, so that all three colours count
        segment_id = {i: int(rng.integers(1, 256**3)) for i in [0, *shape_ids]}
        ids = np.zeros(instance.shape, np.int64)
        segments = []
        for i in [0, *shape_ids]:
            inside = instance == i
            if not inside.any():
                continue
            ids[inside] = segment_id[i]
            segments.append({"id": segment_id[i], "category_id": STUFF_ID if i == 0 else int(id_to_class[i]),
                             "iscrowd": int(i in crowd), "area": int(inside.sum()), "bbox": _bbox(inside)})
            if i != 0:
                rle = mask_utils.encode(np.asfortranarray(inside.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                instances.append({"id": len(instances) + 1, "image_id": index, "category_id": int(id_to_class[i]),
                                  "segmentation": rle, "area": int(inside.sum()), "bbox": _bbox(inside),
                                  "iscrowd": int(i in crowd)})
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(root / f"panoptic_{split}" / f"{name}.png")
        images.append({"id": index, "file_name": f"{name}.png", "height": image_size, "width": image_size})
        panoptic.append({"image_id": index, "file_name": f"{name}.png", "segments_info": segments})
    (root / "annotations" / f"panoptic_{split}.json").write_text(
        json.dumps({"images": images, "annotations": panoptic, "categories": categories}))
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": instances, "categories": [c for c in categories if c["isthing"]]}))
