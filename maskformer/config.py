"""One dataclass that describes a whole MaskFormer, with presets for the published models.

Every default names where it comes from: "paper" is Cheng et al. 2021 (arXiv 2107.06278), "orig" is
the authors' detectron2 configs (configs/ade20k-150/*.yaml in facebookresearch/MaskFormer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("resnet", "swin")
ARCHITECTURES = ("maskformer", "per_pixel")


@dataclass
class MaskFormerConfig:
    # ---- task ----------------------------------------------------------------------------------
    num_classes: int = 150  # ADE20K-150 (orig: MODEL.SEM_SEG_HEAD.NUM_CLASSES); +1 "no object" is added by the head
    id2label: dict[int, str] | None = None  # optional class names, kept with checkpoints

    # "maskformer": mask classification (the paper). "per_pixel": the paper's PerPixelBaseline, the same
    # backbone and pixel decoder with a per-pixel softmax over K classes and cross-entropy (paper §4.1).
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
    # which suits small inputs where res5 is only a few cells wide (the Shapes recipe: 2x2 at 64 px).
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

    # ---- input ---------------------------------------------------------------------------------
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet, images in [0, 1]
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. which checkpoint this came from)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"MaskFormerConfig.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.transformer_in_feature not in ("res5", "pixel_embedding"):
            raise ValueError(f"MaskFormerConfig.transformer_in_feature must be 'res5' or 'pixel_embedding', "
                             f"got {self.transformer_in_feature!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"MaskFormerConfig.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}")
        if self.fpn_dim % 32:
            raise ValueError(f"fpn_dim={self.fpn_dim} must be a multiple of 32 (GroupNorm uses 32 groups)")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        for name in ("resnet_depths", "resnet_channels", "swin_depths", "swin_num_heads", "pixel_mean", "pixel_std"):
            setattr(self, name, tuple(getattr(self, name)))

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MaskFormerConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

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
