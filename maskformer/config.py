"""One dataclass that describes a whole MaskFormer, with presets for the published models.

Every default names where it comes from: "paper" is Cheng et al. 2021 (arXiv 2107.06278), "orig" is
the authors' detectron2 configs (configs/ade20k-150/*.yaml in facebookresearch/MaskFormer).

:func:`check_types` and :func:`check_values` are shared with :mod:`maskformer.recipes`: every config
dataclass checks its values against its type annotations and its allowed ranges when it is built, and
raises a one-line ``ValueError`` naming the field, the value and what is allowed
(``model.num_queries='abc': expected int``, ``model.dropout=1.5: must be in [0, 1)``).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MaskFormerConfig", "check_types", "check_values", "check_fields", "BACKBONES", "ARCHITECTURES"]

BACKBONES = ("resnet", "swin")
ARCHITECTURES = ("maskformer", "per_pixel", "per_pixel_plus")
MATCHINGS = ("bipartite", "fixed")
MASK_LOSSES = ("focal_dice", "bce_dice")
PER_PIXEL_LOSSES = ("cross_entropy", "focal_dice")
TRANSFORMER_IN_FEATURES = ("res5", "pixel_embedding", "transformer_encoder")
PIXEL_DECODERS = ("fpn", "msdeformattn", "transformer_encoder")


# ---- checking config values --------------------------------------------------------------------
class _Mismatch(Exception):
    """A value does not fit an annotation (internal: check_types turns it into a ValueError)."""


@functools.lru_cache(maxsize=None)
def _annotations(cls: type) -> dict[str, Any]:
    # ``from __future__ import annotations`` stores annotations as strings; this evaluates them.
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any) -> Any:
    """``value`` as annotation ``tp`` wants it (1 -> 1.0 for float, a list -> a tuple), or _Mismatch."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return _convert(value, arm)
            except _Mismatch:
                pass
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:  # True is an int to Python, never to a config; 1e5 (a float in YAML) is 100000
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, (str, os.PathLike)):  # a pathlib.Path for a directory field, from Python
            return os.fspath(value)
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0]) for v in value)
            if len(value) == len(args):
                return tuple(_convert(v, a) for v, a in zip(value, args))
    elif origin is dict:
        if isinstance(value, dict):
            key_type, value_type = args
            return {_convert(_json_key(k, key_type), key_type): _convert(v, value_type) for k, v in value.items()}
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, (tp, dict)):  # a nested section: its own class checks a dict when it builds it
            return value
    else:
        raise TypeError(f"check_types cannot check the annotation {tp!r}")
    raise _Mismatch


def _json_key(key: Any, key_type: Any) -> Any:
    """JSON object keys are strings: ``{"0": "wall"}`` in a config.json is the ``dict[int, str]`` ``{0: "wall"}``."""
    if key_type is int and isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return key


def _describe(tp: Any) -> str:
    """An annotation in a config writer's words: ``int | None`` -> "int or null"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "anything"
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if tp is bool:
        return "bool (true or false)"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} {_describe(args[0])}" if len(set(args)) == 1 else f"a list {list(args)}"
    if origin is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    return tp.__name__


def _name(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def check_types(config: Any, values: dict[str, Any], section: str) -> dict[str, Any]:
    """``values`` (field name -> value) checked against the annotations of the dataclass ``config`` (a class
    or an instance), returned converted: ints for float fields become floats, lists for tuple fields
    tuples, string keys of ``dict[int, ...]`` ints (as JSON writes them), integral floats for int fields
    ints (``1e5``). ``section`` prefixes field names in messages (``"solver"`` -> ``solver.lr``; ``""``: none).

    Raises ``ValueError`` with a one-line message: ``unknown solver fields ['lr_x']; known: [...]``, or
    ``solver.batch_size='abc': expected int``. Bools are not ints, and strings are not numbers.
    """
    cls = config if isinstance(config, type) else type(config)
    hints = _annotations(cls)
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {section or 'top-level'} fields {unknown}; known: {known}")
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = _convert(value, hints[name])
        except _Mismatch:
            expected = _describe(hints[name])
            hint = (" (quote it to keep it text)" if "str" in expected.split(" or ")
                    and isinstance(value, (bool, numbers.Number)) else "")
            raise ValueError(f"{_name(section, name)}={value!r}: expected {expected}{hint}") from None
    return checked


def check_values(config: Any, section: str, rules: list[tuple[str, bool, str]]) -> None:
    """Raise ``ValueError`` for the first failed rule ``(field, ok, what is allowed)``:
    ``("lr", lr > 0, "must be > 0")`` -> ``solver.lr=0.0: must be > 0``. NaN fails every comparison."""
    for name, ok, allowed in rules:
        if not ok:
            raise ValueError(f"{_name(section, name)}={getattr(config, name)!r}: {allowed}")


def check_fields(config: Any, section: str) -> None:
    """Type-check and convert a dataclass's own fields in place (for ``__post_init__``)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    for name, value in check_types(config, values, section).items():
        setattr(config, name, value)


@dataclass
class MaskFormerConfig:
    # ---- task ----------------------------------------------------------------------------------
    num_classes: int = 150  # ADE20K-150 (orig: MODEL.SEM_SEG_HEAD.NUM_CLASSES); +1 "no object" is added by the head
    id2label: dict[int, str] | None = None  # optional class names, kept with checkpoints

    # "maskformer": mask classification (the paper). "per_pixel": the paper's PerPixelBaseline, the same
    # backbone and pixel decoder with a per-pixel softmax over K classes and cross-entropy (paper §4.1).
    # "per_pixel_plus": PerPixelBaseline+ (paper Table 4; orig: SEM_SEG_HEAD.NAME PerPixelBaselinePlusHead), the
    # per-pixel softmax over K maps made by MaskFormer's transformer decoder and mask-embedding MLP, one query per
    # class (num_queries must equal num_classes) and no class head.
    architecture: str = "maskformer"

    # ---- backbone ------------------------------------------------------------------------------
    backbone: str = "swin"  # "resnet" or "swin"
    # ResNet (orig: MODEL.RESNETS.*): bottleneck blocks, stride in the 3x3 conv, frozen BatchNorm
    resnet_depths: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50
    resnet_stem_channels: int = 64  # orig: RESNETS.STEM_OUT_CHANNELS
    resnet_channels: tuple[int, ...] = (256, 512, 1024, 2048)  # res2..res5 output widths
    resnet_frozen_bn: bool = True  # orig: RESNETS.NORM "FrozenBN"
    # Swin (orig: MODEL.SWIN.*): Swin-T by default
    swin_embed_dim: int = 96
    swin_depths: tuple[int, ...] = (2, 2, 6, 2)
    swin_num_heads: tuple[int, ...] = (3, 6, 12, 24)
    swin_window_size: int = 7
    swin_patch_size: int = 4
    swin_mlp_ratio: float = 4.0
    swin_drop_path_rate: float = 0.3  # orig: SWIN.DROP_PATH_RATE for Swin-T/S/B/L ADE configs
    swin_ape: bool = False  # absolute position embedding; off in every published model

    # ---- pixel decoder (FPN) -------------------------------------------------------------------
    fpn_dim: int = 256  # orig: SEM_SEG_HEAD.CONVS_DIM
    mask_dim: int = 256  # orig: SEM_SEG_HEAD.MASK_DIM, the per-pixel embedding size

    # ---- transformer decoder (DETR) ------------------------------------------------------------
    # What the decoder's queries attend to (orig: MASK_FORMER.TRANSFORMER_IN_FEATURE): "res5", the backbone's
    # stride-32 map (every published model), or "pixel_embedding", the pixel decoder's stride-4 mask features,
    # which suits small inputs where res5 is only a few cells wide (the Shapes recipe: 2x2 at 64 px), or
    # "transformer_encoder", the output of the "+6 Enc" pixel decoder's encoder (pixel_decoder "transformer_encoder").
    transformer_in_feature: str = "res5"
    hidden_dim: int = 256  # paper §4: d_model 256
    num_queries: int = 100  # paper §4: N = 100 queries
    num_heads: int = 8  # orig: MASK_FORMER.NHEADS
    dim_feedforward: int = 2048  # orig: MASK_FORMER.DIM_FEEDFORWARD
    dec_layers: int = 6  # paper §4: 6 decoder layers
    dropout: float = 0.1  # orig: MASK_FORMER.DROPOUT (training only)
    deep_supervision: bool = True  # paper §3.4: losses after every decoder layer

    # ---- loss (read by MaskFormerLoss.from_config) --------------------------------------------------------
    class_weight: float = 1.0  # paper §4: lambda_cls
    mask_weight: float = 20.0  # paper §4: lambda_focal
    dice_weight: float = 1.0  # paper §4: lambda_dice
    no_object_weight: float = 0.1  # orig: MASK_FORMER.NO_OBJECT_WEIGHT (DETR's eos_coef)
    num_points: int | None = None  # Mask2Former's point-sampled loss (12544 there); None keeps the paper's full masks
    oversample_ratio: float = 3.0  # Mask2Former's default, used only with num_points
    importance_sample_ratio: float = 0.75  # Mask2Former's default, used only with num_points

    # ---- ablation switches (paper Table 4) ------------------------------------------------------
    # The number of queries, decoder layers, deep supervision and the transformer's input are the fields above
    # (num_queries, dec_layers, deep_supervision, transformer_in_feature); these are the rest.
    # How predictions meet targets: "bipartite", the Hungarian matching of paper §3.2; "fixed", query k always
    # answers class k's mask (Table 4: 43.7 vs 44.2 mIoU on ADE20K R50), which needs num_queries == num_classes.
    matching: str = "bipartite"
    # MaskFormer's mask terms: "focal_dice" (paper §3.3: loss_mask is the focal loss) or "bce_dice" (loss_mask is
    # binary cross-entropy, Mask2Former's choice; its weights there are class 2, mask 5, dice 5).
    mask_loss: str = "focal_dice"
    # The per-pixel baselines' loss: "cross_entropy" (paper §4.1) or "focal_dice", each class's map trained as a
    # binary mask with MaskFormer's focal + dice terms and weights (paper §4.3: the gain is not the loss).
    per_pixel_loss: str = "cross_entropy"
    # Full-mask focal + dice computed by the fused kernel (one mask at a time, gradient by hand, far less memory)
    # or, False, by the plain formulas on interpolated logits under autograd: equal numbers, the plain easier to read.
    fused_mask_loss: bool = True

    # ---- Mask2Former switches ---------------------------------------------------------------------
    # Mask2Former (Cheng et al., CVPR 2022, arXiv 2112.01527; orig: facebookresearch/Mask2Former) changes MaskFormer
    # in these steps. All are off by default, so the default model stays the paper's MaskFormer; each works alone,
    # and the mask2former_* presets turn all of them on (with dec_layers 9, dropout 0, mask_loss "bce_dice",
    # weights 2/5/5 and num_points 12544).
    masked_attention: bool = False  # §3.2.1: cross-attention only inside the previous prediction's mask (sigmoid >= 0.5)
    multi_scale_features: bool = False  # §3.2.2: decoder layers read the pixel decoder's 1/32, 1/16, 1/8 maps round robin
    cross_attention_first: bool = False  # §3.2.3: cross-attention before self-attention in every decoder layer
    learnable_query_features: bool = False  # §3.2.3: learned initial query features, supervised by a prediction before layer 1
    enforce_input_projection: bool = False  # orig: MASK_FORMER.ENFORCE_INPUT_PROJ (multi-scale maps projected even at equal widths)
    # "fpn" (MaskFormer), "transformer_encoder" (MaskFormer's "+6 Enc": a DETR encoder on res5 before the FPN, the
    # panoptic R50/R101 models of paper Table 3; its heads, FFN width and dropout are the decoder's) or "msdeformattn"
    # (Mask2Former §4). orig: SEM_SEG_HEAD.PIXEL_DECODER_NAME
    pixel_decoder: str = "fpn"
    pixel_decoder_layers: int = 6  # encoder layers of either encoder (orig: SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS)
    pixel_decoder_ffn_dim: int = 1024  # MSDeformAttn encoder FFN width (orig: 1024, fixed in msdeformattn.py)
    pixel_decoder_points: int = 4  # sampling points per head and level (orig: 4, fixed in msdeformattn.py)

    # ---- input ---------------------------------------------------------------------------------
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet, images in [0, 1]
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. which checkpoint this came from)

    def __post_init__(self):
        check_fields(self, "model")
        check_values(self, "model", [
            ("num_classes", self.num_classes >= 1, "must be >= 1"),
            ("architecture", self.architecture in ARCHITECTURES, f"must be one of {ARCHITECTURES}"),
            ("backbone", self.backbone in BACKBONES, f"must be one of {BACKBONES}"),
        ])
        if self.backbone == "resnet":  # only the chosen backbone's fields are read
            check_values(self, "model", [
                ("resnet_depths", len(self.resnet_depths) == 4 and min(self.resnet_depths) >= 1,
                 "must be 4 block counts >= 1 (res2..res5)"),
                ("resnet_stem_channels", self.resnet_stem_channels >= 1, "must be >= 1"),
                ("resnet_channels", len(self.resnet_channels) == 4 and min(self.resnet_channels) >= 1,
                 "must be 4 widths >= 1 (res2..res5)"),
            ])
        else:
            widths = tuple(self.swin_embed_dim * 2**i for i in range(4))
            check_values(self, "model", [
                ("swin_embed_dim", self.swin_embed_dim >= 1, "must be >= 1"),
                ("swin_depths", len(self.swin_depths) == 4 and min(self.swin_depths) >= 1,
                 "must be 4 block counts >= 1 (one per stage)"),
                ("swin_num_heads", len(self.swin_num_heads) == 4 and all(
                    h >= 1 and w % h == 0 for w, h in zip(widths, self.swin_num_heads)),
                 f"must be 4 head counts >= 1 that divide the stage widths {widths}"),
                ("swin_window_size", self.swin_window_size >= 1, "must be >= 1"),
                ("swin_patch_size", self.swin_patch_size >= 1, "must be >= 1"),
                ("swin_mlp_ratio", self.swin_mlp_ratio > 0, "must be > 0"),
                ("swin_drop_path_rate", 0 <= self.swin_drop_path_rate < 1, "must be in [0, 1)"),
            ])
        check_values(self, "model", [
            ("fpn_dim", self.fpn_dim >= 32 and self.fpn_dim % 32 == 0,
             "must be a positive multiple of 32 (GroupNorm uses 32 groups)"),
            ("mask_dim", self.mask_dim >= 1, "must be >= 1"),
            ("transformer_in_feature", self.transformer_in_feature in TRANSFORMER_IN_FEATURES,
             f"must be one of {TRANSFORMER_IN_FEATURES}"),
            ("hidden_dim", self.hidden_dim >= 1, "must be >= 1"),
            ("num_queries", self.num_queries >= 1, "must be >= 1"),
            ("num_heads", self.num_heads >= 1 and self.hidden_dim % self.num_heads == 0,
             f"must be >= 1 and divide model.hidden_dim={self.hidden_dim}"),
            ("dim_feedforward", self.dim_feedforward >= 1, "must be >= 1"),
            ("dec_layers", self.dec_layers >= 1, "must be >= 1"),
            ("dropout", 0 <= self.dropout < 1, "must be in [0, 1)"),
            ("class_weight", self.class_weight >= 0, "must be >= 0"),
            ("mask_weight", self.mask_weight >= 0, "must be >= 0"),
            ("dice_weight", self.dice_weight >= 0, "must be >= 0"),
            ("no_object_weight", self.no_object_weight >= 0, "must be >= 0"),
            ("num_points", self.num_points is None or self.num_points >= 1, "must be >= 1, or null for full masks"),
            ("oversample_ratio", self.oversample_ratio >= 1, "must be >= 1"),
            ("importance_sample_ratio", 0 <= self.importance_sample_ratio <= 1, "must be in [0, 1]"),
            ("pixel_std", min(self.pixel_std) > 0, "must be 3 values > 0"),
            ("pixel_decoder", self.pixel_decoder in PIXEL_DECODERS, f"must be one of {PIXEL_DECODERS}"),
            ("pixel_decoder_layers", self.pixel_decoder_layers >= 1, "must be >= 1"),
            ("pixel_decoder_ffn_dim", self.pixel_decoder_ffn_dim >= 1, "must be >= 1"),
            ("pixel_decoder_points", self.pixel_decoder_points >= 1, "must be >= 1"),
            ("transformer_in_feature", not self.multi_scale_features or self.transformer_in_feature == "res5",
             "must stay res5 with model.multi_scale_features=true (the decoder then reads the pixel decoder's maps)"),
            ("transformer_in_feature", (self.transformer_in_feature == "transformer_encoder")
             <= (self.pixel_decoder == "transformer_encoder"),
             "can be transformer_encoder only with model.pixel_decoder=transformer_encoder (the encoder it reads)"),
            ("pixel_decoder", self.architecture == "maskformer" or self.pixel_decoder == "fpn",
             f"must be fpn with model.architecture={self.architecture} (the baselines keep MaskFormer's FPN)"),
            ("num_heads", self.pixel_decoder != "transformer_encoder" or self.fpn_dim % self.num_heads == 0,
             f"must divide model.fpn_dim={self.fpn_dim} with model.pixel_decoder=transformer_encoder (its encoder's width)"),
            ("matching", self.matching in MATCHINGS, f"must be one of {MATCHINGS}"),
            ("mask_loss", self.mask_loss in MASK_LOSSES, f"must be one of {MASK_LOSSES}"),
            ("per_pixel_loss", self.per_pixel_loss in PER_PIXEL_LOSSES, f"must be one of {PER_PIXEL_LOSSES}"),
        ])
        one_query_per_class = ("model.architecture=per_pixel_plus" if self.architecture == "per_pixel_plus" else
                               "model.matching=fixed" if self.matching == "fixed" and self.architecture == "maskformer"
                               else None)
        if one_query_per_class is not None:
            check_values(self, "model", [
                ("num_queries", self.num_queries == self.num_classes,
                 f"must equal model.num_classes={self.num_classes} with {one_query_per_class} (query k is class k); "
                 f"set model.num_queries={self.num_classes}"),
            ])

    @property
    def backbone_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four backbone maps at strides 4, 8, 16, 32 (res2..res5)."""
        if self.backbone == "resnet":
            return tuple(self.resnet_channels)
        return tuple(self.swin_embed_dim * 2**i for i in range(4))

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["id2label"] is not None:
            d["id2label"] = {str(k): v for k, v in d["id2label"].items()}  # JSON keys are strings
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MaskFormerConfig":
        """The config of :meth:`to_dict` (a checkpoint's ``config.json``), every field type-checked."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:  # names the class: this is what a checkpoint's config.json holds
            raise ValueError(f"unknown MaskFormerConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**check_types(cls, d, "model"))

    # ---- presets of the published models (paper Table 1 / orig ADE20K-150 configs) -----------------
    @classmethod
    def resnet50(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls(num_classes=num_classes, backbone="resnet", resnet_depths=(3, 4, 6, 3), **kw)

    @classmethod
    def resnet101(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls(num_classes=num_classes, backbone="resnet", resnet_depths=(3, 4, 23, 3), **kw)

    @classmethod
    def swin_tiny(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls(num_classes=num_classes, backbone="swin", swin_embed_dim=96, swin_depths=(2, 2, 6, 2),
                   swin_num_heads=(3, 6, 12, 24), swin_window_size=7, **kw)

    @classmethod
    def swin_small(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls(num_classes=num_classes, backbone="swin", swin_embed_dim=96, swin_depths=(2, 2, 18, 2),
                   swin_num_heads=(3, 6, 12, 24), swin_window_size=7, **kw)

    @classmethod
    def swin_base(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        # The published Swin-B ADE model is the ImageNet-22k, 384-pixel, window-12 variant trained on 640 crops.
        return cls(num_classes=num_classes, backbone="swin", swin_embed_dim=128, swin_depths=(2, 2, 18, 2),
                   swin_num_heads=(4, 8, 16, 32), swin_window_size=12, **kw)

    @classmethod
    def swin_large(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls(num_classes=num_classes, backbone="swin", swin_embed_dim=192, swin_depths=(2, 2, 18, 2),
                   swin_num_heads=(6, 12, 24, 48), swin_window_size=12, **kw)

    @classmethod
    def tiny(cls, num_classes: int = 10, backbone: str = "swin", **kw) -> "MaskFormerConfig":
        """A few-hundred-thousand-parameter model for tests, notebooks and CPU experiments."""
        small = dict(num_classes=num_classes, backbone=backbone,
                     resnet_depths=(1, 1, 1, 1), resnet_stem_channels=16, resnet_channels=(32, 64, 128, 256),
                     swin_embed_dim=32, swin_depths=(1, 1, 2, 1), swin_num_heads=(1, 2, 4, 8), swin_window_size=7,
                     swin_drop_path_rate=0.0,
                     fpn_dim=64, mask_dim=64, hidden_dim=64, num_queries=20, num_heads=4, dim_feedforward=128,
                     dec_layers=3)
        small.update(kw)
        return cls(**small)

    # ---- Mask2Former presets (orig: Mask2Former's configs/ade20k/semantic-segmentation/*.yaml) -------------
    @classmethod
    def mask2former_resnet50(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls.resnet50(num_classes, **{**MASK2FORMER, **kw})

    @classmethod
    def mask2former_resnet101(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls.resnet101(num_classes, **{**MASK2FORMER, **kw})

    @classmethod
    def mask2former_swin_tiny(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls.swin_tiny(num_classes, **{**MASK2FORMER, **kw})

    @classmethod
    def mask2former_swin_small(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls.swin_small(num_classes, **{**MASK2FORMER, **kw})

    @classmethod
    def mask2former_swin_base(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        # the ImageNet-22k, 384-pixel, window-12 Swin-B (maskformer2_swin_base_IN21k_384_bs16_160k_res640.yaml)
        return cls.swin_base(num_classes, **{**MASK2FORMER, **kw})

    @classmethod
    def mask2former_swin_large(cls, num_classes: int = 150, **kw) -> "MaskFormerConfig":
        return cls.swin_large(num_classes, **{**MASK2FORMER, **kw})


# Every Mask2Former switch on, with Mask2Former's training settings (orig: configs/ade20k/semantic-segmentation/
# Base-ADE20K-SemanticSegmentation.yaml and maskformer2_R50_bs16_160k.yaml).
MASK2FORMER: dict[str, Any] = dict(
    masked_attention=True, multi_scale_features=True, cross_attention_first=True, learnable_query_features=True,
    pixel_decoder="msdeformattn",
    dec_layers=9,  # orig: MASK_FORMER.DEC_LAYERS 10, which counts the prediction before the first layer
    dropout=0.0,  # orig: MASK_FORMER.DROPOUT 0.0
    class_weight=2.0, mask_weight=5.0, dice_weight=5.0,  # orig: MASK_FORMER.CLASS_WEIGHT / MASK_WEIGHT / DICE_WEIGHT
    mask_loss="bce_dice",  # Mask2Former §3.3: binary cross-entropy + dice
    num_points=12544,  # orig: MASK_FORMER.TRAIN_NUM_POINTS (112 x 112)
)
