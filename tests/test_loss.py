"""MaskFormer's loss: parity with Hugging Face, invariances, robustness, and multi-process num_masks."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from maskformer.loss import MaskFormerLoss, dice_loss, sigmoid_focal_loss, upsample_transpose, upsampled_mask_losses
from maskformer.matcher import HungarianMatcher
from synthetic import random_targets


NUM_CLASSES = 7  # tests/synthetic.random_targets draws labels below this too
TERMS = ("loss_ce", "loss_mask", "loss_dice")


def random_outputs(batch=3, queries=12, height=16, width=20, num_aux=5, seed=0):
    """Leaf prediction tensors; ``aux_outputs`` holds num_aux earlier layers."""
    generator = torch.Generator().manual_seed(seed)

    def layer():
        return {
            "pred_logits": torch.randn(batch, queries, NUM_CLASSES + 1, generator=generator).requires_grad_(),
            "pred_masks": (3 * torch.randn(batch, queries, height, width, generator=generator)).requires_grad_(),
        }

    outputs = layer()
    if num_aux:
        outputs["aux_outputs"] = [layer() for _ in range(num_aux)]
    return outputs




def leaves(outputs):
    layers = [outputs, *outputs.get("aux_outputs", [])]
    return [layer[key] for layer in layers for key in ("pred_logits", "pred_masks")]


def hf_losses(outputs, targets, eos_coef=0.1):
    """Hugging Face's terms under our names."""
    # Imported here, not at the top: the distributed test's processes import this module too.
    hf = pytest.importorskip("transformers.models.maskformer.modeling_maskformer")
    matcher = hf.MaskFormerHungarianMatcher(cost_class=1.0, cost_mask=20.0, cost_dice=1.0)
    criterion = hf.MaskFormerLoss(NUM_CLASSES, matcher, weight_dict={}, eos_coef=eos_coef)
    aux = [
        {"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
        for a in outputs.get("aux_outputs", [])
    ]
    losses = criterion(
        outputs["pred_masks"],
        outputs["pred_logits"],
        [t["masks"] for t in targets],
        [t["labels"] for t in targets],
        aux or None,
    )
    return {name.replace("loss_cross_entropy", "loss_ce"): value for name, value in losses.items()}


@pytest.mark.parametrize("num_aux", [0, 5])
def test_terms_and_gradients_equal_hugging_face(num_aux):
    outputs, targets = random_outputs(num_aux=num_aux), random_targets()
    criterion = MaskFormerLoss(NUM_CLASSES, HungarianMatcher())
    ours, theirs = criterion(outputs, targets), hf_losses(outputs, targets)
    assert list(ours) == [t + s for s in ["", *(f"_{i}" for i in range(num_aux))] for t in TERMS]
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=0, msg=name)

    weights = {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
    theirs_total = sum(weights[next(w for w in weights if name.startswith(w))] * v for name, v in theirs.items())
    grads = torch.autograd.grad(criterion.total_loss(ours), leaves(outputs))
    expected = torch.autograd.grad(theirs_total, leaves(outputs))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max().item())


def test_each_term_has_the_right_gradient():
    """Backpropagating one term alone (not only the weighted sum) matches too."""
    outputs, targets = random_outputs(num_aux=0), random_targets()
    ours, theirs = MaskFormerLoss(NUM_CLASSES)(outputs, targets), hf_losses(outputs, targets)
    for name in ("loss_mask", "loss_dice"):
        (g,) = torch.autograd.grad(ours[name], outputs["pred_masks"], retain_graph=True)
        (e,) = torch.autograd.grad(theirs[name], outputs["pred_masks"], retain_graph=True)
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max().item())


@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_fused_mask_losses_equal_the_plain_formulas(gamma):
    """upsampled_mask_losses == focal / dice of interpolate(logits), values and gradients."""
    generator = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(5, 8, 10, generator=generator)).requires_grad_()
    targets = torch.rand(3, 30, 37, generator=generator) > 0.6
    target_idx = torch.tensor([2, 0, 2, 1, 0])
    focal, dice = upsampled_mask_losses(logits, targets, target_idx, gamma=gamma)
    up = F.interpolate(logits[:, None], size=(30, 37), mode="bilinear", align_corners=False).flatten(1)
    t = targets[target_idx].flatten(1).float()
    plain_focal, plain_dice = sigmoid_focal_loss(up, t, gamma=gamma), dice_loss(up, t)
    torch.testing.assert_close(focal, plain_focal)
    torch.testing.assert_close(dice, plain_dice)
    weights = torch.rand(2, 5, generator=generator)  # arbitrary upstream gradients
    (g,) = torch.autograd.grad((weights[0] * focal).sum() + (weights[1] * dice).sum(), logits)
    (e,) = torch.autograd.grad((weights[0] * plain_focal).sum() + (weights[1] * plain_dice).sum(), logits)
    torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "small, big", [((16, 20), (64, 80)), ((5, 7), (15, 21)), ((8, 10), (30, 37)), ((4, 6), (4, 6))]
)
def test_upsample_transpose_is_the_gradient_of_interpolate(small, big):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, *small, generator=generator, requires_grad=True)
    grad = torch.randn(3, *big, generator=generator)
    F.interpolate(x, size=big, mode="bilinear", align_corners=False).backward(grad[:, None])
    torch.testing.assert_close(upsample_transpose(grad, small), x.grad[:, 0])


def test_fused_mask_losses_at_an_integer_scale():
    """The fast path of upsample_transpose (stride-4 predictions), against autograd."""
    generator = torch.Generator().manual_seed(1)
    logits = (4 * torch.randn(4, 16, 20, generator=generator)).requires_grad_()
    targets = torch.rand(2, 64, 80, generator=generator) > 0.5
    target_idx = torch.tensor([1, 0, 0, 1])
    focal, dice = upsampled_mask_losses(logits, targets, target_idx)
    up = F.interpolate(logits[:, None], size=(64, 80), mode="bilinear", align_corners=False).flatten(1)
    t = targets[target_idx].flatten(1).float()
    (g,) = torch.autograd.grad(20 * focal.sum() + dice.sum(), logits)
    (e,) = torch.autograd.grad(20 * sigmoid_focal_loss(up, t).sum() + dice_loss(up, t).sum(), logits)
    torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


def test_perfect_prediction_gives_near_zero_losses():
    """Confident, correct masks and classes at the targets' resolution (where upsampling is the identity)."""
    targets = random_targets(counts=(2, 3), height=16, width=20)
    outputs = random_outputs(batch=2, height=16, width=20, num_aux=0)
    with torch.no_grad():
        for b, t in enumerate(targets):
            n = len(t["labels"])
            outputs["pred_masks"][b, :n] = 30 * (2 * t["masks"] - 1)
            outputs["pred_logits"][b] = 30 * F.one_hot(torch.tensor(NUM_CLASSES), NUM_CLASSES + 1)
            outputs["pred_logits"][b, :n] = 30 * F.one_hot(t["labels"], NUM_CLASSES + 1)
    losses = MaskFormerLoss(NUM_CLASSES)(outputs, targets)
    assert losses["loss_mask"] < 1e-8 and losses["loss_dice"] < 1e-6 and losses["loss_ce"] < 1e-6


def test_no_object_weight_changes_only_unmatched_queries_cross_entropy():
    """CE(eos) = (A + eos * U) / (n_matched + eos * n_unmatched) with A, U independent of eos."""
    outputs, targets = random_outputs(num_aux=0), random_targets()
    losses = {eos: MaskFormerLoss(NUM_CLASSES, eos_coef=eos)(outputs, targets) for eos in (0.0, 1.0, 0.1, 0.5)}
    n_matched = sum(len(t["labels"]) for t in targets)
    n_unmatched = outputs["pred_logits"].shape[:2].numel() - n_matched
    matched_sum = losses[0.0]["loss_ce"] * n_matched  # A
    unmatched_sum = losses[1.0]["loss_ce"] * (n_matched + n_unmatched) - matched_sum  # U
    for eos in (0.1, 0.5):
        expected = (matched_sum + eos * unmatched_sum) / (n_matched + eos * n_unmatched)
        torch.testing.assert_close(losses[eos]["loss_ce"], expected)
        for name in ("loss_mask", "loss_dice"):
            assert torch.equal(losses[eos][name], losses[0.0][name])


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32])
def test_target_mask_dtype_does_not_matter(dtype):
    outputs, targets = random_outputs(num_aux=0), random_targets()
    expected = MaskFormerLoss(NUM_CLASSES)(outputs, targets)
    cast = [{"labels": t["labels"], "masks": t["masks"].to(dtype)} for t in targets]
    for name, value in MaskFormerLoss(NUM_CLASSES)(outputs, cast).items():
        torch.testing.assert_close(value, expected[name])


def test_targets_of_different_sizes_are_zero_padded():
    outputs = random_outputs(batch=2, num_aux=0)
    targets = [random_targets(counts=(2,), height=64, width=80)[0], random_targets(counts=(3,), height=50, width=61)[0]]
    ours, theirs = MaskFormerLoss(NUM_CLASSES)(outputs, targets), hf_losses(outputs, targets)
    for name in TERMS:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=0)


def test_zero_targets_and_all_ignored_images_keep_the_loss_finite():
    """An image whose every pixel is ignore (255) has no segments: zero targets."""
    outputs = random_outputs(num_aux=2)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 64, 80, dtype=torch.bool)}
    for targets in ([empty, *random_targets(counts=(2, 1))[:2]], [empty, empty, empty]):
        criterion = MaskFormerLoss(NUM_CLASSES)
        losses = criterion(outputs, targets)
        assert all(torch.isfinite(v) for v in losses.values())
        grads = torch.autograd.grad(criterion.total_loss(losses), leaves(outputs))
        assert all(torch.isfinite(g).all() for g in grads)
    # nothing to match anywhere: mask terms are 0, CE trains every query towards "no object"
    assert losses["loss_mask"] == 0 and losses["loss_dice"] == 0
    no_object = torch.full(outputs["pred_logits"].shape[:2], NUM_CLASSES)
    torch.testing.assert_close(losses["loss_ce"], F.cross_entropy(outputs["pred_logits"].transpose(1, 2), no_object))


def test_num_masks_normalisation():
    outputs, targets = random_outputs(num_aux=0), random_targets()
    criterion = MaskFormerLoss(NUM_CLASSES)
    assert criterion.num_masks(targets, torch.device("cpu")) == 9.0
    assert criterion.num_masks([], torch.device("cpu")) == 1.0  # clamped
    losses = criterion(outputs, targets)
    layer_matches = criterion.matcher(outputs, targets)
    per_mask = [
        dice_loss(
            F.interpolate(outputs["pred_masks"][b, q][:, None], size=(64, 80), mode="bilinear")[:, 0].flatten(1),
            target["masks"][t].flatten(1),
        )
        for b, ((q, t), target) in enumerate(zip(layer_matches, targets))
    ]
    torch.testing.assert_close(losses["loss_dice"], torch.cat(per_mask).sum() / 9)


def test_normalisers_count_the_whole_step():
    """num_masks: the segments of all micro-batches; class_weight_total: 1 per matched query
    (min(N_b, Q) per image) and eos_coef per other query."""
    criterion = MaskFormerLoss(NUM_CLASSES, num_queries=4)
    step = [{"targets": random_targets(counts=(3, 5))}, {"targets": random_targets(counts=(0,), seed=2)}]
    normalisers = criterion.normalisers(step)
    assert normalisers["num_masks"] == 8.0
    # matched min(N_b, 4) = 3, 4, 0 and unmatched 1, 0, 4 queries
    assert normalisers["class_weight_total"] == pytest.approx(3 + 4 + 0.1 * (1 + 4))
    assert criterion.normalisers([{"targets": random_targets(counts=(0, 0))}])["num_masks"] == 1.0  # clamped


def test_given_normalisers_divide_the_summed_terms():
    outputs, targets = random_outputs(num_aux=2), random_targets()
    criterion = MaskFormerLoss(NUM_CLASSES, num_queries=outputs["pred_logits"].shape[1])
    own = criterion(outputs, targets)
    normalisers = criterion.normalisers([{"targets": targets}])
    given = criterion(outputs, targets, normalisers)
    doubled = criterion.batch_losses(outputs, {"targets": targets}, {k: 2 * v for k, v in normalisers.items()})
    assert own.keys() == given.keys() == doubled.keys()
    for name in own:
        torch.testing.assert_close(given[name], own[name], rtol=1e-6, atol=0, msg=name)
        torch.testing.assert_close(doubled[name], own[name] / 2, rtol=1e-6, atol=0, msg=name)


def test_normalisers_need_the_number_of_queries():
    with pytest.raises(ValueError, match="num_queries"):
        MaskFormerLoss(NUM_CLASSES).normalisers([{"targets": random_targets()}])
    criterion = MaskFormerLoss(NUM_CLASSES, num_queries=5)
    normalisers = criterion.normalisers([{"targets": random_targets()}])
    with pytest.raises(ValueError, match="12 queries"):  # the class-weight total assumed 5
        criterion(random_outputs(queries=12), random_targets(), normalisers)


def test_total_loss_applies_weights_to_every_layer():
    outputs, targets = random_outputs(num_aux=5), random_targets()
    criterion = MaskFormerLoss(NUM_CLASSES, weight_dict={"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0})
    losses = criterion(outputs, targets)
    expected = sum({"ce": 2.0, "mask": 5.0, "dice": 5.0}[name.split("_")[1]] * value for name, value in losses.items())
    torch.testing.assert_close(criterion.total_loss(losses), expected)
    assert MaskFormerLoss(NUM_CLASSES).weight_dict == {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
    with pytest.raises(KeyError, match="loss_bogus"):
        criterion.total_loss({"loss_bogus": torch.tensor(1.0)})


def test_autocast_and_half_precision_inputs():
    outputs, targets = random_outputs(num_aux=1), random_targets()
    criterion = MaskFormerLoss(NUM_CLASSES)
    expected = criterion(outputs, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = criterion(outputs, targets)
    for name, value in under_autocast.items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, expected[name])
    half = {k: (100 * v).detach().half().requires_grad_() for k, v in outputs.items() if k != "aux_outputs"}
    losses = criterion(half, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    grad = torch.autograd.grad(criterion.total_loss(losses), half["pred_masks"])[0]
    assert grad.dtype == torch.float16 and torch.isfinite(grad).all()


def test_point_sampled_loss_estimates_the_full_loss():
    """Uniform points (no importance sampling) give an unbiased estimate of the per-pixel mean."""
    torch.manual_seed(0)
    outputs, targets = random_outputs(num_aux=1), random_targets(counts=(3, 2, 4))
    for t in targets:  # smooth targets, so that bilinear reads of them are mostly 0 or 1
        coarse = torch.rand(len(t["labels"]), 4, 5) > 0.5
        t["masks"] = F.interpolate(coarse[:, None].float(), size=(64, 80), mode="nearest")[:, 0]
    full = MaskFormerLoss(NUM_CLASSES)(outputs, targets)
    sampled = MaskFormerLoss(NUM_CLASSES, HungarianMatcher(), num_points=20000, importance_sample_ratio=0.0)(
        outputs, targets
    )
    for name in full:
        # Points on a segment's border read soft labels (bilinear between 0 and 1), which the focal
        # term penalises a little less than the hard pixels: a bias of about -4% here.
        rtol = 0.06 if name.startswith("loss_mask") else 0.02
        torch.testing.assert_close(sampled[name], full[name], rtol=rtol, atol=0)


def test_point_sampled_loss_is_finite_and_differentiable():
    torch.manual_seed(0)
    outputs, targets = random_outputs(num_aux=2), random_targets(counts=(3, 0, 2))
    criterion = MaskFormerLoss(NUM_CLASSES, num_points=500)
    assert criterion.matcher.num_points == 500
    losses = criterion(outputs, targets)
    assert len(losses) == 9 and all(torch.isfinite(v) for v in losses.values())
    grads = torch.autograd.grad(criterion.total_loss(losses), leaves(outputs))
    assert all(torch.isfinite(g).all() for g in grads) and grads[1].abs().sum() > 0


def _distributed_worker(rank, world_size, tmp_dir):
    dist.init_process_group("gloo", init_method=f"file://{tmp_dir}/init", rank=rank, world_size=world_size)
    try:
        counts = [(3, 1), (0, 0)][rank]  # 4 targets on rank 0, none on rank 1: 2 per process on average
        targets = random_targets(counts=counts, seed=rank)
        outputs = random_outputs(batch=2, num_aux=0, seed=rank)
        criterion = MaskFormerLoss(NUM_CLASSES)
        losses = criterion(outputs, targets)
        num_masks = criterion.num_masks(targets, torch.device("cpu"))
        torch.save({"num_masks": num_masks, "loss_dice": losses["loss_dice"].item()}, f"{tmp_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_num_masks_is_averaged_across_processes(tmp_path):
    mp.spawn(_distributed_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert results[0]["num_masks"] == results[1]["num_masks"] == 2.0
    # rank 0 normalises its 4 masks by 2, not 4
    outputs, targets = random_outputs(batch=2, num_aux=0, seed=0), random_targets(counts=(3, 1), seed=0)
    alone = MaskFormerLoss(NUM_CLASSES)(outputs, targets)["loss_dice"].item()
    assert results[0]["loss_dice"] == pytest.approx(alone * 4 / 2, rel=1e-6)
    assert results[1]["loss_dice"] == 0.0


def test_from_config_reads_the_config():
    from maskformer import MaskFormerConfig

    cfg = MaskFormerConfig.tiny(num_classes=NUM_CLASSES, class_weight=2.0, mask_weight=5.0, dice_weight=5.0,
                                no_object_weight=0.2, num_points=64)
    loss_fn = MaskFormerLoss.from_config(cfg)
    assert loss_fn.weight_dict == {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    assert loss_fn.eos_coef == 0.2 and loss_fn.num_points == 64 and loss_fn.matcher.num_points == 64
    assert loss_fn.num_queries == cfg.num_queries
    assert (loss_fn.matcher.cost_class, loss_fn.matcher.cost_mask, loss_fn.matcher.cost_dice) == (2.0, 5.0, 5.0)
    assert loss_fn.class_weight[-1].item() == pytest.approx(0.2)
