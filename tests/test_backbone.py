"""Backbones: feature pyramid shapes, timm ImageNet weights, and Swin's pad-before-shift."""

import pytest
import timm
import torch

from maskformer import MaskFormerConfig
from maskformer.backbone import build_backbone, load_timm_weights
from maskformer.backbone.swin import shifted_window_mask


@pytest.mark.parametrize("backbone", ["swin", "resnet"])
def test_four_maps_at_strides_4_to_32(backbone):
    net = build_backbone(MaskFormerConfig.tiny(backbone=backbone)).eval()
    with torch.no_grad():
        feats = net(torch.randn(2, 3, 100, 75))
    assert [f.shape[1] for f in feats] == list(net.channels)
    assert [tuple(f.shape[-2:]) for f in feats] == [(-(-100 // s), -(-75 // s)) for s in (4, 8, 16, 32)]


def _timm_weights_into_ours(monkeypatch, preset):
    """Run load_timm_weights with timm's architecture but random weights (no download here)."""
    config = getattr(MaskFormerConfig, preset)()
    made = {}
    real_create = timm.create_model

    def create(name, pretrained=False, **kw):
        made["model"] = real_create(name, pretrained=False, **kw).eval()
        return made["model"]

    monkeypatch.setattr(timm, "create_model", create)
    ours = build_backbone(config).eval()
    load_timm_weights(ours, config)  # strict: raises on any missing/unexpected key
    return made["model"], ours


def test_resnet50_timm_weights_give_timm_features(monkeypatch):
    ref, ours = _timm_weights_into_ours(monkeypatch, "resnet50")
    with torch.no_grad():
        for bn in (m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1), bn.running_var.uniform_(0.5, 2)
        ref_sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.") and "num_batches" not in k}
        ours.load_state_dict(ref_sd)
        x = torch.randn(1, 3, 96, 80)
        expected = ref.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        for a, b in zip(ours(x), expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_swin_tiny_timm_weights_load(monkeypatch):
    ref, ours = _timm_weights_into_ours(monkeypatch, "swin_tiny")
    qkv = ref.layers[0].blocks[0].attn.qkv.weight
    torch.testing.assert_close(ours.stages[0].blocks[0].attn.qkv.weight, qkv)
    merge = ref.layers[1].downsample.reduction.weight  # timm: merging at the start of the next stage
    torch.testing.assert_close(ours.stages[0].downsample.reduction.weight, merge)


def test_offline_pretrained_backbone_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(timm, "create_model", offline)
    config = MaskFormerConfig.tiny(backbone="resnet", resnet_depths=(3, 4, 6, 3))
    with pytest.raises(RuntimeError, match="--no-pretrained \\(pretrained_backbone=false\\)"):
        load_timm_weights(build_backbone(config), config)


def test_shifted_window_mask_regions():
    """On a 14x14 map with window 7 and shift 3 only the last row/column of windows mixes regions."""
    mask = shifted_window_mask(14, 14, 7, 3)
    assert mask.shape == (4, 49, 49)
    assert (mask[0] == 0).all()  # the top-left window holds one contiguous region
    for w in (1, 2, 3):
        assert (mask[w] == -100).any() and (mask[w].diagonal() == 0).all()
    assert torch.equal(mask, mask.transpose(1, 2))


@pytest.mark.parametrize("H,W,shift", [(14, 14, 0), (16, 10, 3), (9, 23, 3)])
def test_window_order_is_pad_roll_partition(H, W, shift):
    """The one-gather layout equals the original's explicit steps: pad, roll, partition, and back."""
    from maskformer.backbone.swin import window_order, window_partition

    window, C = 7, 5
    x = torch.randn(2, H, W, C)
    Hp, Wp = -(-H // window) * window, -(-W // window) * window
    padded = torch.nn.functional.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    expected = window_partition(torch.roll(padded, (-shift, -shift), dims=(1, 2)), window)
    order, inverse = window_order(H, W, window, shift)
    tokens_plus_pad = torch.cat([x.flatten(1, 2), torch.zeros(2, 1, C)], dim=1)  # index H*W: the padding token
    windows = tokens_plus_pad[:, order].view(-1, window * window, C)
    assert torch.equal(windows, expected)
    unwindowed = expected.view(2, Hp // window, Wp // window, window, window, C).transpose(2, 3).reshape(2, Hp, Wp, C)
    back = torch.roll(unwindowed, (shift, shift), dims=(1, 2))[:, :H, :W]
    assert torch.equal(windows.view(2, -1, C)[:, inverse].view(2, H, W, C), back)
    assert torch.equal(back, x)


@pytest.mark.parametrize("training", [False, True])
def test_swin_mlp_in_token_blocks_gives_the_same_numbers(monkeypatch, training):
    """SwinBlock runs its MLP on blocks of tokens (a speed-up); the block size must not change any number,
    and stochastic depth must still drop a whole sample's branch, not parts of it."""
    import maskformer.backbone.swin as swin

    net = build_backbone(MaskFormerConfig.tiny(backbone="swin", swin_drop_path_rate=0.5)).train(training)
    images = torch.randn(2, 3, 60, 44)  # 15 x 11 = 165 tokens at stride 4
    outputs = []
    for tokens_per_block in (10**9, 40, 7):  # one block, a few, many with a remainder
        monkeypatch.setattr(swin, "MLP_TOKENS_PER_BLOCK", tokens_per_block)
        torch.manual_seed(0)  # same stochastic-depth draws
        outputs.append(net(images))
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)  # float rounding of other matmul shapes (seen: 1.2e-6 on torch 2.4)


def test_frozen_batchnorm_is_eval_batchnorm():
    from maskformer.backbone import FrozenBatchNorm2d

    torch.manual_seed(0)
    reference = torch.nn.BatchNorm2d(8).eval()
    for name in ("weight", "bias", "running_mean"):
        getattr(reference, name).data.normal_()
    reference.running_var.data.uniform_(0.5, 2.0)
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    expected = reference(x)
    for inplace in (False, True):
        frozen = FrozenBatchNorm2d(8, inplace=inplace)
        frozen.load_state_dict({k: v for k, v in reference.state_dict().items() if k != "num_batches_tracked"})
        given = x.clone()
        out = frozen(given)
        torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
        assert (out.data_ptr() == given.data_ptr()) == inplace
