"""Shapes: a seeded synthetic segmentation dataset for CPU experiments, with no download.

Each image is a textured background (class 0, "background", a stuff class) with a few coloured
shapes drawn over it (thing classes 1..K-1). A thing class is a (shape, colour) pair. With at most
six thing classes each has a shape and a hue of its own, so either tells it apart (the default
K = 7: a red square, a yellow circle, ...). With more, six shapes share each hue and the hues get
closer, so telling classes apart needs both the outline and the colour: the task gets harder as K
grows. Later shapes occlude earlier ones; the instance map holds the visible part of each.

``class_cue="marker"`` makes a probe of the paper's argument for mask classification (§3, §4.3): a class that only
the whole segment can tell. Every shape gets a random kind and a random body colour, both unrelated to its class;
the class is the hue of one small marker (a disc in a white ring) at a random place inside the shape, and shapes
do not overlap, so every marker is visible. A pixel far from its segment's marker sees nothing of its class.

Sample `index` is drawn from `numpy.random.default_rng((seed, index))`: the same seed gives the
same dataset in any order, on any machine, with any number of DataLoader workers.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .collate import make_sample

__all__ = ["Shapes", "SHAPE_KINDS", "CLASS_CUES"]

SHAPE_KINDS = ("square", "circle", "triangle", "diamond", "ring", "cross")
# What tells a class: "shape_colour" (the default, a (shape, colour) pair) or "marker" (the hue of a small marker)
CLASS_CUES = ("shape_colour", "marker")


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Inside-test of a shape of radius `r` in rotated coordinates `u`, `v` (pixels from its centre)."""
    if kind == "square":
        return (np.abs(u) <= r * 0.8) & (np.abs(v) <= r * 0.8)
    if kind == "circle":
        return u**2 + v**2 <= r**2
    if kind == "triangle":  # equilateral, apex up: base at v = r/2, apex at v = -r
        return (v <= r / 2) & (np.abs(u) * math.sqrt(3) <= v + r)
    if kind == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if kind == "ring":
        d = u**2 + v**2
        return (d <= r**2) & (d >= (0.55 * r) ** 2)
    if kind == "cross":
        return ((np.abs(u) <= r / 3) & (np.abs(v) <= r)) | ((np.abs(v) <= r / 3) & (np.abs(u) <= r))
    raise ValueError(f"maskformer/data/shapes.py: unknown shape kind {kind!r}; choose from {SHAPE_KINDS}")


def _hue_names(n: int) -> list[str]:
    """Names of `n` hues spread evenly around the colour circle from red: colour words up to 12, else degrees."""
    named = ("red", "orange", "yellow", "lime", "green", "spring", "cyan", "azure", "blue", "violet", "magenta", "rose")
    return [named[round(12 * i / n) % 12] if n <= 12 else f"hue{round(360 * i / n)}" for i in range(n)]


class Shapes(Dataset):
    """Random shapes on textured backgrounds, with semantic and instance ground truth.

    Args:
        num_samples: dataset length.
        image_size: side of the square images (64..256 are practical on CPU).
        num_classes: K >= 2, including class 0 = background; 1..K-1 are (shape, colour) things.
        shapes_per_image: (min, max) number of shapes drawn, inclusive.
        seed: the dataset's seed.
        transforms: optional `torchvision.transforms.v2` pipeline (see `maskformer.data.transforms`).
        targets: "semantic" (one mask per class, for semantic training) or "panoptic" (one mask per
            shape plus one for the background, for instance / panoptic training).
        class_cue: one of :data:`CLASS_CUES`: "shape_colour" (a class is a shape and a colour) or "marker" (a
            class is the hue of a marker inside the shape; kind and body colour are random).

    Samples follow :mod:`maskformer.data.collate`, with an `instance` map (0 = background,
    1..n = shapes) and `id_to_class`. Panoptic ground truth for :class:`maskformer.metrics.PanopticQuality` is
    `torch.stack([semantic, instance], -1)`; `thing_ids` and `stuff_ids` give the split.
    :func:`maskformer.evaluation.evaluate_panoptic` (COCO PQ) and :func:`~maskformer.evaluation.evaluate_instance`
    (COCO mask AP) read `instance` and `id_to_class` directly, and
    :func:`maskformer.data.coco_sample.write_coco_sample` saves Shapes in the COCO panoptic and instance formats.
    """

    def __init__(self, num_samples: int = 256, image_size: int = 128, num_classes: int = 7,
                 shapes_per_image: tuple[int, int] = (1, 4), seed: int = 0,
                 transforms: Callable | None = None, targets: str = "semantic", class_cue: str = "shape_colour"):
        if num_classes < 2:
            raise ValueError(f"maskformer/data/shapes.py: num_classes={num_classes}; it needs the background "
                             f"class 0 plus at least one shape class")
        if image_size < 16:
            raise ValueError(f"maskformer/data/shapes.py: image_size={image_size} is too small to draw shapes; use >= 16")
        if not 1 <= shapes_per_image[0] <= shapes_per_image[1]:
            raise ValueError(f"maskformer/data/shapes.py: shapes_per_image={shapes_per_image} must be (min, max) "
                             f"with 1 <= min <= max")
        if targets not in ("semantic", "panoptic"):
            raise ValueError(f"maskformer/data/shapes.py: targets={targets!r}; use 'semantic' or 'panoptic'")
        if class_cue not in CLASS_CUES:
            raise ValueError(f"maskformer/data/shapes.py: class_cue={class_cue!r}; use one of {CLASS_CUES}")
        self.class_cue = class_cue
        self.num_samples, self.image_size, self.num_classes = num_samples, image_size, num_classes
        self.shapes_per_image, self.seed, self.transforms, self.targets = shapes_per_image, seed, transforms, targets
        num_things = num_classes - 1
        # class c >= 1: shape kind (c-1) % 6; hue index c-1 (<= 6 things) or (c-1) // 6, spread around the circle
        few = num_things <= len(SHAPE_KINDS)
        num_colours = num_things if few else math.ceil(num_things / len(SHAPE_KINDS))
        colour_index = [None] + [c - 1 if few else (c - 1) // len(SHAPE_KINDS) for c in range(1, num_classes)]
        self.class_kinds = [None] + [SHAPE_KINDS[(c - 1) % len(SHAPE_KINDS)] for c in range(1, num_classes)]
        self.class_colours = [(0.5, 0.5, 0.5)] + [
            colorsys.hsv_to_rgb(colour_index[c] / num_colours, 0.85, 0.95) for c in range(1, num_classes)
        ]
        hue_names = _hue_names(num_colours)
        self.class_names = ["background"] + [
            f"{hue_names[colour_index[c]]} {self.class_kinds[c]}" for c in range(1, num_classes)
        ]
        if class_cue == "marker":  # class c: marker hue (c - 1) / (K - 1); any kind, any body colour
            self.class_kinds = [None] * num_classes
            self.class_colours = [(0.5, 0.5, 0.5)] + [colorsys.hsv_to_rgb((c - 1) / num_things, 1.0, 1.0)
                                                      for c in range(1, num_classes)]
            hue_names = _hue_names(num_things)
            self.class_names = ["background"] + [f"{hue_names[c - 1]} marker" for c in range(1, num_classes)]
        self.thing_ids = list(range(1, num_classes))
        self.stuff_ids = [0]
        self.palette = [tuple(int(255 * v) for v in colour) for colour in self.class_colours]

    def __len__(self) -> int:
        return self.num_samples

    def draw(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, int]]:
        """Sample `index` before transforms: uint8 image `[3, S, S]`, semantic `[S, S]`, instance `[S, S]`,
        and `{instance id: class}` (0 -> background)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"maskformer/data/shapes.py: index {index} out of range for {self.num_samples} samples")
        rng = np.random.default_rng((self.seed, index))
        S = self.image_size
        y, x = np.mgrid[0:S, 0:S].astype(np.float64)
        # background: a dim random tint, soft blobs of two frequencies and stripes
        coarse = rng.normal(size=(3, 4, 4))
        blobs = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=(S, S), mode="bicubic",
                                                align_corners=False)[0].numpy()  # [3, S, S]
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 16) * S / 128
        stripes = np.sin((x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period)
        tint = rng.uniform(0.25, 0.5, size=(3, 1, 1))
        image = tint + 0.06 * blobs + 0.05 * stripes + 0.03 * rng.normal(size=(3, S, S))
        semantic = np.zeros((S, S), dtype=np.int64)
        instance = np.zeros((S, S), dtype=np.int64)
        id_to_class = {0: 0}
        if self.class_cue == "marker":
            return self._draw_markers(rng, image, semantic, instance, x, y)
        for shape_id in range(1, int(rng.integers(self.shapes_per_image[0], self.shapes_per_image[1] + 1)) + 1):
            cls = int(rng.integers(1, self.num_classes))
            r = rng.uniform(0.08, 0.22) * S
            cy, cx = rng.uniform(r * 0.6, S - r * 0.6, size=2)
            theta = rng.uniform(0, 2 * math.pi)
            u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
            v = -(x - cx) * math.sin(theta) + (y - cy) * math.cos(theta)
            inside = _shape_mask(self.class_kinds[cls], u, v, r)
            colour = np.array(self.class_colours[cls]).reshape(3, 1) * rng.uniform(0.8, 1.0)
            image[:, inside] = colour + 0.04 * rng.normal(size=(3, int(inside.sum())))
            semantic[inside], instance[inside] = cls, shape_id
            id_to_class[shape_id] = cls
        visible = set(np.unique(instance).tolist())
        id_to_class = {i: c for i, c in id_to_class.items() if i in visible}
        image = torch.from_numpy(np.clip(image * 255, 0, 255).round().astype(np.uint8))
        return image, torch.from_numpy(semantic), torch.from_numpy(instance), id_to_class

    def _draw_markers(self, rng: np.random.Generator, image: np.ndarray, semantic: np.ndarray, instance: np.ndarray,
                      x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, int]]:
        """The "marker" probe: non-overlapping shapes of random kind and colour, each with its class's marker."""
        from scipy.ndimage import distance_transform_edt

        S = self.image_size
        marker_radius = max(2.0, 0.04 * S)
        ring_radius = marker_radius + max(1.0, 0.025 * S)
        id_to_class = {0: 0}
        taken = np.zeros((S, S), dtype=bool)
        for shape_id in range(1, int(rng.integers(self.shapes_per_image[0], self.shapes_per_image[1] + 1)) + 1):
            cls = int(rng.integers(1, self.num_classes))
            for _ in range(100):  # a placement that overlaps nothing and holds the whole marker
                kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
                r = rng.uniform(0.1, 0.25) * S
                cy, cx = rng.uniform(r * 0.6, S - r * 0.6, size=2)
                theta = rng.uniform(0, 2 * math.pi)
                u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
                v = -(x - cx) * math.sin(theta) + (y - cy) * math.cos(theta)
                inside = _shape_mask(kind, u, v, r)
                room = distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1] > ring_radius  # ring inside, off the border
                if inside.any() and not (inside & taken).any() and room.any():
                    break
            else:
                break  # the image is full: fewer shapes
            body = np.array(colorsys.hsv_to_rgb(rng.uniform(), 0.85, 0.95)).reshape(3, 1) * rng.uniform(0.8, 1.0)
            image[:, inside] = body + 0.04 * rng.normal(size=(3, int(inside.sum())))
            centres = np.flatnonzero(room)
            my, mx = divmod(int(centres[rng.integers(len(centres))]), S)
            distance = np.hypot(x - mx, y - my)
            image[:, distance <= ring_radius] = 1.0
            image[:, distance <= marker_radius] = np.array(self.class_colours[cls]).reshape(3, 1)
            taken |= inside
            semantic[inside], instance[inside] = cls, shape_id
            id_to_class[shape_id] = cls
        image = torch.from_numpy(np.clip(image * 255, 0, 255).round().astype(np.uint8))
        return image, torch.from_numpy(semantic), torch.from_numpy(instance), id_to_class

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, semantic, instance, id_to_class = self.draw(index)
        sample = make_sample(image, semantic, self.transforms, instance=instance,
                             id_to_class=id_to_class if self.targets == "panoptic" else None,
                             name=f"shapes-{self.seed}-{index}")
        sample["id_to_class"] = id_to_class
        return sample
