"""Weights and configs from Hugging Face ``transformers`` MaskFormer checkpoints to ours.

Works on plain state dicts and ``config.json`` dictionaries, so loading a published checkpoint never
imports ``transformers``; :func:`maskformer.builders.from_transformers` is a convenience for a live HF model object.
Both the current (v5) and the older (v4) Hugging Face parameter names are accepted.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .config import MaskFormerConfig

# (pattern, replacement) applied in order to every Hugging Face key that survives DROPPED.
RENAMES: list[tuple[str, str]] = [
    # ---- Swin backbone ----
    (r"^model\.pixel_level_module\.encoder\.model\.embeddings\.patch_embeddings\.projection\.", "backbone.patch_embed."),
    (r"^model\.pixel_level_module\.encoder\.model\.embeddings\.norm\.", "backbone.patch_norm."),
    (r"^model\.pixel_level_module\.encoder\.model\.encoder\.layers\.(\d+)\.", r"backbone.stages.\1."),
    (r"^model\.pixel_level_module\.encoder\.hidden_states_norms\.", "backbone.output_norms."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.self\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.intermediate\.dense\.", ".mlp.0."),
    (r"(blocks\.\d+)\.output\.dense\.", r"\1.mlp.2."),
    # ---- ResNet backbone ----
    (r"^model\.pixel_level_module\.encoder\.embedder\.embedder\.convolution\.", "backbone.conv1."),
    (r"^model\.pixel_level_module\.encoder\.embedder\.embedder\.normalization\.", "backbone.bn1."),
    (r"^model\.pixel_level_module\.encoder\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.",
     lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.downsample.0."),
    (r"^model\.pixel_level_module\.encoder\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.",
     lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.downsample.1."),
    (r"^model\.pixel_level_module\.encoder\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.convolution\.",
     lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}."),
    (r"^model\.pixel_level_module\.encoder\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.normalization\.",
     lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}."),
    # ---- pixel decoder ----
    (r"^model\.pixel_level_module\.decoder\.fpn\.stem\.", "pixel_decoder.layer_4."),
    (r"^model\.pixel_level_module\.decoder\.fpn\.layers\.(\d+)\.proj\.", r"pixel_decoder.lateral_convs.\1."),
    (r"^model\.pixel_level_module\.decoder\.fpn\.layers\.(\d+)\.block\.", r"pixel_decoder.output_convs.\1."),
    (r"^model\.pixel_level_module\.decoder\.mask_projection\.", "pixel_decoder.mask_features."),
    # ---- transformer decoder ----
    (r"^model\.transformer_module\.queries_embedder\.", "transformer.query_embed."),
    (r"^model\.transformer_module\.input_projection\.", "transformer.input_proj."),
    (r"^model\.transformer_module\.decoder\.layernorm\.", "transformer.norm."),
    (r"^model\.transformer_module\.decoder\.layers\.", "transformer.layers."),
    (r"\.encoder_attn\.", ".cross_attn."),
    (r"\.o_proj\.", ".out_proj."),
    (r"\.self_attn_layer_norm\.", ".norm1."),
    (r"\.encoder_attn_layer_norm\.", ".norm2."),
    (r"\.final_layer_norm\.", ".norm3."),
    (r"\.(?:mlp\.)?fc1\.", ".linear1."),
    (r"\.(?:mlp\.)?fc2\.", ".linear2."),
    # ---- heads ----
    (r"^class_predictor\.", "class_embed."),
    (r"^mask_embedder\.(\d+)\.0\.", r"mask_embed.layers.\1."),
]

# Keys with no counterpart: the loss's class-weight buffer, derived buffers, and Swin's final
# LayerNorm, which Hugging Face keeps in the state dict but never uses for the four feature maps.
DROPPED = re.compile(
    r"^criterion\.|relative_position_index$|num_batches_tracked$|^model\.pixel_level_module\.encoder\.model\.layernorm\."
)
SWIN_QKV = re.compile(r"^(.*)\.attention\.self\.(query|key|value)\.(weight|bias)$")


def hf_config_to_ours(hf: dict[str, Any]) -> MaskFormerConfig:
    """Our config from a Hugging Face MaskFormer ``config.json`` (as a dict)."""
    bb, dec = hf.get("backbone_config") or {}, hf.get("decoder_config") or {}
    kind = bb.get("model_type")
    id2label = {int(k): v for k, v in (hf.get("id2label") or {}).items()}
    num_classes = hf.get("num_labels") or len(id2label)
    if not num_classes:
        raise ValueError("config.json has neither num_labels nor id2label: cannot tell the number of classes")
    kw: dict[str, Any] = dict(
        num_classes=num_classes,
        id2label=id2label or None,
        fpn_dim=hf.get("fpn_feature_size", 256),
        mask_dim=hf.get("mask_feature_size", 256),
        hidden_dim=dec.get("d_model", 256),
        num_queries=dec.get("num_queries", 100),
        num_heads=dec.get("decoder_attention_heads", 8),
        dim_feedforward=dec.get("decoder_ffn_dim", 2048),
        dec_layers=dec.get("decoder_layers", 6),
        no_object_weight=hf.get("no_object_weight", 0.1),
        class_weight=hf.get("cross_entropy_weight", 1.0),
        mask_weight=hf.get("mask_weight", 20.0),
        dice_weight=hf.get("dice_weight", 1.0),
    )
    if kind in ("swin", "maskformer-swin"):
        if bb.get("hidden_act", "gelu") != "gelu" or not bb.get("qkv_bias", True):
            raise ValueError(f"unsupported Swin variant: hidden_act={bb.get('hidden_act')}, qkv_bias={bb.get('qkv_bias')}")
        kw.update(backbone="swin", swin_embed_dim=bb.get("embed_dim", 96), swin_depths=tuple(bb.get("depths", (2, 2, 6, 2))),
                  swin_num_heads=tuple(bb.get("num_heads", (3, 6, 12, 24))), swin_window_size=bb.get("window_size", 7),
                  swin_patch_size=bb.get("patch_size", 4), swin_mlp_ratio=bb.get("mlp_ratio", 4.0),
                  swin_drop_path_rate=bb.get("drop_path_rate", 0.3), swin_ape=bb.get("use_absolute_embeddings", False))
    elif kind == "resnet":
        if bb.get("layer_type", "bottleneck") != "bottleneck" or bb.get("downsample_in_bottleneck", False) \
                or bb.get("downsample_in_first_stage", False):
            raise ValueError("only bottleneck ResNets with the stride in the 3x3 conv (MaskFormer's) are supported; got "
                             f"layer_type={bb.get('layer_type')}, downsample_in_bottleneck={bb.get('downsample_in_bottleneck')}, "
                             f"downsample_in_first_stage={bb.get('downsample_in_first_stage')}")
        kw.update(backbone="resnet", resnet_depths=tuple(bb.get("depths", (3, 4, 6, 3))),
                  resnet_stem_channels=bb.get("embedding_size", 64),
                  resnet_channels=tuple(bb.get("hidden_sizes", (256, 512, 1024, 2048))))
    else:
        raise ValueError(f"unsupported backbone model_type {kind!r} in config.json (supported: swin, maskformer-swin, resnet)")
    return MaskFormerConfig(**kw)


def hf_state_dict_to_ours(sd: dict[str, torch.Tensor], config: MaskFormerConfig) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face MaskFormer state dict to ours; Swin's separate q/k/v become one ``qkv``.

    Raises ``KeyError`` naming any key it does not know, rather than silently dropping it.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in sd.items():
        if DROPPED.search(key):
            continue
        m = SWIN_QKV.match(key)
        if m:  # collect query/key/value, concatenated below in that order (the original's qkv layout)
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
            continue
        new = key
        for pattern, repl in RENAMES:
            new = re.sub(pattern, repl, new)
        if new == key:
            unknown.append(key)
        out[new] = value
    for (prefix, kind), parts in qkv.items():
        new = prefix
        for pattern, repl in RENAMES:
            new = re.sub(pattern, repl, new)
        out[f"{new}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    if unknown:
        raise KeyError(f"unrecognised Hugging Face MaskFormer keys: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    if "transformer.input_proj.weight" not in out:
        # HF skips the 1x1 input projection when res5 already has hidden_dim channels: an identity conv is exact.
        out["transformer.input_proj.weight"] = torch.eye(config.hidden_dim)[:, :, None, None]
        out["transformer.input_proj.bias"] = torch.zeros(config.hidden_dim)
    return out


def load_converted(model, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that fails with a readable list of missing/unexpected keys."""
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"weights from {source} do not fit this MaskFormer: missing keys {result.missing_keys}, "
                           f"unexpected keys {result.unexpected_keys}")
