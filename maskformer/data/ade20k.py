"""ADE20K-150 (SceneParsing): the 150 classes, the benchmark palette, the dataset (paper §4; detectron2's
`ade20k_sem_seg_*` registration in `detectron2/data/datasets/builtin.py`).

Layout of the official archive (http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip)::

    ADEChallengeData2016/
        images/{training,validation}/ADE_*.jpg
        annotations/{training,validation}/ADE_*.png     values 0..150, 0 = "other"

Labels are mapped as in the original code: 0 -> 255 (ignore), l -> l - 1, so classes are 0..149.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .folder import HFSegmentationDataset, SegmentationFolder

__all__ = ["ADE20K", "ADE20K_CLASSES", "ADE20K_PALETTE", "ADE20K_URL", "colorize"]

ADE20K_URL = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"

# First names of the benchmark's objectInfo150 table, in label order (label l is index l-1).
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

# The benchmark's colour for each class (RGB), in the same order.
ADE20K_PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70),
    (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200),
    (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220),
    (255, 9, 92), (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0), (0, 0, 255),
    (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245),
    (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0),
    (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0),
    (0, 255, 153), (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194), (0, 255, 82),
    (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0),
    (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170),
    (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112),
    (92, 255, 0), (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0),
    (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255),
    (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0),
    (25, 194, 194), (102, 255, 0), (92, 0, 255),
)


def colorize(segmentation: torch.Tensor, palette=ADE20K_PALETTE, ignore_index: int = 255,
             ignore_color: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
    """Class map `[H, W]` -> uint8 RGB `[H, W, 3]` (for `plt.imshow`); ids beyond the palette wrap around."""
    table = torch.tensor(palette, dtype=torch.uint8)  # [K, 3]
    ids = segmentation.long()
    rgb = table[ids.clamp(min=0) % len(table)]  # [H, W, 3]
    rgb[ids == ignore_index] = torch.tensor(ignore_color, dtype=torch.uint8)
    return rgb


class ADE20K(SegmentationFolder):
    """ADE20K-150 from the official `ADEChallengeData2016/` folder.

    Args:
        root: the `ADEChallengeData2016` folder or the folder that contains it.
        split: "training" (20,210 images) or "validation" (2,000).
        transforms: e.g. `train_transforms()` / `eval_transforms()` from `maskformer.data`.

    Samples follow :mod:`maskformer.data.collate`; labels are 0..149 with 255 = ignore.
    """

    def __init__(self, root: str | Path, split: str = "training", transforms: Callable | None = None):
        if split not in ("training", "validation"):
            raise ValueError(f"maskformer/data/ade20k.py: split must be 'training' or 'validation', got {split!r}")
        root = Path(root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        if not (root / "images" / split).is_dir() or not (root / "annotations" / split).is_dir():
            raise FileNotFoundError(
                f"maskformer/data/ade20k.py: ADE20K not found at {root} (expected images/{split}/ and "
                f"annotations/{split}/ inside it): download {ADE20K_URL}, unzip it and pass the "
                f"ADEChallengeData2016 folder (or its parent) as root; or use ADE20K.from_hub(...) when online")
        self.root, self.split = root, split
        super().__init__(root / "images" / split, root / "annotations" / split, ADE20K_CLASSES, transforms,
                         reduce_labels=True, palette=ADE20K_PALETTE)

    @staticmethod
    def from_hub(split: str = "train", transforms: Callable | None = None, repo_id: str = "scene_parse_150",
                 **load_kwargs) -> HFSegmentationDataset:
        """ADE20K-150 from the Hugging Face Hub (`scene_parse_150`, the Parquet conversion), via `datasets`.

        `split` is "train" or "validation". Needs internet on first use (about 1 GB), then the
        `datasets` cache. Extra keyword arguments go to `datasets.load_dataset`.
        """
        import datasets

        load_kwargs.setdefault("revision", "refs/convert/parquet")
        load_kwargs.setdefault("data_dir", "scene_parsing")
        try:
            dataset = datasets.load_dataset(repo_id, split=split, **load_kwargs)
        except Exception as error:  # offline, renamed repository, ... : say what to do instead
            raise RuntimeError(
                f"maskformer/data/ade20k.py: could not load {repo_id!r} split {split!r} from the Hugging Face Hub "
                f"({type(error).__name__}: {error}). Without internet, download {ADE20K_URL} elsewhere, unzip it "
                f"and use ADE20K(root, split='training' | 'validation')") from error
        return HFSegmentationDataset(dataset, ADE20K_CLASSES, transforms, image_column="image",
                                     label_column="annotation", reduce_labels=True, palette=ADE20K_PALETTE)
