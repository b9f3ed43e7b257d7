"""The original optimiser set-up: parameter groups, the warm-up + poly schedule, full-model clipping."""

import math

import pytest
import torch

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.optim import build_optimizer, build_scheduler, clip_grad_norm, param_groups, warmup_poly


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_param_groups_follow_the_original_rules(backbone):
    model = MaskFormer(MaskFormerConfig.tiny(backbone=backbone))
    groups = param_groups(model, lr=1e-4, weight_decay=0.05, backbone_multiplier=0.1)
    by_name = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == trainable  # every trainable parameter exactly once
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    for name, (lr, wd) in by_name.items():
        assert lr == pytest.approx(1e-5 if name.startswith("backbone.") else 1e-4), name
        is_group_norm = name.startswith("pixel_decoder.") and name.split(".")[-2] == "1"  # Sequential(conv, GroupNorm)
        no_decay = "norm" in name or "query_embed" in name or "relative_position_bias_table" in name or is_group_norm
        assert wd == (0.0 if no_decay else 0.05), name
    # a few names checked by hand, so the rule above cannot be vacuous
    assert by_name["transformer.query_embed.weight"][1] == 0.0
    assert by_name["pixel_decoder.layer_4.1.weight"][1] == 0.0  # GroupNorm
    assert by_name["class_embed.bias"] == (1e-4, 0.05)  # biases decay, as in detectron2's default
    if backbone == "swin":
        assert by_name["backbone.stages.0.blocks.0.attn.relative_position_bias_table"] == (1e-5, 0.0)
        assert by_name["backbone.stages.0.blocks.0.attn.qkv.weight"] == (1e-5, 0.05)


def test_frozen_and_shared_parameters_are_left_out_or_counted_once():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[1].weight = model[0].weight
    model[0].bias.requires_grad_(False)
    groups = param_groups(model, 1e-3, 0.1)
    names = [n for g in groups for n in g["names"]]
    assert names == ["0.weight", "1.bias"]


def test_warmup_poly_values():
    # no warm-up: (1 - t/T)^0.9
    assert warmup_poly(0, 100) == 1.0
    assert warmup_poly(50, 100) == pytest.approx(0.5**0.9)
    assert warmup_poly(100, 100) == 0.0
    # linear warm-up from the factor to 1 (detectron2's WarmupPolyLR, warmup_method "linear")
    assert warmup_poly(0, 1000, warmup_iters=100, warmup_factor=1e-6) == pytest.approx(1e-6)
    assert warmup_poly(50, 1000, warmup_iters=100, warmup_factor=0.0) == pytest.approx(0.5 * (1 - 0.05) ** 0.9)
    assert warmup_poly(100, 1000, warmup_iters=100, warmup_factor=1e-6) == pytest.approx(0.9**0.9)


def test_scheduler_drives_every_group_by_the_same_factor():
    model = MaskFormer(MaskFormerConfig.tiny(backbone="resnet"))
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.0, backbone_multiplier=0.1)
    sched = build_scheduler(opt, max_iters=10, warmup_iters=2, warmup_factor=0.5)
    base = [g["initial_lr"] for g in opt.param_groups]  # LambdaLR already applied factor(0) to "lr"
    for step in range(10):
        factor = warmup_poly(step, 10, 0.9, 2, 0.5)
        for g, lr0 in zip(opt.param_groups, base):
            assert g["lr"] == pytest.approx(lr0 * factor)
        opt.step()
        sched.step()


def test_full_model_clipping_bounds_the_joint_norm():
    params = [torch.nn.Parameter(torch.randn(5)) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(5) * 10
    joint = math.sqrt(sum(float(p.grad.square().sum()) for p in params))
    before = clip_grad_norm(params, 0.01)
    assert float(before) == pytest.approx(joint, rel=1e-5)
    after = math.sqrt(sum(float(p.grad.square().sum()) for p in params))
    assert after == pytest.approx(0.01, rel=1e-4)
    assert clip_grad_norm(params, None) is None


def test_step_schedule_is_detectron2_warmup_multistep():
    """WarmupMultiStepLR: linear warm-up, then x gamma at each milestone reached (bisect_right: at the step itself)."""
    from maskformer.optim import build_scheduler, warmup_step

    assert warmup_step(0, (5, 8), 0.1, warmup_iters=4, warmup_factor=0.2) == pytest.approx(0.2)
    assert warmup_step(2, (5, 8), 0.1, warmup_iters=4, warmup_factor=0.2) == pytest.approx(0.2 * 0.5 + 0.5)
    assert [warmup_step(s, (5, 8), 0.1) for s in (4, 5, 7, 8, 20)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = build_scheduler(optimizer, 10, warmup_iters=0, schedule="step", steps=(3,), gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1, 1, 1, 0.5, 0.5])


def test_coco_configs_use_the_step_schedule():
    from maskformer.recipes import load_config

    s = load_config("coco-panoptic/maskformer_panoptic_R50_bs64_554k").solver
    assert (s.lr_schedule, s.lr_steps, s.lr_gamma, s.max_iters) == ("step", (369600,), 0.1, 554400)
    assert load_config("ade20k-150/maskformer_R50_bs16_160k").solver.lr_schedule == "poly"
