"""Training recipes: what to train (model), on what (data), how (solver), and how often to look.

A :class:`TrainConfig` is plain data. It is written as YAML files in ``configs/`` that mirror the
authors' detectron2 configs one to one (``configs/ade20k-150/maskformer_swin_tiny_bs16_160k.yaml`` ...),
including their ``_BASE_`` inheritance, but with this repository's field names. Every solver default
and every ADE20K data default below is the original ADE20K-150 value (the original configs, paper §4); the key it comes
from is in the comment ("orig: SOLVER.BASE_LR").

Each config checks its fields when it is built, from YAML or from Python: types against the
annotations (:func:`maskformer.config.check_types`) and values against what can run
(:func:`maskformer.config.check_values`). A problem raises a one-line ``ValueError`` that names the
field, the value and what is allowed: ``solver.batch_size='abc': expected int``,
``solver.lr=0.0: must be > 0``.

>>> cfg = load_config("configs/ade20k-150/maskformer_R50_bs16_160k.yaml", ["solver.max_iters=1000"])
>>> cfg.solver.lr, cfg.solver.backbone_multiplier, cfg.model.backbone
(0.0001, 0.1, 'resnet')
"""

from __future__ import annotations

import dataclasses
import functools
import re
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import MaskFormerConfig, check_fields, check_types, check_values
# the one dataset registry, shared with the trainer and evaluate
from .data.build import AUGMENTATIONS, DATASET_NAMES, TASKS
from .data.shapes import CLASS_CUES

__all__ = ["DataConfig", "SolverConfig", "TrainConfig", "load_config", "CONFIG_DIR", "find_config", "DATASET_NAMES",
           "PRECISIONS"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODEL_PRESETS = ("resnet50", "resnet101", "swin_tiny", "swin_small", "swin_base", "swin_large", "tiny",
                 "mask2former_resnet50", "mask2former_resnet101", "mask2former_swin_tiny", "mask2former_swin_small",
                 "mask2former_swin_base", "mask2former_swin_large")
PRECISIONS = ("auto", "fp32", "bf16")
LR_SCHEDULES = ("poly", "step")


@dataclass
class DataConfig:
    dataset: str = "ade20k"  # one of DATASET_NAMES
    root: str | None = None  # ADE20K: the ADEChallengeData2016 folder; None -> the Hub (scene_parse_150)
    # training augmentation (orig INPUT.*): short edge from crop_size x 0.5..2.0, random crop, SSD jitter, flip
    crop_size: int = 512  # orig: INPUT.CROP.SIZE
    max_size: int = 2048  # orig: INPUT.MAX_SIZE_TRAIN
    single_category_max_area: float = 1.0  # orig: INPUT.CROP.SINGLE_CATEGORY_MAX_AREA
    color_aug_ssd: bool = True  # orig: INPUT.COLOR_AUG_SSD
    # evaluation (orig INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST)
    test_short_edge: int = 512
    test_max_size: int = 2048
    # multi-scale + flip evaluation (orig TEST.AUG.MIN_SIZES / MAX_SIZE; FLIP True)
    test_aug_short_edges: tuple[int, ...] = (256, 384, 512, 640, 768, 896)
    test_aug_max_size: int = 3584
    # Shapes only: the synthetic dataset's size and difficulty
    image_size: int = 64
    num_classes: int = 7
    num_train: int = 2000
    num_val: int = 100
    class_cue: str = "shape_colour"  # "marker": the many-class probe, a class only the whole segment tells (CLASS_CUES)
    num_workers: int = 4  # orig: DATALOADER.NUM_WORKERS
    # "folder" and "hf": your own data (label maps: pixel = class id 0..K-1, ignore_index = unlabelled)
    images: str | None = None  # folder: the directory of training images
    labels: str | None = None  # folder: the directory of same-named label PNGs
    classes: str | None = None  # a text file with one class name per line, or a comma-separated list
    reduce_labels: bool = False  # labels where 0 is "unlabelled" and classes start at 1 (ADE20K's convention)
    val_images: str | None = None  # folder: validation images; None -> hold out val_fraction of `images`
    val_labels: str | None = None  # folder: their label PNGs (given with val_images)
    val_fraction: float = 0.1  # folder without val_*: this fraction of the images, chosen with the seed, held out
    hf_name: str | None = None  # hf: a Hub dataset name, or a local directory saved with `datasets.save_to_disk`
    hf_train_split: str = "train"
    hf_val_split: str | None = "validation"  # None -> hold out val_fraction of the training split
    image_column: str = "image"
    label_column: str = "annotation"  # hf: the label maps
    # hf_panoptic: rows with an RGB-encoded panoptic PNG and its segments_info (id, category_id, iscrowd), as the
    # COCO panoptic format; the categories (id, name, isthing) come from a JSON file, as the Hub keeps them outside
    panoptic_column: str = "label"
    segments_column: str = "segments_info"
    categories: str | None = None  # hf_panoptic: a COCO panoptic JSON (its "categories") or a JSON category list
    ignore_index: int = 255  # the "unlabelled" label value; with more than 255 classes (16-bit PNGs) e.g. 65535
    # One of TASKS: what the trainer's evaluation reports (mIoU, PQ, AP); Shapes trains one target per shape for
    # "panoptic" and "instance" (orig: MODEL.MASK_FORMER.TEST.PANOPTIC_ON)
    task: str = "semantic"
    # panoptic / instance inference: keep queries above this class score (orig: MODEL.MASK_FORMER.TEST.
    # OBJECT_MASK_THRESHOLD; 0.8 COCO, 0.7 ADE20K panoptic)
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8  # orig: MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD
    # Training augmentation of real photos, one of AUGMENTATIONS (orig: INPUT.DATASET_MAPPER_NAME): "mask_former" (the
    # ADE20K recipe above: resize, category-area crop, SSD colour, flip) or "detr_panoptic" (COCO panoptic: flip, a
    # random crop half of the time, resize; maskformer.data.coco_transforms)
    augmentation: str = "mask_former"
    train_short_edges: tuple[int, ...] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)  # detr_panoptic:
    # orig INPUT.MIN_SIZE_TRAIN (the mask_former recipe derives its sizes from crop_size); long side at most max_size
    crop_range: tuple[int, int] = (384, 600)  # detr_panoptic: orig INPUT.CROP.SIZE with CROP.TYPE absolute_range

    def __post_init__(self):
        check_fields(self, "data")
        check_values(self, "data", [
            ("dataset", self.dataset in DATASET_NAMES, f"must be one of {DATASET_NAMES}"),
            ("crop_size", self.crop_size >= 1, "must be >= 1"),
            ("max_size", self.max_size >= 1, "must be >= 1"),
            ("single_category_max_area", 0 < self.single_category_max_area <= 1, "must be in (0, 1]"),
            ("test_short_edge", self.test_short_edge >= 1, "must be >= 1"),
            ("test_max_size", self.test_max_size >= 1, "must be >= 1"),
            ("test_aug_short_edges", len(self.test_aug_short_edges) >= 1 and min(self.test_aug_short_edges) >= 1,
             "must be one or more sizes >= 1"),
            ("test_aug_max_size", self.test_aug_max_size >= 1, "must be >= 1"),
            ("image_size", self.image_size >= 16, "must be >= 16 (Shapes draws shapes a few pixels wide)"),
            ("num_classes", self.num_classes >= 2, "must be >= 2 (Shapes: background and at least one shape)"),
            ("num_train", self.num_train >= 1, "must be >= 1"),
            ("num_val", self.num_val >= 1, "must be >= 1"),
            ("class_cue", self.class_cue in CLASS_CUES, f"must be one of {CLASS_CUES}"),
            ("num_workers", self.num_workers >= 0, "must be >= 0 (0 loads in the main process)"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be in (0, 1)"),
            ("ignore_index", 0 <= self.ignore_index <= 65535, "must be in 0..65535 (label PNGs are 8- or 16-bit)"),
            ("task", self.task in TASKS, f"must be one of {TASKS}"),
            ("object_mask_threshold", 0 <= self.object_mask_threshold < 1, "must be in [0, 1)"),
            ("overlap_threshold", 0 <= self.overlap_threshold <= 1, "must be in [0, 1]"),
            ("augmentation", self.augmentation in AUGMENTATIONS, f"must be one of {AUGMENTATIONS}"),
            ("train_short_edges", len(self.train_short_edges) >= 1 and min(self.train_short_edges) >= 1,
             "must be one or more sizes >= 1"),
            ("crop_range", len(self.crop_range) == 2 and 1 <= self.crop_range[0] <= self.crop_range[1],
             "must be (low, high) with 1 <= low <= high"),
        ])
        if self.dataset == "folder":
            missing = [f"data.{name}" for name in ("images", "labels", "classes") if getattr(self, name) is None]
            check_values(self, "data", [
                ("dataset", not missing, f"needs data.images, data.labels and data.classes (--images/--labels/"
                                         f"--classes); missing {', '.join(missing)}"),
                ("val_images", (self.val_images is None) == (self.val_labels is None),
                 f"comes with data.val_labels (both or neither), got data.val_labels={self.val_labels!r}"),
            ])
        if self.dataset in ("hf", "hf_panoptic"):
            check_values(self, "data", [
                ("hf_name", self.hf_name is not None,
                 f"must name the dataset for data.dataset={self.dataset!r} (a Hub name or a saved directory)"),
            ])
        if self.dataset == "hf_panoptic":
            check_values(self, "data", [
                ("categories", self.categories is not None,
                 "must name a COCO panoptic JSON (or a JSON list of {id, name, isthing}) for data.dataset='hf_panoptic'"),
            ])
        owners = {"images": ("folder",), "labels": ("folder",), "val_images": ("folder",), "val_labels": ("folder",),
                  "hf_name": ("hf", "hf_panoptic"), "categories": ("hf_panoptic",)}
        check_values(self, "data", [(name, getattr(self, name) is None or self.dataset in owner,
                                     f"is only read with data.dataset={' or '.join(owner)}, not {self.dataset!r}")
                                    for name, owner in owners.items()])


@dataclass
class SolverConfig:
    batch_size: int = 16  # orig: SOLVER.IMS_PER_BATCH, over all processes and accumulation steps
    lr: float = 1e-4  # orig: SOLVER.BASE_LR (Swin: 6e-5)
    weight_decay: float = 1e-4  # orig: SOLVER.WEIGHT_DECAY (Swin: 0.01)
    weight_decay_norm: float = 0.0  # orig: SOLVER.WEIGHT_DECAY_NORM
    weight_decay_embed: float = 0.0  # orig: SOLVER.WEIGHT_DECAY_EMBED
    backbone_multiplier: float = 0.1  # orig: SOLVER.BACKBONE_MULTIPLIER (Swin: 1.0)
    max_iters: int = 160_000  # orig: SOLVER.MAX_ITER
    warmup_iters: int = 0  # orig: SOLVER.WARMUP_ITERS (Swin: 1500)
    warmup_factor: float = 1.0  # orig: SOLVER.WARMUP_FACTOR (Swin: 1e-6)
    # "poly" (orig: LR_SCHEDULER_NAME WarmupPolyLR, the ADE20K configs) or "step" (WarmupMultiStepLR, detectron2's
    # default and the COCO configs': the rate is multiplied by lr_gamma at each of lr_steps)
    lr_schedule: str = "poly"
    poly_power: float = 0.9  # orig: SOLVER.POLY_LR_POWER
    lr_steps: tuple[int, ...] = ()  # orig: SOLVER.STEPS (lr_schedule "step")
    lr_gamma: float = 0.1  # orig: SOLVER.GAMMA (lr_schedule "step")
    clip_grad_norm: float | None = 0.01  # orig: SOLVER.CLIP_GRADIENTS (full_model, CLIP_VALUE 0.01)
    grad_accum_steps: int = 1  # micro-batches per optimiser step (same result, less memory)
    # One of PRECISIONS: "fp32"; "bf16" (autocast); "auto": bf16 on CUDA, fp32 on CPU. The original trained in
    # fp32: SOLVER.AMP.ENABLED is False in detectron2's defaults and no MaskFormer config turns it on.
    precision: str = "auto"

    def __post_init__(self):
        check_fields(self, "solver")
        check_values(self, "solver", [
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("grad_accum_steps", self.grad_accum_steps >= 1, "must be >= 1"),
            ("batch_size", self.grad_accum_steps < 1 or self.batch_size % self.grad_accum_steps == 0,
             f"must be divisible by solver.grad_accum_steps={self.grad_accum_steps} (images per micro-batch = "
             f"batch_size / grad_accum_steps)"),
            ("max_iters", self.max_iters >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("weight_decay_norm", self.weight_decay_norm >= 0, "must be >= 0"),
            ("weight_decay_embed", self.weight_decay_embed >= 0, "must be >= 0"),
            ("backbone_multiplier", self.backbone_multiplier >= 0, "must be >= 0 (0 freezes the backbone's updates)"),
            ("warmup_iters", self.warmup_iters >= 0, "must be >= 0"),
            ("warmup_factor", 0 < self.warmup_factor <= 1, "must be in (0, 1] (the first step's fraction of lr)"),
            ("poly_power", self.poly_power >= 0, "must be >= 0"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"must be one of {LR_SCHEDULES}"),
            ("lr_steps", list(self.lr_steps) == sorted(self.lr_steps) and all(s >= 1 for s in self.lr_steps),
             "must be increasing iterations >= 1"),
            ("lr_gamma", 0 < self.lr_gamma <= 1, "must be in (0, 1]"),
            ("clip_grad_norm", self.clip_grad_norm is None or self.clip_grad_norm > 0,
             "must be > 0, or null for no clipping"),
            ("precision", self.precision in PRECISIONS, f"must be one of {PRECISIONS}"),
        ])


@dataclass
class TrainConfig:
    model: MaskFormerConfig = field(default_factory=MaskFormerConfig.resnet50)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    pretrained_backbone: bool = True  # ImageNet weights from timm (orig: MODEL.WEIGHTS, R-50.pkl / swin_*.pkl)
    output_dir: str = "output"
    eval_period: int = 5000  # orig: TEST.EVAL_PERIOD; 0 = only at the end
    checkpoint_period: int = 5000  # orig: SOLVER.CHECKPOINT_PERIOD; 0 = only at the end
    keep_checkpoints: int = 2  # older periodic checkpoints are deleted
    log_period: int = 20  # iterations between lines in metrics.jsonl (and printed lines without a bar)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    tensorboard: bool = False  # also write TensorBoard event files to output_dir/tensorboard (needs tensorboard)

    def __post_init__(self):
        check_fields(self, "")
        if isinstance(self.model, dict):
            self.model = _model_config(self.model)
        if isinstance(self.data, dict):
            self.data = _build(DataConfig, self.data, "data")
        if isinstance(self.solver, dict):
            self.solver = _build(SolverConfig, self.solver, "solver")
        check_values(self, "", [
            ("output_dir", self.output_dir != "", "must be a directory name"),
            ("eval_period", self.eval_period >= 0, "must be >= 0 (0 = evaluate only at the end)"),
            ("checkpoint_period", self.checkpoint_period >= 0, "must be >= 0 (0 = save only at the end)"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "must be >= 1"),
            ("log_period", self.log_period >= 1, "must be >= 1"),
            ("device", _is_device(self.device), "must be 'auto' or a torch device such as 'cpu', 'cuda', 'cuda:1'"),
        ])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _build(cls, d, "")


def _is_device(name: str) -> bool:
    import torch

    if name == "auto":
        return True
    try:
        torch.device(name)
    except RuntimeError:
        return False
    return True


def _build(cls, d: dict[str, Any], section: str):
    """``cls`` from a dict; unknown names and wrong types raise a ValueError naming ``section.field``."""
    return cls(**check_types(cls, d, section))


def _model_config(d: dict[str, Any]) -> MaskFormerConfig:
    """``{"preset": "swin_tiny", "num_classes": 150, ...}`` -> the preset with those fields changed."""
    d = dict(d)
    preset = d.pop("preset", None)
    if preset is None:
        return MaskFormerConfig(**check_types(MaskFormerConfig, d, "model"))
    if preset not in MODEL_PRESETS:
        raise ValueError(f"model.preset={preset!r}: must be one of {MODEL_PRESETS}")
    base = getattr(MaskFormerConfig, preset)()
    return dataclasses.replace(base, **check_types(MaskFormerConfig, d, "model"))


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def _yaml_loader():
    """PyYAML's safe loader, reading ``3e-4`` as a number: YAML 1.1 wants ``3.0e-4`` and would
    otherwise hand the optimiser the string ``'3e-4'``."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    number = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    return Loader


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML config with its ``_BASE_`` chain resolved (paths relative to the file, as detectron2's)."""
    import yaml

    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: _BASE_ loop through {[str(p) for p in seen]}")
    try:
        with open(path) as f:
            d = yaml.load(f, Loader=_yaml_loader()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} not found; the shipped ones are under {CONFIG_DIR}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections, got {type(d).__name__}")
    base = d.pop("_BASE_", None)
    if base is None:
        return d
    return _merge(_read_yaml(path.parent / base, (*seen, path)), d)


def _parse_value(text: str) -> Any:
    """A YAML scalar or list, read like the config files (``3e-4`` is a number)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """``["solver.lr=1e-3", "model.num_queries=50"]`` -> ``d`` with those entries replaced (YAML values)."""
    d = _merge({}, d)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.field=value, e.g. solver.lr=1e-4")
        *sections, name = key.strip().split(".")
        node = d
        for s in sections:
            node = node.setdefault(s, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {s!r} is not a section")
        node[name] = _parse_value(value)
    return d


def find_config(name: str | os.PathLike) -> Path:
    """A config path, or a shipped config's name (``ade20k-150/maskformer_swin_tiny_bs16_160k``, ``shapes``)."""
    path = Path(name)
    if path.exists():
        return path
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    shipped = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml")
                     if not p.name.startswith("Base"))
    raise FileNotFoundError(f"no config {str(name)!r}: not a file, and not one of the shipped configs {shipped}")


def set_values(d: dict, values: Mapping[str, Any]) -> dict:
    """``{"data.root": "on"}`` -> ``d`` with those entries set to the values as they are (no YAML parsing)."""
    d = _merge({}, d)
    for key, value in values.items():
        *sections, name = key.split(".")
        node = d
        for s in sections:
            node = node.setdefault(s, {})
        node[name] = value
    return d


def load_config(name: str | os.PathLike, overrides: list[str] | None = None,
                values: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (a path or a shipped name, see :func:`find_config`), apply ``key=value`` overrides
    (YAML values, as on the command line), then ``values`` (typed values, e.g. from command-line flags),
    and check the result once."""
    path = find_config(name)
    d = set_values(apply_overrides(_read_yaml(path), overrides or []), values or {})
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
