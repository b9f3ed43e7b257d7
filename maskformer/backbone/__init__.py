"""Backbones: ResNet and Swin, each returning ``[res2, res3, res4, res5]`` at strides 4, 8, 16, 32."""

from __future__ import annotations

import re

import torch
from torch import nn

from ..config import MaskFormerConfig
from .resnet import FrozenBatchNorm2d, ResNet
from .swin import SwinTransformer

__all__ = ["ResNet", "SwinTransformer", "FrozenBatchNorm2d", "build_backbone", "load_timm_weights", "TIMM_WEIGHTS"]


def build_backbone(config: MaskFormerConfig) -> nn.Module:
    """The backbone that ``config`` describes; it has ``.channels`` and ``.strides`` attributes."""
    if config.backbone == "resnet":
        return ResNet(config.resnet_depths, config.resnet_stem_channels, config.resnet_channels, config.resnet_frozen_bn)
    return SwinTransformer(config.swin_embed_dim, config.swin_depths, config.swin_num_heads, config.swin_window_size,
                           config.swin_patch_size, config.swin_mlp_ratio, config.swin_drop_path_rate, config.swin_ape)


# The ImageNet weights the original configs start from, by their timm names.
TIMM_WEIGHTS = {
    ("resnet", (3, 4, 6, 3)): "resnet50.tv_in1k",  # orig: detectron2://ImageNetPretrained/torchvision/R-50.pkl
    ("resnet", (3, 4, 23, 3)): "resnet101.tv_in1k",
    ("swin", (96, (2, 2, 6, 2))): "swin_tiny_patch4_window7_224.ms_in1k",
    ("swin", (96, (2, 2, 18, 2))): "swin_small_patch4_window7_224.ms_in1k",
    ("swin", (128, (2, 2, 18, 2))): "swin_base_patch4_window12_384.ms_in22k",
    ("swin", (192, (2, 2, 18, 2))): "swin_large_patch4_window12_384.ms_in22k",
}


def timm_name(config: MaskFormerConfig) -> str:
    key = (("resnet", config.resnet_depths) if config.backbone == "resnet"
           else ("swin", (config.swin_embed_dim, config.swin_depths)))
    if key not in TIMM_WEIGHTS:
        raise ValueError(f"no ImageNet weights are known for the backbone {key}; known: {sorted(TIMM_WEIGHTS.values())}")
    return TIMM_WEIGHTS[key]


def _swin_from_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's Swin names -> ours. timm keeps each patch merging at the start of the *next* stage."""
    out = {}
    for k, v in sd.items():
        if k.startswith(("head.", "norm.")) or k.endswith(("relative_position_index", "attn_mask")):
            continue  # classifier, final norm and derived buffers are not part of the backbone
        k = k.replace("patch_embed.proj.", "patch_embed.").replace("patch_embed.norm.", "patch_norm.")
        k = re.sub(r"^layers\.(\d+)\.", r"stages.\1.", k)
        k = k.replace(".mlp.fc1.", ".mlp.0.").replace(".mlp.fc2.", ".mlp.2.")
        m = re.match(r"stages\.(\d+)\.downsample\.(.*)", k)
        if m and int(m.group(1)) > 0 and "stages.0.downsample.norm.weight" not in sd:
            k = f"stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out[k] = v
    return out


class _offline:
    """Within the block, huggingface_hub answers from its cache only (what HF_HUB_OFFLINE=1 does at start-up)."""

    def __init__(self, hub):
        self.constants = hub.constants

    def __enter__(self):
        self.before = self.constants.HF_HUB_OFFLINE
        self.constants.HF_HUB_OFFLINE = True

    def __exit__(self, *exc):
        self.constants.HF_HUB_OFFLINE = self.before


def load_timm_weights(backbone: nn.Module, config: MaskFormerConfig) -> None:
    """Initialise ``backbone`` from timm's ImageNet weights (downloaded from the Hugging Face Hub).

    Raises a ``RuntimeError`` that says what to do when the weights cannot be fetched (offline).
    """
    import timm

    from ..pretrained import hub_endpoint_reachable

    name = timm_name(config)
    hint = (f"Offline: train with --no-pretrained (pretrained_backbone=false) for a random initialisation, or "
            f"fetch the weights elsewhere (`hf download timm/{name}`) into the Hugging Face cache and set "
            f"HF_HUB_OFFLINE=1")
    try:
        if not hub_endpoint_reachable():  # no retries: the cache or nothing
            import huggingface_hub

            with _offline(huggingface_hub):
                source = timm.create_model(name, pretrained=True)
        else:
            source = timm.create_model(name, pretrained=True)
    except Exception as err:  # timm raises several kinds of network errors
        raise RuntimeError(f"could not get the ImageNet weights {name!r} through timm "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). {hint}") from None
    sd = source.state_dict()
    if config.backbone == "resnet":
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    else:
        sd = _swin_from_timm(sd)
    missing, unexpected = backbone.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("output_norms.")]  # new in MaskFormer, trained from scratch
    if missing or unexpected:
        raise RuntimeError(f"timm weights {name!r} do not fit: missing {missing}, unexpected {unexpected}")
