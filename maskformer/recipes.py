"""Training recipes: what to train (model), on what (data), how (solver), and how often to look.

A :class:`TrainConfig` is plain data. It is written as YAML files in ``configs/`` that mirror the
authors' detectron2 configs one to one (``configs/ade20k-150/maskformer_swin_tiny_bs16_160k.yaml`` ...),
including their ``_BASE_`` inheritance, but with this repository's field names. Every solver and
data default below is the original ADE20K-150 value (REFERENCE §5); the key it comes from is in
the comment ("orig: SOLVER.BASE_LR").

>>> cfg = load_config("configs/ade20k-150/maskformer_R50_bs16_160k.yaml", ["solver.max_iters=1000"])
>>> cfg.solver.lr, cfg.solver.backbone_multiplier, cfg.model.backbone
(0.0001, 0.1, 'resnet')
"""

from __future__ import annotations

import dataclasses
import functools
import re
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import MaskFormerConfig

__all__ = ["DataConfig", "SolverConfig", "TrainConfig", "load_config", "CONFIG_DIR", "find_config"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODEL_PRESETS = ("resnet50", "resnet101", "swin_tiny", "swin_small", "swin_base", "swin_large", "tiny")


@dataclass
class DataConfig:
    dataset: str = "ade20k"  # "ade20k" or "shapes" (built-in, synthetic, no download)
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
    num_workers: int = 4  # orig: DATALOADER.NUM_WORKERS


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
    poly_power: float = 0.9  # orig: SOLVER.POLY_LR_POWER
    clip_grad_norm: float | None = 0.01  # orig: SOLVER.CLIP_GRADIENTS (full_model, CLIP_VALUE 0.01)
    grad_accum_steps: int = 1  # micro-batches per optimiser step (same result, less memory)
    precision: str = "auto"  # "fp32", "bf16" (autocast), or "auto": bf16 on CUDA, fp32 on CPU


@dataclass
class TrainConfig:
    model: MaskFormerConfig = field(default_factory=MaskFormerConfig.resnet50)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    pretrained_backbone: bool = True  # ImageNet weights from timm (orig: MODEL.WEIGHTS, R-50.pkl / swin_*.pkl)
    output_dir: str = "output"
    eval_period: int = 5000  # orig: TEST.EVAL_PERIOD; 0 = only at the end
    checkpoint_period: int = 5000  # orig: SOLVER.CHECKPOINT_PERIOD
    keep_checkpoints: int = 2  # older periodic checkpoints are deleted
    log_period: int = 20  # iterations between lines in metrics.jsonl (and printed lines without a bar)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = _model_config(self.model)
        if isinstance(self.data, dict):
            self.data = _build(DataConfig, self.data, "data")
        self.data.test_aug_short_edges = tuple(self.data.test_aug_short_edges)
        if isinstance(self.solver, dict):
            self.solver = _build(SolverConfig, self.solver, "solver")
        if self.solver.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"solver.precision must be 'auto', 'fp32' or 'bf16', got {self.solver.precision!r}")
        if self.data.dataset not in ("ade20k", "shapes"):
            raise ValueError(f"data.dataset must be 'ade20k' or 'shapes', got {self.data.dataset!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _build(cls, d, "config")


def _build(cls, d: dict[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {where} fields {unknown}; known: {sorted(known)}")
    return cls(**d)


def _model_config(d: dict[str, Any]) -> MaskFormerConfig:
    """``{"preset": "swin_tiny", "num_classes": 150, ...}`` -> the preset with those fields changed."""
    d = dict(d)
    preset = d.pop("preset", None)
    if preset is None:
        return MaskFormerConfig.from_dict(d)
    if preset not in MODEL_PRESETS:
        raise ValueError(f"model.preset {preset!r} is not one of {MODEL_PRESETS}")
    base = getattr(MaskFormerConfig, preset)()
    return dataclasses.replace(base, **d)


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


def load_config(name: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (a path or a shipped name, see :func:`find_config`), apply ``key=value`` overrides."""
    path = find_config(name)
    d = apply_overrides(_read_yaml(path), overrides or [])
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
