"""The "+6 Enc" pixel decoder (orig: TransformerEncoderPixelDecoder in mask_former/modeling/heads/pixel_decoder.py).

Hugging Face's MaskFormer has no such decoder, so the oracle is the original's forward written out with
``torch.nn.MultiheadAttention`` (which is what the original's DETR encoder layer uses), on our weights.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.loss import MaskFormerLoss
from maskformer.pixel_decoder import TransformerEncoderPixelDecoder
from maskformer.transformer_decoder import sine_position_embedding
from tests.synthetic import random_targets


def small_config(**kw):
    return MaskFormerConfig.tiny(num_classes=5, pixel_decoder="transformer_encoder",
                                 transformer_in_feature="transformer_encoder", pixel_decoder_layers=2, **kw)


def reference_encode(decoder: TransformerEncoderPixelDecoder, res5: torch.Tensor) -> torch.Tensor:
    """The original's input_proj -> TransformerEncoderOnly (post-norm DETR layers, sine positions of res5)."""
    x = decoder.input_proj(res5)
    B, C, h, w = x.shape
    pos = sine_position_embedding(h, w, C // 2).flatten(1).T[:, None].expand(-1, B, -1)  # [hw, B, C]
    src = x.flatten(2).permute(2, 0, 1)  # [hw, B, C], the original's layout
    for layer in decoder.encoder:
        attn = nn.MultiheadAttention(C, layer.self_attn.num_heads)
        ours = layer.self_attn
        with torch.no_grad():
            attn.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
            attn.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            attn.out_proj.load_state_dict(ours.out_proj.state_dict())
        q = src + pos
        src = layer.norm1(src + attn(q, q, value=src)[0])
        src = layer.norm2(src + layer.linear2(F.relu(layer.linear1(src))))
    return src.permute(1, 2, 0).reshape(B, C, h, w)


def test_forward_matches_the_original_formulas():
    torch.manual_seed(0)
    model = MaskFormer(small_config()).eval()
    decoder = model.pixel_decoder
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        features = model.backbone(images)
        encoded = decoder.encode(features[-1])
        torch.testing.assert_close(encoded, reference_encode(decoder, features[-1]), rtol=1e-5, atol=1e-5)
        # the top-down path starts from layer_4 of the encoder's output, as forward_features does
        y = decoder.layer_4(encoded)
        for lateral, output, x in zip(decoder.lateral_convs, decoder.output_convs, features[-2::-1]):
            y = output(lateral(x) + F.interpolate(y, size=x.shape[-2:], mode="nearest"))
        mask_features, _ = decoder(features)
        torch.testing.assert_close(mask_features, decoder.mask_features(y), rtol=1e-5, atol=1e-5)


def test_the_queries_attend_to_the_encoder_output():
    torch.manual_seed(0)
    model = MaskFormer(small_config()).eval()
    seen = []
    model.transformer.input_proj.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(images)
        expected = model.pixel_decoder.encode(model.backbone(images)[-1])
    assert len(seen) == 1 and seen[0].shape == expected.shape
    torch.testing.assert_close(seen[0], expected)


def test_trains_end_to_end():
    torch.manual_seed(0)
    config = small_config()
    model = MaskFormer(config).train()
    criterion = MaskFormerLoss.from_config(config)
    images = torch.randn(2, 3, 64, 64)
    targets = random_targets((2, 3), 64, 64, num_classes=config.num_classes)
    losses = criterion(model(images), targets)
    sum(losses.values()).backward()
    for name in ("input_proj.weight", "encoder.0.self_attn.q_proj.weight", "encoder.1.linear2.weight", "layer_4.0.weight"):
        grad = model.pixel_decoder.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_the_original_init_of_q_k_v():
    # nn.MultiheadAttention holds q, k, v in one [3C, C] matrix and DETR's Xavier init sees that shape:
    # bound sqrt(6 / 4C), not the sqrt(6 / 2C) of three separate [C, C] matrices.
    torch.manual_seed(0)
    C = 256
    decoder = TransformerEncoderPixelDecoder((256, 512, 1024, 2048), C, C, num_layers=1)
    attn = decoder.encoder[0].self_attn
    qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
    bound = math.sqrt(6 / (4 * C))
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.99 * bound
    assert torch.count_nonzero(attn.q_proj.bias) == 0 and torch.count_nonzero(attn.out_proj.bias) == 0


@pytest.mark.parametrize("preset, published", [("resnet50", 45.0)])
def test_parameter_count_of_the_panoptic_model(preset, published):
    # paper Table 3: MaskFormer R50 + 6 Enc, 133 COCO panoptic classes, 45M parameters
    config = getattr(MaskFormerConfig, preset)(num_classes=133, pixel_decoder="transformer_encoder",
                                               transformer_in_feature="transformer_encoder")
    assert abs(MaskFormer(config).num_parameters / 1e6 - published) < 0.5


def test_the_panoptic_recipes_use_it():
    from maskformer.recipes import load_config

    for name in ("coco-panoptic/maskformer_panoptic_R50_bs64_554k", "coco-panoptic/maskformer_panoptic_R101_bs64_554k"):
        model = load_config(name).model
        assert (model.pixel_decoder, model.transformer_in_feature, model.pixel_decoder_layers) == (
            "transformer_encoder", "transformer_encoder", 6), name
    swin = load_config("coco-panoptic/swin/maskformer_panoptic_swin_tiny_bs64_554k").model
    assert (swin.pixel_decoder, swin.transformer_in_feature) == ("fpn", "res5")  # the Swin models have no encoder


@pytest.mark.parametrize("fields, message", [
    ({"transformer_in_feature": "transformer_encoder"}, "model.pixel_decoder=transformer_encoder"),
    ({"pixel_decoder": "transformer_encoder", "architecture": "per_pixel"}, "must be fpn"),
])
def test_inconsistent_fields_fail_in_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as info:
        MaskFormerConfig.tiny(num_classes=5, **fields)
    assert "\n" not in str(info.value)
