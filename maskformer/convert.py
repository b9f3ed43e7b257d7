"""Weights and configs from Hugging Face ``transformers`` MaskFormer and Mask2Former checkpoints to ours.

Works on plain state dicts and ``config.json`` dictionaries, so loading a published checkpoint never
imports ``transformers``; :func:`maskformer.builders.from_transformers` is a convenience for a live HF model object.
Both the current (v5) and the older (v4) Hugging Face parameter names are accepted. A Mask2Former
checkpoint (``"model_type": "mask2former"``) becomes our model with every Mask2Former switch on.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .config import MaskFormerConfig

# (pattern, replacement) applied in order to every Hugging Face key that survives DROPPED.
RENAMES: list[tuple[str, str]] = [
    # ---- Mask2Former: MSDeformAttn pixel decoder (first: the generic layer renames below would match it) ----
    (r"^model\.pixel_level_module\.decoder\.level_embed$", "pixel_decoder.level_embed"),
    (r"^model\.pixel_level_module\.decoder\.input_projections\.", "pixel_decoder.input_proj."),
    (r"^model\.pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.self_attn\.", r"pixel_decoder.layers.\1.attn."),
    (r"^model\.pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"pixel_decoder.layers.\1.norm1."),
    (r"^model\.pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.(?:mlp\.)?fc(\d)\.", r"pixel_decoder.layers.\1.linear\2."),
    (r"^model\.pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.final_layer_norm\.", r"pixel_decoder.layers.\1.norm2."),
    (r"^model\.pixel_level_module\.decoder\.adapter_(\d+)\.", lambda m: f"pixel_decoder.lateral_convs.{int(m[1]) - 1}."),
    (r"^model\.pixel_level_module\.decoder\.layer_(\d+)\.", lambda m: f"pixel_decoder.output_convs.{int(m[1]) - 1}."),
    # ---- Swin backbone (MaskFormer's "maskformer-swin" under encoder.model, Mask2Former's "swin" under
    # encoder.swin in v5 and directly under encoder in v4) ----
    (r"^model\.pixel_level_module\.encoder\.(?:swin\.)?embeddings\.patch_embeddings\.projection\.", "backbone.patch_embed."),
    (r"^model\.pixel_level_module\.encoder\.(?:swin\.)?embeddings\.norm\.", "backbone.patch_norm."),
    (r"^model\.pixel_level_module\.encoder\.(?:swin\.)?encoder\.layers\.(\d+)\.", r"backbone.stages.\1."),
    (r"^model\.pixel_level_module\.encoder\.hidden_states_norms\.stage(\d+)\.",
     lambda m: f"backbone.output_norms.{int(m[1]) - 1}."),
    (r"\.attention\.relative_position_bias\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"(blocks\.\d+)\.attention\.o_proj\.", r"\1.attn.proj."),
    (r"(blocks\.\d+)\.mlp\.fc1\.", r"\1.mlp.0."),
    (r"(blocks\.\d+)\.mlp\.fc2\.", r"\1.mlp.2."),
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
    # ---- Mask2Former: masked-attention decoder ----
    (r"^model\.transformer_module\.queries_features\.", "transformer.query_feat."),
    (r"^model\.transformer_module\.level_embed\.", "transformer.level_embed."),
    (r"^model\.transformer_module\.input_projections\.", "transformer.input_proj."),
    (r"^model\.transformer_module\.decoder\.mask_predictor\.mask_embedder\.(\d+)\.0\.", r"mask_embed.layers.\1."),
    (r"\.cross_attn_layer_norm\.", ".norm2."),
]

# Keys with no counterpart: the loss's class-weight buffer, derived buffers, and Swin's final
# LayerNorm, which Hugging Face keeps in the state dict but never uses for the four feature maps.
DROPPED = re.compile(
    r"^criterion\.|relative_position_index$|num_batches_tracked$"
    r"|^model\.pixel_level_module\.encoder\.(?:model\.|swin\.)?layernorm\."
)
SWIN_QKV = re.compile(r"^(.*)\.attention\.(?:self\.)?(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)$")
QKV_PART = {"query": 0, "key": 1, "value": 2, "q_proj": 0, "k_proj": 1, "v_proj": 2}
# Mask2Former's cross-attention is an nn.MultiheadAttention: one packed in_proj for q, k, v; ours has three.
PACKED_IN_PROJ = re.compile(r"^(model\.transformer_module\.decoder\.layers\.\d+\.cross_attn)\.in_proj_(weight|bias)$")


def hf_config_to_ours(hf: dict[str, Any]) -> MaskFormerConfig:
    """Our config from a Hugging Face MaskFormer or Mask2Former ``config.json`` (as a dict)."""
    id2label = {int(k): v for k, v in (hf.get("id2label") or {}).items()}
    num_classes = hf.get("num_labels") or len(id2label)
    if not num_classes:
        raise ValueError("config.json has neither num_labels nor id2label: cannot tell the number of classes")
    kw: dict[str, Any] = dict(num_classes=num_classes, id2label=id2label or None, **_backbone_fields(hf))
    if hf.get("model_type") == "mask2former":
        kw.update(_mask2former_fields(hf))
        return MaskFormerConfig(**kw)
    dec = hf.get("decoder_config") or {}
    kw.update(
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
    return MaskFormerConfig(**kw)


def _mask2former_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """The non-backbone fields of a Hugging Face ``Mask2FormerConfig``: every Mask2Former switch on."""
    unsupported = {k: hf.get(k) for k, ok in [("pre_norm", False), ("activation_function", "relu"), ("common_stride", 4)]
                   if hf.get(k, ok) != ok}
    if tuple(hf.get("feature_strides", (4, 8, 16, 32))) != (4, 8, 16, 32):
        unsupported["feature_strides"] = hf.get("feature_strides")
    if unsupported:
        raise ValueError(f"unsupported Mask2Former settings in config.json: {unsupported} (supported: post-norm, relu, "
                         "feature strides 4, 8, 16, 32 and common_stride 4, as in every published model)")
    return dict(
        masked_attention=True, multi_scale_features=True, cross_attention_first=True, learnable_query_features=True,
        pixel_decoder="msdeformattn",
        enforce_input_projection=hf.get("enforce_input_projection", False),
        fpn_dim=hf.get("feature_size", 256),
        mask_dim=hf.get("mask_feature_size", 256),
        hidden_dim=hf.get("hidden_dim", 256),
        num_queries=hf.get("num_queries", 100),
        num_heads=hf.get("num_attention_heads", 8),
        dim_feedforward=hf.get("dim_feedforward", 2048),
        dec_layers=hf.get("decoder_layers", 10) - 1,  # HF counts the prediction before the first layer, as the original
        dropout=float(hf.get("dropout", 0.0)),
        pixel_decoder_layers=hf.get("encoder_layers", 6),
        pixel_decoder_ffn_dim=hf.get("encoder_feedforward_dim", 1024),
        no_object_weight=hf.get("no_object_weight", 0.1),
        class_weight=hf.get("class_weight", 2.0),
        mask_weight=hf.get("mask_weight", 5.0),
        dice_weight=hf.get("dice_weight", 5.0),
        mask_loss="bce_dice",
        num_points=hf.get("train_num_points", 12544),
        oversample_ratio=hf.get("oversample_ratio", 3.0),
        importance_sample_ratio=hf.get("importance_sample_ratio", 0.75),
    )


def _backbone_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """The backbone fields of a Hugging Face MaskFormer/Mask2Former config (Swin or ResNet)."""
    bb = hf.get("backbone_config") or {}
    kind = bb.get("model_type")
    if kind in ("swin", "maskformer-swin"):
        if bb.get("hidden_act", "gelu") != "gelu" or not bb.get("qkv_bias", True):
            raise ValueError(f"unsupported Swin variant: hidden_act={bb.get('hidden_act')}, qkv_bias={bb.get('qkv_bias')}")
        return dict(backbone="swin", swin_embed_dim=bb.get("embed_dim", 96), swin_depths=tuple(bb.get("depths", (2, 2, 6, 2))),
                    swin_num_heads=tuple(bb.get("num_heads", (3, 6, 12, 24))), swin_window_size=bb.get("window_size", 7),
                    swin_patch_size=bb.get("patch_size", 4), swin_mlp_ratio=bb.get("mlp_ratio", 4.0),
                    swin_drop_path_rate=bb.get("drop_path_rate", 0.3), swin_ape=bb.get("use_absolute_embeddings", False))
    if kind == "resnet":
        if bb.get("layer_type", "bottleneck") != "bottleneck" or bb.get("downsample_in_bottleneck", False) \
                or bb.get("downsample_in_first_stage", False):
            raise ValueError("only bottleneck ResNets with the stride in the 3x3 conv (MaskFormer's) are supported; got "
                             f"layer_type={bb.get('layer_type')}, downsample_in_bottleneck={bb.get('downsample_in_bottleneck')}, "
                             f"downsample_in_first_stage={bb.get('downsample_in_first_stage')}")
        return dict(backbone="resnet", resnet_depths=tuple(bb.get("depths", (3, 4, 6, 3))),
                    resnet_stem_channels=bb.get("embedding_size", 64),
                    resnet_channels=tuple(bb.get("hidden_sizes", (256, 512, 1024, 2048))))
    raise ValueError(f"unsupported backbone model_type {kind!r} in config.json (supported: swin, maskformer-swin, resnet)")


def hf_state_dict_to_ours(sd: dict[str, torch.Tensor], config: MaskFormerConfig) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face MaskFormer or Mask2Former state dict to ours; Swin's separate q/k/v become one
    ``qkv``, and Mask2Former's packed cross-attention ``in_proj`` becomes separate q/k/v projections.

    Raises ``KeyError`` naming any key it does not know, rather than silently dropping it.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    unknown = []
    for key, value in sd.items():
        if DROPPED.search(key):
            continue
        m = SWIN_QKV.match(key)
        if m:  # collect query/key/value, concatenated below in that order (the original's qkv layout)
            qkv.setdefault((m[1], m[3]), {})[QKV_PART[m[2]]] = value
            continue
        m = PACKED_IN_PROJ.match(key)
        if m:
            key = f"{m[1]}.{{}}_proj.{m[2]}"
            for part, chunk in zip("qkv", value.chunk(3)):
                out[_rename(key.format(part))] = chunk
            continue
        new = _rename(key)
        if new == key:
            unknown.append(key)
        out[new] = value
    for (prefix, kind), parts in qkv.items():
        out[f"{_rename(prefix)}.attn.qkv.{kind}"] = torch.cat([parts[0], parts[1], parts[2]])
    if unknown:
        raise KeyError(f"unrecognised Hugging Face MaskFormer keys: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    if "transformer.input_proj.weight" not in out and not config.multi_scale_features:
        # HF skips the 1x1 input projection when res5 already has hidden_dim channels: an identity conv is exact.
        out["transformer.input_proj.weight"] = torch.eye(config.hidden_dim)[:, :, None, None]
        out["transformer.input_proj.bias"] = torch.zeros(config.hidden_dim)
    return out


def _rename(key: str) -> str:
    for pattern, repl in RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def load_converted(model, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that fails with a readable list of missing/unexpected keys."""
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"weights from {source} do not fit this MaskFormer: missing keys {result.missing_keys}, "
                           f"unexpected keys {result.unexpected_keys}")
