"""The Hungarian matcher: parity with Hugging Face, invariances, and robustness."""

import pytest
import torch
import torch.nn.functional as F

from maskformer.loss import dice_loss, sigmoid_focal_loss
from maskformer.matcher import HungarianMatcher, assign, pairwise_dice_cost, pairwise_sigmoid_focal_cost
from synthetic import random_targets

hf = pytest.importorskip("transformers.models.maskformer.modeling_maskformer")

NUM_CLASSES = 7  # tests/synthetic.random_targets draws labels below this too


def random_outputs(batch=3, queries=12, height=16, width=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "pred_logits": torch.randn(batch, queries, NUM_CLASSES + 1, generator=generator),
        "pred_masks": 3 * torch.randn(batch, queries, height, width, generator=generator),
    }




def hf_match(outputs, targets):
    matcher = hf.MaskFormerHungarianMatcher(cost_class=1.0, cost_mask=20.0, cost_dice=1.0)
    return matcher(
        outputs["pred_masks"],
        outputs["pred_logits"],
        [t["masks"] for t in targets],
        [t["labels"] for t in targets],
    )


def assert_valid(matches, outputs, targets):
    """One-to-one, in range, min(Q, N) pairs per image."""
    num_queries = outputs["pred_logits"].shape[1]
    for (query_idx, target_idx), target in zip(matches, targets):
        n = len(target["labels"])
        assert query_idx.dtype == target_idx.dtype == torch.int64
        assert len(query_idx) == len(target_idx) == min(num_queries, n)
        assert len(set(query_idx.tolist())) == len(query_idx) and len(set(target_idx.tolist())) == len(target_idx)
        assert all(0 <= q < num_queries for q in query_idx.tolist()) and all(0 <= t < n for t in target_idx.tolist())


def assert_same_matches(a, b):
    for (qa, ta), (qb, tb) in zip(a, b, strict=True):
        assert torch.equal(qa, torch.as_tensor(qb)) and torch.equal(ta, torch.as_tensor(tb))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_assignments_as_hugging_face(seed):
    outputs, targets = random_outputs(seed=seed), random_targets(seed=seed + 10)
    assert_same_matches(HungarianMatcher()(outputs, targets), hf_match(outputs, targets))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32])
def test_target_dtype_does_not_matter(dtype):
    outputs, targets = random_outputs(), random_targets()
    cast = [{"labels": t["labels"], "masks": t["masks"].to(dtype)} for t in targets]
    assert_same_matches(HungarianMatcher()(outputs, cast), hf_match(outputs, targets))


def test_pairwise_costs_equal_the_losses_of_each_pair():
    """The matrix products compute, for every pair, exactly the per-mask losses."""
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(5, 40, generator=generator)
    targets = (torch.rand(4, 40, generator=generator) > 0.5).float()
    naive_focal = torch.stack([sigmoid_focal_loss(logits, t.expand_as(logits)) for t in targets], dim=1)
    naive_dice = torch.stack([dice_loss(logits, t.expand_as(logits)) for t in targets], dim=1)
    torch.testing.assert_close(pairwise_sigmoid_focal_cost(logits, targets), naive_focal)
    torch.testing.assert_close(pairwise_dice_cost(logits, targets), naive_dice)


def test_batched_equals_image_by_image():
    outputs, targets = random_outputs(), random_targets()
    batched = HungarianMatcher()(outputs, targets)
    for b, target in enumerate(targets):
        single = {k: v[b : b + 1] for k, v in outputs.items()}
        assert_same_matches([batched[b]], HungarianMatcher()(single, [target]))


def test_match_layers_equals_one_call_per_layer():
    layers = [random_outputs(seed=s) for s in range(3)]
    targets = random_targets()
    matcher = HungarianMatcher()
    for together, layer in zip(matcher.match_layers(layers, targets), layers, strict=True):
        assert_same_matches(together, matcher(layer, targets))


def test_permuting_targets_permutes_the_assignment():
    outputs, targets = random_outputs(), random_targets(counts=(6, 4, 5))
    matches = HungarianMatcher()(outputs, targets)
    generator = torch.Generator().manual_seed(3)
    perms = [torch.randperm(len(t["labels"]), generator=generator) for t in targets]
    permuted = [{"labels": t["labels"][p], "masks": t["masks"][p]} for t, p in zip(targets, perms)]
    for (q, t), (q2, t2), perm in zip(matches, HungarianMatcher()(outputs, permuted), perms):
        # permuted target i is original target perm[i]: the same queries get the same segments
        assert dict(zip(q.tolist(), t.tolist())) == dict(zip(q2.tolist(), perm[t2].tolist()))


def test_recovers_a_planted_assignment():
    """Queries that predict target masks exactly (in shuffled order) are matched to them."""
    targets = random_targets(counts=(4,), height=16, width=20)
    outputs = random_outputs(batch=1)
    planted = torch.tensor([7, 2, 9, 0])
    outputs["pred_masks"][0, planted] = 10 * (2 * targets[0]["masks"] - 1)
    outputs["pred_logits"][0, planted] = 10 * F.one_hot(targets[0]["labels"], NUM_CLASSES + 1).float()
    (query_idx, target_idx), = HungarianMatcher()(outputs, targets)
    assert torch.equal(query_idx[target_idx.argsort()], planted)


def test_zero_targets():
    outputs, targets = random_outputs(), random_targets(counts=(0, 2, 0))
    matches = HungarianMatcher()(outputs, targets)
    assert_valid(matches, outputs, targets)
    assert len(matches[0][0]) == 0 and len(matches[2][0]) == 0


def test_more_targets_than_queries():
    outputs, targets = random_outputs(queries=3), random_targets(counts=(5, 2, 4))
    assert_valid(HungarianMatcher()(outputs, targets), outputs, targets)


def test_nan_and_inf_predictions_give_a_valid_assignment_avoiding_them():
    outputs, targets = random_outputs(), random_targets()
    outputs["pred_masks"][:, :4] = float("nan")
    outputs["pred_logits"][:, 4:6, 0] = float("inf")
    outputs["pred_masks"][:, 6, 0, 0] = -float("inf")
    matches = HungarianMatcher()(outputs, targets)
    assert_valid(matches, outputs, targets)
    for query_idx, _ in matches:
        assert (query_idx >= 7).all(), "a non-finite query was matched although finite ones were free"


def test_all_costs_non_finite():
    outputs, targets = random_outputs(), random_targets()
    outputs["pred_masks"][:] = float("nan")
    assert_valid(HungarianMatcher()(outputs, targets), outputs, targets)


def test_assign_replacement_is_large_enough():
    cost = torch.tensor([[0.0, float("nan")], [5.0, 100.0], [float("inf"), 1.0]])
    query_idx, target_idx = assign(cost)
    assert dict(zip(query_idx.tolist(), target_idx.tolist())) == {0: 0, 2: 1}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_and_autocast(dtype):
    """Logits large enough that float16 sums over pixels overflow still match like float32."""
    outputs, targets = random_outputs(), random_targets()
    outputs["pred_masks"] = 300 * outputs["pred_masks"]
    half = {k: v.to(dtype) for k, v in outputs.items()}
    upcast = {k: v.float() for k, v in half.items()}
    with torch.autocast("cpu", dtype=dtype):
        matches = HungarianMatcher()(half, targets)
    assert_valid(matches, outputs, targets)
    assert_same_matches(matches, HungarianMatcher()(upcast, targets))


def test_no_gradient(monkeypatch):
    """The costs are computed with autograd off, even for inputs that require grad."""
    outputs = {k: v.requires_grad_() for k, v in random_outputs().items()}
    grad_modes = []
    original = HungarianMatcher.cost_matrix

    def recording_cost_matrix(self, *args):
        grad_modes.append(torch.is_grad_enabled())
        return original(self, *args)

    monkeypatch.setattr(HungarianMatcher, "cost_matrix", recording_cost_matrix)
    HungarianMatcher()(outputs, random_targets())
    assert grad_modes == [False] * 3


def test_point_sampled_matcher_recovers_a_planted_assignment():
    torch.manual_seed(0)
    coarse = random_targets(counts=(4,), height=16, width=20)[0]
    fine = F.interpolate(coarse["masks"][:, None], scale_factor=2, mode="nearest")[:, 0]  # [4, 32, 40]
    targets = [{"labels": coarse["labels"], "masks": fine}]
    outputs = random_outputs(batch=1)
    planted = torch.tensor([3, 11, 5, 1])
    outputs["pred_masks"][0, planted] = 10 * (2 * coarse["masks"] - 1)
    (query_idx, target_idx), = HungarianMatcher(num_points=500)(outputs, targets)
    assert torch.equal(query_idx[target_idx.argsort()], planted)
