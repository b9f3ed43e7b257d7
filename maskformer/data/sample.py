"""A small ADE20K look-alike written in the official layout, for notebooks, tests and CI without the download.

:func:`write_ade20k_sample` draws simple scenes (an outdoor view: sky, mountains or buildings,
trees, grass, a road, cars and people; or a room: ceiling, wall, floor, a window, a painting, a
door, a bed or a sofa) with 16 of the 150 ADE20K classes, painted in their benchmark colours with
shading and noise, and saves them exactly as the official archive stores them::

    ADEChallengeData2016/
        images/training/ADE_train_00000001.jpg ...      RGB JPEG
        annotations/training/ADE_train_00000001.png ... 8-bit label PNG, 0 = "other", l = class l-1
        images/validation/ADE_val_00000001.jpg ...
        annotations/validation/ADE_val_00000001.png ...

so that :class:`~maskformer.data.ADE20K` reads it like the real data, label rule included. As in
the real annotations, some pixels are 0 ("other"): one-pixel gaps along region boundaries and a
piece of clutter that belongs to no class. Image ``i`` of a split is drawn from
``numpy.random.default_rng((seed, split, i))``: the same seed writes the same files, whatever the counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .ade20k import ADE20K_PALETTE

__all__ = ["write_ade20k_sample", "SAMPLE_CLASSES"]

# ADE20K annotation values (1-based: the class name is ADE20K_CLASSES[value - 1]) used by the scenes.
WALL, BUILDING, SKY, FLOOR, TREE, CEILING, ROAD, BED, WINDOWPANE, GRASS = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PERSON, DOOR, MOUNTAIN, CAR, PAINTING, SOFA = 13, 15, 17, 21, 23, 24
SAMPLE_CLASSES = (WALL, BUILDING, SKY, FLOOR, TREE, CEILING, ROAD, BED, WINDOWPANE, GRASS,
                  PERSON, DOOR, MOUNTAIN, CAR, PAINTING, SOFA)

SPLITS = {"training": ("train", 0), "validation": ("val", 1)}  # folder -> (file prefix, seed component)


class _Canvas:
    """A label map and a region map drawn together: every `paint` call is a new region (for shading)."""

    def __init__(self, height: int, width: int):
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float64)
        self.label = np.zeros((height, width), np.uint8)
        self.region = np.zeros((height, width), np.int32)
        self.region_class = [0]  # region id -> annotation value (region 0: nothing drawn)

    def paint(self, mask: np.ndarray, value: int) -> None:
        self.region_class.append(value)
        self.label[mask] = value
        self.region[mask] = len(self.region_class) - 1

    def rect(self, top: float, bottom: float, left: float, right: float) -> np.ndarray:
        return (self.y >= top) & (self.y < bottom) & (self.x >= left) & (self.x < right)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2 <= 1


def _outdoor(c: _Canvas, rng: np.random.Generator, H: int, W: int) -> None:
    horizon = rng.uniform(0.4, 0.6) * H
    c.paint(c.y < horizon, SKY)
    if rng.random() < 0.5:  # a mountain range: peaks whose slopes meet the horizon
        for _ in range(rng.integers(1, 3)):
            cx, height, half = rng.uniform(0, W), rng.uniform(0.15, 0.3) * H, rng.uniform(0.25, 0.5) * W
            c.paint((c.y < horizon) & (c.y > horizon - height * (1 - np.abs(c.x - cx) / half)), MOUNTAIN)
    else:  # a row of buildings standing on the horizon
        left = rng.uniform(-0.1, 0.3) * W
        for _ in range(rng.integers(1, 4)):
            width, height = rng.uniform(0.12, 0.3) * W, rng.uniform(0.15, 0.35) * H
            c.paint(c.rect(horizon - height, horizon, left, left + width), BUILDING)
            left += width + rng.uniform(0.02, 0.15) * W
    c.paint(c.y >= horizon, GRASS)
    cx, spread = rng.uniform(0.3, 0.7) * W, rng.uniform(0.5, 1.2)  # a road that widens towards the viewer
    c.paint((c.y >= horizon) & (np.abs(c.x - cx) < 0.04 * W + spread * (c.y - horizon)), ROAD)
    for _ in range(rng.integers(1, 4)):
        ry = rng.uniform(0.08, 0.16) * H
        c.paint(c.ellipse(horizon - rng.uniform(0, 0.5) * ry, rng.uniform(0, W), ry, rng.uniform(0.05, 0.1) * W), TREE)
    if rng.random() < 0.8:
        top, height, width = rng.uniform(0.72, 0.82) * H, rng.uniform(0.1, 0.15) * H, rng.uniform(0.18, 0.28) * W
        left = cx + rng.uniform(-0.6, 0.1) * width
        c.paint(c.rect(top, top + height, left, left + width), CAR)
    if rng.random() < 0.7:
        ry = rng.uniform(0.08, 0.12) * H
        c.paint(c.ellipse(rng.uniform(horizon + ry, H - ry), rng.uniform(0.05, 0.95) * W, ry, 0.35 * ry), PERSON)


def _indoor(c: _Canvas, rng: np.random.Generator, H: int, W: int) -> None:
    floor_line = rng.uniform(0.6, 0.75) * H
    ceiling_line = rng.uniform(0.1, 0.2) * H if rng.random() < 0.6 else 0.0
    c.paint(c.y < floor_line, WALL)
    c.paint(c.y < ceiling_line, CEILING)
    c.paint(c.y >= floor_line, FLOOR)
    if rng.random() < 0.7:
        top, left = rng.uniform(ceiling_line + 0.05 * H, 0.3 * H), rng.uniform(0.05, 0.6) * W
        c.paint(c.rect(top, top + rng.uniform(0.2, 0.3) * H, left, left + rng.uniform(0.2, 0.3) * W), WINDOWPANE)
    if rng.random() < 0.5:
        left = rng.uniform(0.05, 0.8) * W
        c.paint(c.rect(rng.uniform(0.25, 0.35) * H, floor_line, left, left + rng.uniform(0.12, 0.16) * W), DOOR)
    if rng.random() < 0.6:
        top, left = rng.uniform(ceiling_line + 0.05 * H, 0.35 * H), rng.uniform(0.1, 0.8) * W
        c.paint(c.rect(top, top + rng.uniform(0.1, 0.15) * H, left, left + rng.uniform(0.1, 0.15) * W), PAINTING)
    if rng.random() < 0.85:  # furniture standing on the floor, its back against the wall
        value = BED if rng.random() < 0.5 else SOFA
        top, left = floor_line - rng.uniform(0.1, 0.2) * H, rng.uniform(0.0, 0.55) * W
        c.paint(c.rect(top, floor_line + rng.uniform(0.1, 0.2) * H, left, left + rng.uniform(0.3, 0.45) * W), value)


def _draw(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: uint8 RGB `[H, W, 3]` and uint8 annotation `[H, W]` with values in {0} | SAMPLE_CLASSES."""
    c = _Canvas(height, width)
    (_outdoor if rng.random() < 0.5 else _indoor)(c, rng, height, width)
    if rng.random() < 0.7:  # clutter that is none of the 150 classes: annotated 0 ("other")
        ry = rng.uniform(0.05, 0.1) * height
        c.paint(c.ellipse(rng.uniform(0.3, 0.9) * height, rng.uniform(0, width), ry, rng.uniform(0.7, 1.5) * ry), 0)

    # Colours: each region its class's benchmark colour, shaded, with a vertical gradient and noise.
    palette = np.array(((128, 128, 128),) + ADE20K_PALETTE, np.float64)  # index = annotation value
    base = palette[np.array(c.region_class)]  # [R, 3]
    base[0 == np.array(c.region_class)] = rng.uniform(40, 220, size=(1, 3))  # clutter: any colour
    shade = rng.uniform(0.75, 1.05, size=(len(base), 1))  # [R, 1]
    gradient = 1 + 0.15 * (c.y / height - 0.5)  # [H, W]: a little lighter towards the bottom
    image = base[c.region] * shade[c.region] * gradient[..., None] + rng.normal(0, 10, size=(height, width, 3))
    image = np.clip(image, 0, 255).round().astype(np.uint8)

    # One-pixel gaps along boundaries, as annotators leave them: those pixels are "other" too.
    label = c.label.copy()
    edge = np.zeros_like(label, dtype=bool)
    edge[:, :-1] |= c.region[:, :-1] != c.region[:, 1:]
    edge[:-1, :] |= c.region[:-1, :] != c.region[1:, :]
    label[edge] = 0
    return image, label


def write_ade20k_sample(root: str | Path, num_train: int = 16, num_val: int = 4, size: tuple[int, int] = (96, 128),
                        seed: int = 0) -> Path:
    """Write a small dataset in the official ADE20K layout under `root`; returns `root/ADEChallengeData2016`.

    Args:
        root: folder in which `ADEChallengeData2016/` is created.
        num_train, num_val: number of training and validation images.
        size: `(height, width)` of every image.
        seed: image `i` of a split depends only on `(seed, split, i)`.

    Files that already exist under the written names are replaced; a split folder holding any other
    file is refused, so that real ADE20K data is never overwritten or mixed with the sample.
    """
    height, width = size
    if height < 32 or width < 32:
        raise ValueError(f"maskformer/data/sample.py: size={size} is too small to draw a scene; use at least (32, 32)")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"maskformer/data/sample.py: num_train={num_train}, num_val={num_val}; both must be >= 1")
    dataset = Path(root) / "ADEChallengeData2016"
    counts = {"training": num_train, "validation": num_val}
    names = {split: [f"ADE_{SPLITS[split][0]}_{i:08d}" for i in range(1, n + 1)] for split, n in counts.items()}
    for split, stems in names.items():
        for kind, suffix in (("images", ".jpg"), ("annotations", ".png")):
            folder = dataset / kind / split
            expected = {stem + suffix for stem in stems}
            others = sorted(p.name for p in folder.iterdir() if p.name not in expected) if folder.is_dir() else []
            if others:
                raise FileExistsError(
                    f"maskformer/data/sample.py: {folder} already holds {len(others)} other files ({', '.join(others[:3])}"
                    f"{', ...' if len(others) > 3 else ''}); write the sample into an empty folder")
    for split, stems in names.items():
        (dataset / "images" / split).mkdir(parents=True, exist_ok=True)
        (dataset / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i, stem in enumerate(stems):
            image, label = _draw(np.random.default_rng((seed, SPLITS[split][1], i)), height, width)
            Image.fromarray(image, "RGB").save(dataset / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(label, "L").save(dataset / "annotations" / split / f"{stem}.png")
    return dataset
