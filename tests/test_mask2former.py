"""Mask2Former's switches, one at a time: each runs alone, the defaults stay MaskFormer, the parts do what they say."""

import math

import pytest
import torch
import torch.nn.functional as F

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.model import AttentionMasks
from maskformer.msdeform_pixel_decoder import MSDeformAttnPixelDecoder, reference_points, sample_and_mix

SWITCHES = [dict(masked_attention=True), dict(multi_scale_features=True), dict(cross_attention_first=True),
            dict(learnable_query_features=True), dict(pixel_decoder="msdeformattn"),
            dict(masked_attention=True, multi_scale_features=True, cross_attention_first=True,
                 learnable_query_features=True, pixel_decoder="msdeformattn", dropout=0.0)]


def test_defaults_are_maskformer():
    config = MaskFormerConfig()
    assert not (config.masked_attention or config.multi_scale_features or config.cross_attention_first
                or config.learnable_query_features) and config.pixel_decoder == "fpn"
    keys = MaskFormer(MaskFormerConfig.tiny()).state_dict().keys()
    assert not any("query_feat" in k or "level_embed" in k for k in keys)


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "+".join(s))
def test_each_switch_alone(switches):
    torch.manual_seed(0)
    config = MaskFormerConfig.tiny(num_classes=7, **switches)
    model = MaskFormer(config).eval()
    images = torch.randn(2, 3, 70, 90)
    with torch.no_grad():
        out = model(images, return_aux=True)
        single = model(images[1:])
    extra = 1 if config.learnable_query_features else 0  # the prediction before the first layer
    assert len(out.aux_outputs) == config.dec_layers - 1 + extra
    assert out.pred_masks.shape == (2, config.num_queries, 18, 23)
    torch.testing.assert_close(single.pred_logits, out.pred_logits[1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(single.pred_masks, out.pred_masks[1:], rtol=1e-5, atol=1e-4)
    model.train()(images).pred_masks.float().mean().backward()  # trains


def test_attention_masks_equal_thresholded_full_masks():
    """Masks computed at the map's size from resized embeddings equal the original's way: full stride-4
    masks, resized, thresholded; an empty mask opens every pixel."""
    torch.manual_seed(0)
    pixel_embedding = torch.randn(2, 8, 28, 36)
    pixel_embedding[:, 0] = 1.0  # a constant channel ...
    hs = torch.randn(2, 5, 8)
    hs[0, 3] = 0
    hs[0, 3, 0] = -5.0  # ... so that query 3 of image 0 has logit -5 everywhere: an empty mask
    masks = AttentionMasks(torch.nn.Identity(), pixel_embedding)  # mask embedding = the state itself
    allowed = masks(hs, (7, 9))  # [B, Q, 63]
    full = torch.einsum("bqd,bdhw->bqhw", hs, pixel_embedding)  # [B, Q, 28, 36], the original's stride-4 masks
    reference = F.interpolate(full, size=(7, 9), mode="bilinear", align_corners=False).sigmoid().flatten(2) >= 0.5
    assert allowed[0, 3].all() and not reference[0, 3].any()
    reference[0, 3] = True
    assert torch.equal(allowed, reference)
    assert 0.2 < allowed.float().mean() < 0.8


def naive_bilinear(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Read ``image [C, h, w]`` at (x, y) in [0, 1] (pixel centres at (i + 0.5) / w), zero outside."""
    _, h, w = image.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(image.shape[0])
    for xi, yi in [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)]:
        if 0 <= xi < w and 0 <= yi < h:
            out += (1 - abs(px - xi)) * (1 - abs(py - yi)) * image[:, yi, xi]
    return out


def test_deformable_sampling_equals_a_loop_over_points():
    torch.manual_seed(0)
    shapes = [(3, 4), (5, 7)]
    B, N, M, d, L, P = 2, 6, 2, 3, len(shapes), 2
    value = torch.randn(B, sum(h * w for h, w in shapes), M, d)
    locations = torch.rand(B, N, M, L, P, 2) * 1.2 - 0.1  # some points fall outside the maps
    weights = torch.rand(B, N, M, L, P).softmax(-1)
    out = sample_and_mix(value, shapes, locations, weights)  # [B, N, M*d]
    maps = [v.permute(0, 2, 3, 1).reshape(B, M, d, h, w)
            for v, (h, w) in zip(value.split([h * w for h, w in shapes], dim=1), shapes)]
    for b in range(B):
        for n in range(N):
            for m in range(M):
                expected = sum(weights[b, n, m, lvl, p] * naive_bilinear(maps[lvl][b, m], *locations[b, n, m, lvl, p].tolist())
                               for lvl in range(L) for p in range(P))
                torch.testing.assert_close(out[b, n, m * d:(m + 1) * d], expected, rtol=1e-5, atol=1e-5)


def test_reference_points_are_pixel_centres():
    points = reference_points([(2, 3)])
    assert points.shape == (6, 2)
    torch.testing.assert_close(points[:3], torch.tensor([[1 / 6, 0.25], [0.5, 0.25], [5 / 6, 0.25]]))


def test_msdeform_pixel_decoder_maps():
    torch.manual_seed(0)
    decoder = MSDeformAttnPixelDecoder((16, 32, 64, 128), conv_dim=32, mask_dim=24, num_layers=2, num_heads=4,
                                       dim_feedforward=64)
    features = [torch.randn(2, c, 40 // s, 52 // s) for c, s in zip((16, 32, 64, 128), (1, 2, 4, 8))]
    mask_features, maps = decoder(features)
    assert [tuple(m.shape[-2:]) for m in maps] == [(5, 6), (10, 13), (20, 26), (40, 52)]
    assert mask_features.shape == (2, 24, 40, 52)
    torch.testing.assert_close(mask_features, decoder.mask_features(decoder.maps(features)[-1]))


# Mask2Former, Table 3 (ADE20K-150 semantic segmentation): parameter counts of the published models.
PUBLISHED_PARAMS_M = {"resnet50": 44, "resnet101": 63, "swin_tiny": 47, "swin_small": 69, "swin_base": 107,
                      "swin_large": 215}


@pytest.mark.parametrize("preset", PUBLISHED_PARAMS_M)
def test_mask2former_presets_match_published_sizes(preset):
    config = getattr(MaskFormerConfig, f"mask2former_{preset}")()
    with torch.device("meta"):  # count parameters without allocating them
        m = MaskFormer(config)
    assert config.num_classes == 150 and config.dec_layers == 9 and config.dropout == 0.0
    assert abs(m.num_parameters / 1e6 - PUBLISHED_PARAMS_M[preset]) < 0.6


def test_gather_equals_grid_sample_values_and_gradients():
    """The model's weighted gather (embedding_bag) is grid_sample's bilinear read, mixed: values and gradients."""
    from maskformer.msdeform_pixel_decoder import gather_and_mix

    torch.manual_seed(0)
    shapes = [(3, 4), (5, 7), (8, 6)]
    B, N, M, d, L, P = 2, 9, 2, 4, len(shapes), 3
    value = torch.randn(B, sum(h * w for h, w in shapes), M, d, dtype=torch.float64, requires_grad=True)
    locations = (torch.rand(B, N, M, L, P, 2, dtype=torch.float64) * 1.6 - 0.3).requires_grad_()  # many outside
    weights = torch.rand(B, N, M, L, P, dtype=torch.float64).softmax(-1).requires_grad_()
    inputs = (value, locations, weights)
    ref, out = sample_and_mix(value, shapes, locations, weights), gather_and_mix(value, shapes, locations, weights)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    for g, r in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(g, r)


def test_mask2former_gradients_reach_every_parameter():
    """Mask2Former's loss trains every weight of the all-switches model, the learned query features included."""
    from maskformer import MaskFormerLoss
    from maskformer.config import MASK2FORMER

    torch.manual_seed(0)
    config = MaskFormerConfig.tiny(num_classes=5, **{**MASK2FORMER, "num_points": 200})
    model = MaskFormer(config).train()
    targets = [{"labels": torch.tensor([1, 2]), "masks": torch.rand(2, 64, 64) > 0.5} for _ in range(2)]
    loss_fn = MaskFormerLoss.from_config(config)
    loss_fn.total_loss(loss_fn(model(torch.randn(2, 3, 64, 64)), targets)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    # The deformable attention starts with zero weights for its offsets and point weights (the original's init),
    # so the pixel decoder's position (and level embedding) cannot move anything until those have had one step.
    assert missing == ["pixel_decoder.level_embed"]


def test_the_ade20k_training_recipes_mirror_the_authors_files():
    # configs/ade20k/semantic-segmentation/maskformer2_R50_bs16_160k.yaml and swin/maskformer2_swin_tiny_bs16_160k.yaml
    from maskformer.recipes import load_config

    maskformer_recipe = load_config("ade20k-150/maskformer_R50_bs16_160k")
    for name, preset in [("maskformer2_R50_bs16_160k", "mask2former_resnet50"),
                         ("maskformer2_swin_tiny_bs16_160k", "mask2former_swin_tiny")]:
        cfg = load_config(f"ade20k-150/mask2former/{name}")
        s = cfg.solver
        assert (s.lr, s.weight_decay, s.backbone_multiplier, s.max_iters, s.warmup_iters, s.clip_grad_norm) == (
            1e-4, 0.05, 0.1, 160_000, 0, 0.01), name
        assert cfg.data == maskformer_recipe.data  # the same mapper, sizes, crop and colour jitter
        expected = getattr(MaskFormerConfig, preset)(num_classes=150)
        for field in ("masked_attention", "multi_scale_features", "cross_attention_first", "learnable_query_features",
                      "pixel_decoder", "dec_layers", "dropout", "class_weight", "mask_weight", "dice_weight",
                      "mask_loss", "num_points", "backbone"):
            assert getattr(cfg.model, field) == getattr(expected, field), (name, field)
    assert load_config("ade20k-150/mask2former/maskformer2_swin_tiny_bs16_160k").model.swin_drop_path_rate == 0.3
