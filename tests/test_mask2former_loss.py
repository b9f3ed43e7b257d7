"""Mask2Former's loss (BCE + dice on importance-sampled points, weights 2/5/5) equals transformers' Mask2FormerLoss."""

import pytest
import torch
import torch.nn.functional as F

import maskformer.loss
from maskformer import MaskFormerConfig, MaskFormerLoss

NUM_CLASSES, NUM_QUERIES, NUM_POINTS = 5, 10, 300


def seeded(sample):
    """``sample`` with the random generator reset before every call: both implementations then draw the
    same candidate and random points for the same logits, whatever else they draw in between."""
    def wrapper(*args, **kwargs):
        torch.manual_seed(1234)
        return sample(*args, **kwargs)
    return wrapper


def predictions(targets, generator):
    """Outputs whose matching is unambiguous (query ``perm[j]`` predicts target ``j`` well), so that both
    matchers agree whatever points they draw; everything else is random."""
    B = len(targets)
    logits = torch.randn(B, NUM_QUERIES, NUM_CLASSES + 1, generator=generator)
    masks = torch.randn(B, NUM_QUERIES, 16, 20, generator=generator)
    for b, t in enumerate(targets):
        perm = torch.randperm(NUM_QUERIES, generator=generator)[:len(t["labels"])]
        small = F.interpolate(t["masks"][:, None].float(), size=(16, 20), mode="bilinear", align_corners=False)[:, 0]
        masks[b, perm] = 6 * (2 * small - 1) + 0.5 * torch.randn(len(perm), 16, 20, generator=generator)
        logits[b, perm, t["labels"]] += 8
    return {"pred_logits": logits.requires_grad_(), "pred_masks": masks.requires_grad_()}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    targets = []
    for n in (3, 2):
        masks = torch.zeros(n, 64, 80, dtype=torch.bool)
        for i in range(n):
            y, x = torch.randint(0, 40, (2,), generator=g).tolist()
            masks[i, y:y + 24, x:x + 30] = True
        targets.append({"labels": torch.randint(0, NUM_CLASSES, (n,), generator=g), "masks": masks})
    outputs = predictions(targets, g)
    outputs["aux_outputs"] = [predictions(targets, g) for _ in range(2)]
    return outputs, targets


def test_loss_equals_transformers_mask2former_loss(batch, monkeypatch):
    from transformers import Mask2FormerConfig
    from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

    outputs, targets = batch
    hf_config = Mask2FormerConfig(num_labels=NUM_CLASSES, train_num_points=NUM_POINTS)
    hf_loss = Mask2FormerLoss(hf_config, {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 5.0})
    ours = MaskFormerLoss.from_config(MaskFormerConfig.mask2former_resnet50(
        num_classes=NUM_CLASSES, num_queries=NUM_QUERIES, num_points=NUM_POINTS))
    assert ours.weight_dict == {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0} and ours.mask_terms["loss_mask"] == "bce"
    monkeypatch.setattr(maskformer.loss, "uncertain_point_coords", seeded(maskformer.loss.uncertain_point_coords))
    monkeypatch.setattr(Mask2FormerLoss, "sample_points_using_uncertainty",
                        seeded(Mask2FormerLoss.sample_points_using_uncertainty))

    losses = ours(outputs, targets)
    reference = hf_loss(
        outputs["pred_masks"], outputs["pred_logits"], [t["masks"].float() for t in targets],
        [t["labels"] for t in targets],
        [{"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
         for a in outputs["aux_outputs"]])
    assert len(losses) == len(reference) == 9
    for name, value in reference.items():
        torch.testing.assert_close(losses[name.replace("loss_cross_entropy", "loss_ce")], value, rtol=1e-5, atol=1e-6)
    # and the gradients of the weighted totals
    hf_total = sum(hf_loss.weight_dict[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] * v for k, v in reference.items())
    grads = torch.autograd.grad(hf_total, [outputs["pred_masks"], outputs["pred_logits"]])
    ours_grads = torch.autograd.grad(ours.total_loss(losses), [outputs["pred_masks"], outputs["pred_logits"]])
    for g, r in zip(ours_grads, grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
