"""The model's contract: shapes, output access, deep supervision, batching, presets."""

import copy

import pytest
import torch

from maskformer import MaskFormer, MaskFormerConfig, MaskFormerOutput


@pytest.fixture(scope="module", params=["swin", "resnet"])
def model(request):
    torch.manual_seed(0)
    return MaskFormer(MaskFormerConfig.tiny(num_classes=7, backbone=request.param)).eval()


@pytest.mark.parametrize("height,width", [(64, 64), (90, 51), (33, 130)])
def test_output_shapes_and_access(model, height, width):
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    cfg = model.config
    assert isinstance(out, MaskFormerOutput)
    assert out.pred_logits.shape == (2, cfg.num_queries, cfg.num_classes + 1)
    assert out.pred_masks.shape == (2, cfg.num_queries, -(-height // 4), -(-width // 4))
    assert out["pred_logits"] is out.pred_logits and out["pred_masks"] is out.pred_masks
    assert out.aux_outputs == []  # eval mode: the last layer only
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width), return_aux=True)
    assert len(out.aux_outputs) == cfg.dec_layers - 1
    for aux in out.aux_outputs:
        assert aux["pred_logits"].shape == out.pred_logits.shape and aux["pred_masks"].shape == out.pred_masks.shape
    with pytest.raises(AttributeError, match="no field"):
        out.loss


def test_aux_outputs_follow_training_mode_unless_forced(model):
    """return_aux=None (the default): aux outputs in training mode (deep supervision), none in eval mode."""
    images = torch.randn(1, 3, 64, 64)
    layers = model.config.dec_layers
    try:
        with torch.no_grad():
            model.train()
            assert len(model(images).aux_outputs) == layers - 1
            assert model(images, return_aux=False).aux_outputs == []
            model.eval()
            assert model(images).aux_outputs == []
            assert len(model(images, return_aux=True).aux_outputs) == layers - 1
    finally:
        model.eval()  # the fixture is shared by the module's tests


def test_batched_equals_one_by_one(model):
    images = torch.randn(3, 3, 70, 96)
    with torch.no_grad():
        batched = model(images)
        single = [model(images[i:i + 1]) for i in range(3)]
    torch.testing.assert_close(batched.pred_logits, torch.cat([s.pred_logits for s in single]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched.pred_masks, torch.cat([s.pred_masks for s in single]), rtol=1e-5, atol=1e-4)


def test_aux_output_equals_truncated_decoder(model):
    """Deep supervision as in the original: aux output i is what the same weights give with i+1 decoder layers.

    (Hugging Face's auxiliary logits differ: they include the decoder's input and feed normalised states
    onward; see README, "Differences from transformers".)
    """
    images = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        full = model(images, return_aux=True)
        assert len(full.aux_outputs) == model.config.dec_layers - 1
        for i, aux in enumerate(full.aux_outputs):
            cut = copy.deepcopy(model)
            cut.transformer.layers = cut.transformer.layers[: i + 1]
            out = cut(images)
            torch.testing.assert_close(aux["pred_logits"], out.pred_logits, rtol=0, atol=1e-6)
            torch.testing.assert_close(aux["pred_masks"], out.pred_masks, rtol=0, atol=1e-5)
            assert not torch.allclose(aux["pred_masks"], full.pred_masks)


def test_no_deep_supervision_returns_no_aux():
    m = MaskFormer(MaskFormerConfig.tiny(deep_supervision=False)).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 64), return_aux=True)
    assert out.aux_outputs == []


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    m = MaskFormer(MaskFormerConfig.tiny(backbone="resnet")).train()
    out = m(torch.randn(2, 3, 64, 64))
    loss = out.pred_logits.square().mean() + out.pred_masks.square().mean()
    loss = loss + sum(a["pred_masks"].square().mean() for a in out.aux_outputs)
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # The first layer's state starts at zero, so its self-attention values are v_proj(0) = bias: that one
    # weight gets no gradient, in the original DETR decoder too.
    assert missing == ["transformer.layers.0.self_attn.v_proj.weight"]
    assert not any(n.endswith(("bn1.weight", "running_mean")) for n, _ in m.named_parameters())  # frozen BN


# Paper, Table 1 / Table 5: parameter counts of the published ADE20K models.
PUBLISHED_PARAMS_M = {"resnet50": 41, "resnet101": 60, "swin_tiny": 42, "swin_small": 63, "swin_base": 102,
                      "swin_large": 212}


@pytest.mark.parametrize("preset", PUBLISHED_PARAMS_M)
def test_presets_match_published_sizes(preset):
    config = getattr(MaskFormerConfig, preset)()
    with torch.device("meta"):  # count parameters without allocating them
        m = MaskFormer(config)
    assert config.num_classes == 150
    assert round(m.num_parameters / 1e6) == PUBLISHED_PARAMS_M[preset]
    assert getattr(MaskFormerConfig, preset)(num_classes=19).num_classes == 19


def test_config_round_trip_and_validation():
    cfg = MaskFormerConfig.resnet50(num_classes=3, id2label={0: "a", 1: "b", 2: "c"})
    assert MaskFormerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="backbone"):
        MaskFormerConfig(backbone="vit")
    with pytest.raises(ValueError, match="unknown MaskFormerConfig fields"):
        MaskFormerConfig.from_dict({"num_clases": 3})


@pytest.mark.parametrize("batch", [1, 3])
def test_folded_mask_head_equals_einsum(batch):
    """The mask head folded into the last conv gives the einsum's numbers (see maskformer.model.mask_logits)."""
    from maskformer.model import mask_logits

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(32, 48, 3, padding=1)
    embed, x = torch.randn(batch, 20, 48), torch.randn(batch, 32, 17, 23)
    reference = torch.einsum("bmd,bdhw->bmhw", embed, conv(x))
    for layout in (torch.contiguous_format, torch.channels_last):  # Swin's and ResNet's maps are channels-last
        for fold in (True, False, None):
            out = mask_logits(embed, conv, x.contiguous(memory_format=layout), fold=fold)
            torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)


def test_return_aux_false_keeps_final_prediction(model):
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full, final = model(images, return_aux=True), model(images, return_aux=False)
    assert final.aux_outputs == []
    torch.testing.assert_close(final.pred_logits, full.pred_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(final.pred_masks, full.pred_masks, rtol=1e-5, atol=1e-5)


def test_pixel_embedding_input_feature():
    """transformer_in_feature="pixel_embedding": the queries attend to the stride-4 mask features."""
    config = MaskFormerConfig.tiny(transformer_in_feature="pixel_embedding")
    model = MaskFormer(config).eval()
    x = torch.randn(2, 3, 70, 90)
    with torch.no_grad():
        out = model(x)
        features = model.backbone(x)
        pixel_embedding = model.pixel_decoder.mask_features(model.pixel_decoder.maps(features)[-1])
        hs = model.transformer(pixel_embedding)[-1]  # [B, Q, C]
    assert out.pred_masks.shape == (2, config.num_queries, 18, 23)
    assert model.transformer.input_proj.in_channels == config.mask_dim
    torch.testing.assert_close(out.pred_logits, model.class_embed(hs))
    torch.testing.assert_close(out.pred_masks, torch.einsum("bqd,bdhw->bqhw", model.mask_embed(hs), pixel_embedding),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="transformer_in_feature"):
        MaskFormerConfig.tiny(transformer_in_feature="res4")
