"""Metrics: hand-made cases with known answers, and torchmetrics on random inputs."""

import math

import pytest
import torch

from maskformer.metrics import PanopticQuality, SemanticMetrics, panoptic_to_category_instance

torchmetrics = pytest.importorskip("torchmetrics")


# ---------------------------------------------------------------------------- semantic


def test_semantic_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255]])
    preds = torch.tensor([[0, 1, 1, 1], [0, 0, 2, 0]])
    metrics = SemanticMetrics(num_classes=4, ignore_index=255, class_names=["a", "b", "c", "d"])
    metrics.update(preds, target)
    result = metrics.compute()
    # class 0: tp 3, fn 1, fp 0 -> 3/4; class 1: tp 2, fn 1, fp 1 -> 2/4; class 2: only predicted -> 0;
    # class 3: nowhere -> NaN, left out of the mean. The ignored pixel's prediction (0) does not count.
    assert result["IoU"][:3].tolist() == [0.75, 0.5, 0.0] and math.isnan(result["IoU"][3])
    assert result["mIoU"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert result["pixel_accuracy"] == pytest.approx(5 / 7)
    assert result["mean_accuracy"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert result["per_class"]["b"] == 0.5


def test_semantic_streaming_equals_all_at_once_and_reset():
    g = torch.Generator().manual_seed(0)
    preds, target = torch.randint(0, 5, (6, 10, 12), generator=g), torch.randint(0, 5, (6, 10, 12), generator=g)
    target[target == 4] = 255
    once, streamed = SemanticMetrics(5), SemanticMetrics(5)
    once.update(preds, target)
    for p, t in zip(preds, target):
        streamed.update(p, t)
    assert torch.equal(once.confusion_matrix, streamed.confusion_matrix)
    streamed.reset()
    assert streamed.confusion_matrix.sum() == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_semantic_equals_torchmetrics(seed):
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    K = 7
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (4, 16, 16), generator=g)
    target[torch.rand(4, 16, 16, generator=g) < 0.2] = 255
    target[target == 3] = 255  # class 3 absent from the targets, only predicted
    preds = torch.where(torch.rand(4, 16, 16, generator=g) < 0.6, target, torch.randint(0, K, (4, 16, 16), generator=g))
    preds[preds == 255] = 5
    preds[preds == 6] = 0  # class 6 absent from the predictions
    ours = SemanticMetrics(K)
    ours.update(preds, target)
    result = ours.compute()
    per_class = MulticlassJaccardIndex(K, average="none", ignore_index=255)(preds, target)
    mean = MulticlassJaccardIndex(K, average="macro", ignore_index=255)(preds, target)
    pixel = MulticlassAccuracy(K, average="micro", ignore_index=255)(preds, target)
    torch.testing.assert_close(result["IoU"], per_class.double(), atol=1e-6, rtol=0)
    assert abs(result["mIoU"] - mean.item()) < 1e-6
    assert abs(result["pixel_accuracy"] - pixel.item()) < 1e-6


def test_semantic_bad_input():
    metrics = SemanticMetrics(3)
    with pytest.raises(ValueError, match=r"metrics\.py: target holds class id 7, outside 0\.\.2"):
        metrics.update(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 7], [255, 1]]))
    with pytest.raises(ValueError, match=r"preds \(2, 2\) and target \(3, 2\) differ"):
        metrics.update(torch.zeros(2, 2), torch.zeros(3, 2))


# ---------------------------------------------------------------------------- panoptic


def pan(category, instance):
    return torch.stack([torch.tensor(category), torch.tensor(instance)], dim=-1)


def test_panoptic_by_hand():
    # a 4x4 image: thing class 1 (two instances), stuff class 0, void 255 in the bottom row
    target = pan(
        [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [255, 255, 255, 255]],
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [0, 0, 0, 0]],
    )
    preds = pan(
        [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1]],
        [[0, 0, 5, 5], [0, 0, 5, 5], [0, 0, 0, 0], [0, 0, 6, 6]],
    )
    metric = PanopticQuality(things={1}, stuffs={0})
    metric.update(preds, target)
    result = metric.compute()
    # stuff 0: pred area 10 (2 of them on void), true area 6, intersection 6 -> IoU 6 / (10 + 6 - 6 - 2) = 0.75
    # thing 1: instance 5 matches instance 1 with IoU 1; true instance 2 is missed (FN);
    #          pred instance 6 lies entirely on void, so it is not a false positive
    per_class = result["per_class"]
    assert per_class[0] == {"PQ": 0.75, "SQ": 0.75, "RQ": 1.0, "TP": 1, "FP": 0, "FN": 0}
    assert per_class[1] == {"PQ": pytest.approx(1 / 1.5), "SQ": 1.0, "RQ": pytest.approx(1 / 1.5), "TP": 1, "FP": 0, "FN": 1}
    assert result["PQ"] == pytest.approx((0.75 + 1 / 1.5) / 2)
    assert result["PQ_th"] == pytest.approx(1 / 1.5) and result["PQ_st"] == 0.75


def test_panoptic_iou_must_exceed_one_half():
    target = pan([[1, 1, 1, 1]], [[1, 1, 1, 1]])
    half = pan([[1, 1, 0, 0]], [[3, 3, 0, 0]])  # IoU exactly 0.5: no match, one FP and one FN
    metric = PanopticQuality(things={1}, stuffs={0})
    metric.update(half, target)
    result = metric.compute()
    assert result["per_class"][1]["TP"] == 0 and result["per_class"][1]["FN"] == 1 and result["per_class"][1]["FP"] == 1
    assert result["per_class"][0]["FP"] == 1 and result["PQ"] == 0.0


def random_panoptic(g, B=3, H=12, W=12):
    """Blocky (category, instance) maps, with no void in the predictions."""
    category = torch.randint(0, 5, (B, H // 3, W // 3), generator=g).repeat_interleave(3, 1).repeat_interleave(3, 2)
    instance = torch.randint(1, 3, (B, H // 3, W // 3), generator=g).repeat_interleave(3, 1).repeat_interleave(3, 2)
    return torch.stack([category, instance], dim=-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_panoptic_equals_torchmetrics(seed):
    g = torch.Generator().manual_seed(seed)
    target = random_panoptic(g)
    preds = torch.where(torch.rand(3, 12, 12, 1, generator=g) < 0.8, target, random_panoptic(g))
    target[..., 0][target[..., 0] == 4] = 255  # void in the targets
    preds[..., 0][preds[..., 0] == 4] = 3
    things, stuffs = {1, 2}, {0, 3}
    ours = PanopticQuality(things, stuffs)
    ours.update(preds, target)
    result = ours.compute()
    reference = torchmetrics.detection.PanopticQuality(
        things, stuffs, allow_unknown_preds_category=True, return_sq_and_rq=True, return_per_class=True
    )
    reference.update(preds, target)
    pq, sq, rq = reference.compute().T.double()  # [3, C], categories sorted things then stuff
    order = sorted(things) + sorted(stuffs)
    for i, c in enumerate(order):
        mine = result["per_class"].get(c, {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0})
        assert abs(mine["PQ"] - pq[i]) < 1e-6 and abs(mine["SQ"] - sq[i]) < 1e-6 and abs(mine["RQ"] - rq[i]) < 1e-6
    average = torchmetrics.detection.PanopticQuality(things, stuffs, allow_unknown_preds_category=True)
    average.update(preds, target)
    assert abs(result["PQ"] - average.compute().item()) < 1e-6


def test_panoptic_to_category_instance_and_bad_input():
    segmentation = torch.tensor([[0, 1], [2, 2]])
    info = [{"id": 1, "label_id": 4}, {"id": 2, "label_id": 0}]
    assert panoptic_to_category_instance(segmentation, info).tolist() == [[[255, 0], [4, 1]], [[0, 2], [0, 2]]]
    with pytest.raises(ValueError, match=r"metrics\.py: categories \[1\] are both things and stuff"):
        PanopticQuality({1, 2}, {1})
    with pytest.raises(ValueError, match=r"\[H, W, 2\].*got \(2, 2\) and \(2, 2\)"):
        PanopticQuality({1}, {0}).update(segmentation, segmentation)
