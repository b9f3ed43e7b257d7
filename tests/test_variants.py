"""The paper's variants (Table 4) and the ablation switches: fixed matching, PerPixelBaseline+, the mask-loss
choices, the plain (unfused) mask loss equal to the fused one, and every shipped variant training a few steps."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from maskformer import MaskFormerConfig, MaskFormerLoss
from maskformer.baseline import PerPixelBaselinePlus, PerPixelLoss
from maskformer.builders import build_criterion, build_model
from maskformer.data import Shapes, collate
from maskformer.loss import MASK_TERMS, full_mask_losses, sigmoid_bce_loss, sigmoid_focal_loss, dice_loss
from maskformer.matcher import FixedMatcher, HungarianMatcher, pairwise_sigmoid_bce_cost
from maskformer.recipes import load_config
from maskformer.trainer import Trainer

K = 5


def random_outputs(batch=2, queries=K, size=(8, 10), num_aux=2, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def layer():
        return {"pred_logits": torch.randn(batch, queries, K + 1, generator=generator).requires_grad_(),
                "pred_masks": (3 * torch.randn(batch, queries, *size, generator=generator)).requires_grad_()}

    outputs = layer()
    outputs["aux_outputs"] = [layer() for _ in range(num_aux)]
    return outputs


def semantic_targets(seed=0, size=(32, 40)):
    """One mask per class present, as the semantic targets of collate: image 0 has classes 3, 0, 4; image 1 has 2."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for labels in ([3, 0, 4], [2]):
        masks = torch.rand(len(labels), *size, generator=generator) > 0.5
        targets.append({"labels": torch.tensor(labels), "masks": masks})
    return targets


# ---- fixed matching ------------------------------------------------------------------------------
def test_fixed_matching_assigns_query_k_to_class_k():
    outputs, targets = random_outputs(), semantic_targets()
    matches = FixedMatcher()(outputs, targets)
    for (query_idx, target_idx), target in zip(matches, targets):
        assert query_idx.tolist() == sorted(target["labels"].tolist())
        assert torch.equal(target["labels"][target_idx], query_idx)  # query k answers the target of class k
    assert matches[0][0].tolist() == [0, 3, 4] and matches[0][1].tolist() == [1, 0, 2]
    # the same for every layer, whatever the predictions say
    layers = FixedMatcher().match_layers([outputs, *outputs["aux_outputs"]], targets)
    assert all([(q.tolist(), t.tolist()) for q, t in m] == [(q.tolist(), t.tolist()) for q, t in matches]
               for m in layers)


def test_fixed_matching_refuses_what_it_cannot_assign():
    outputs = random_outputs()
    with pytest.raises(ValueError, match="num_queries = num_classes"):
        FixedMatcher()(outputs, [{"labels": torch.tensor([K]), "masks": torch.ones(1, 4, 4)}])  # class 5, 5 queries
    with pytest.raises(ValueError, match="at most one target per class"):
        FixedMatcher()(outputs, [{"labels": torch.tensor([1, 1]), "masks": torch.ones(2, 4, 4)}])
    with pytest.raises(ValueError, match="model.num_queries=5"):
        MaskFormerConfig.tiny(num_classes=5, matching="fixed", num_queries=20)


def test_fixed_matching_loss_supervises_query_k_with_class_k():
    outputs, targets = random_outputs(num_aux=0), semantic_targets()
    loss = MaskFormerLoss(K, FixedMatcher())
    losses = loss(outputs, targets)
    # by hand: query k's class target is k where class k is present, "no object" elsewhere
    target_classes = torch.full((2, K), K)
    for b, t in enumerate(targets):
        target_classes[b, t["labels"]] = t["labels"]
    weight = torch.ones(K + 1)
    weight[-1] = 0.1
    ce = F.cross_entropy(outputs["pred_logits"].transpose(1, 2), target_classes, weight)
    torch.testing.assert_close(losses["loss_ce"], ce)
    logits = torch.cat([outputs["pred_masks"][b, t["labels"]] for b, t in enumerate(targets)])  # [4, h, w]
    up = F.interpolate(logits[:, None], size=(32, 40), mode="bilinear", align_corners=False).flatten(1)
    masks = torch.cat([t["masks"] for t in targets]).flatten(1).float()
    torch.testing.assert_close(losses["loss_mask"], sigmoid_focal_loss(up, masks).sum() / 4)
    torch.testing.assert_close(losses["loss_dice"], dice_loss(up, masks).sum() / 4)


# ---- the mask terms ------------------------------------------------------------------------------
def test_a_term_is_one_function_and_one_weight():
    loss = MaskFormerLoss(K, mask_terms={"loss_mask": "bce", "loss_dice": "dice"})
    assert loss.mask_terms == {"loss_mask": "bce", "loss_dice": "dice"} and MASK_TERMS["bce"] is sigmoid_bce_loss
    assert set(loss(random_outputs(num_aux=1), semantic_targets())) == {
        "loss_ce", "loss_mask", "loss_dice", "loss_ce_0", "loss_mask_0", "loss_dice_0"}
    with pytest.raises(ValueError, match="no weight for loss terms"):
        MaskFormerLoss(K, mask_terms={"loss_mask": "focal", "loss_boundary": "dice"})
    with pytest.raises(ValueError, match="unknown mask loss functions"):
        MaskFormerLoss(K, mask_terms={"loss_mask": "lovasz"})


@pytest.mark.parametrize("num_points", [None, 300])
def test_unfused_mask_loss_equals_the_fused_one(num_points):
    """fused=False (the plain formulas under autograd) gives the fused kernel's terms and gradients;
    with points both take the same sampled path."""
    torch.manual_seed(0)
    outputs, targets = random_outputs(), semantic_targets()
    results = []
    for fused in (True, False):
        torch.manual_seed(1)  # the same random points for both
        losses = MaskFormerLoss(K, num_points=num_points, fused=fused)(outputs, targets)
        leaves = [outputs["pred_masks"], *(a["pred_masks"] for a in outputs["aux_outputs"])]
        grads = torch.autograd.grad(sum(w * v for w, v in zip([1, 20, 1] * 3, losses.values())), leaves)
        results.append((losses, grads))
    (fused, fused_grads), (plain, plain_grads) = results
    assert fused.keys() == plain.keys() and len(fused) == 9
    for name in fused:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-6, atol=1e-7, msg=name)
    for g, e in zip(fused_grads, plain_grads):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5 * e.abs().max().item())


def test_full_mask_losses_plain_path_is_the_formula():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 6, 7, generator=generator)
    targets = torch.rand(2, 24, 28, generator=generator) > 0.5
    idx = torch.tensor([1, 0, 1, 1])
    terms = full_mask_losses(logits, targets, idx, {"loss_mask": "bce", "loss_dice": "dice"})
    up = F.interpolate(logits[:, None], size=(24, 28), mode="bilinear", align_corners=False).flatten(1)
    t = targets[idx].flatten(1).float()
    torch.testing.assert_close(terms["loss_mask"], F.binary_cross_entropy_with_logits(up, t, reduction="none").mean(1))
    torch.testing.assert_close(terms["loss_dice"], dice_loss(up, t))


def test_bce_matching_cost_is_the_pairwise_bce():
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 50, generator=generator), (torch.rand(3, 50, generator=generator) > 0.5).float()
    cost = pairwise_sigmoid_bce_cost(logits, targets)
    for q in range(6):
        for n in range(3):
            torch.testing.assert_close(cost[q, n], F.binary_cross_entropy_with_logits(logits[q], targets[n]))


def test_config_switches_reach_the_loss():
    cfg = MaskFormerConfig.tiny(num_classes=K, mask_loss="bce_dice", fused_mask_loss=False)
    loss = build_criterion(cfg)
    assert loss.mask_terms["loss_mask"] == "bce" and not loss.fused
    assert type(loss.matcher) is HungarianMatcher and loss.matcher.mask_cost == "bce"
    fixed = build_criterion(MaskFormerConfig.tiny(num_classes=K, num_queries=K, matching="fixed"))
    assert type(fixed.matcher) is FixedMatcher
    per_pixel = build_criterion(MaskFormerConfig.tiny(num_classes=K, architecture="per_pixel",
                                                      per_pixel_loss="focal_dice"))
    assert type(per_pixel) is PerPixelLoss and per_pixel.weight_dict == {"loss_mask": 20.0, "loss_dice": 1.0}
    from maskformer import config, loss as loss_module

    assert set(config.MASK_LOSSES) == set(loss_module.MASK_LOSSES)  # every config choice has its terms
    for field, value in [("matching", "greedy"), ("mask_loss", "lovasz"), ("per_pixel_loss", "ohem")]:
        with pytest.raises(ValueError, match=f"model.{field}='{value}': must be one of"):
            MaskFormerConfig.tiny(**{field: value})


# ---- per-pixel focal + dice ----------------------------------------------------------------------
def test_per_pixel_focal_dice_is_maskformers_terms_on_every_class_map():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, 8, 10, generator=generator, requires_grad=True)
    semantic = torch.randint(0, K, (2, 32, 40), generator=generator)
    semantic[:, :4] = 255
    losses = PerPixelLoss(K, loss="focal_dice")({"semantic_logits": logits}, semantic)
    up = F.interpolate(logits, size=(32, 40), mode="bilinear", align_corners=False).flatten(0, 1).flatten(1)
    masks = F.one_hot(semantic.clamp(max=K), K + 1)[..., :K].permute(0, 3, 1, 2).flatten(0, 1).flatten(1).float()
    torch.testing.assert_close(losses["loss_mask"], sigmoid_focal_loss(up, masks).mean())
    torch.testing.assert_close(losses["loss_dice"], dice_loss(up, masks).mean())
    plain = PerPixelLoss(K, loss="focal_dice", fused=False)({"semantic_logits": logits}, semantic)
    for name in losses:
        (g,) = torch.autograd.grad(losses[name], logits, retain_graph=True)
        (e,) = torch.autograd.grad(plain[name], logits, retain_graph=True)
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


# ---- PerPixelBaseline+ -------------------------------------------------------------------------------
def plus_config(**kw):
    return MaskFormerConfig.tiny(num_classes=K, num_queries=K, architecture="per_pixel_plus", backbone="resnet",
                                 dec_layers=3, **kw)


@pytest.mark.parametrize("feature", ["res5", "pixel_embedding"])
def test_per_pixel_plus_outputs_one_map_per_class_and_layer(feature):
    torch.manual_seed(0)
    model = build_model(plus_config(transformer_in_feature=feature))
    assert type(model) is PerPixelBaselinePlus and not hasattr(model, "class_embed")
    out = model.train()(torch.randn(2, 3, 64, 48))
    assert out.semantic_logits.shape == (2, K, 16, 12)
    assert [a["semantic_logits"].shape for a in out.aux_outputs] == [(2, K, 16, 12)] * 2
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 48)).aux_outputs == []
    assert build_model(plus_config(deep_supervision=False)).train()(torch.randn(1, 3, 32, 32)).aux_outputs == []
    with pytest.raises(ValueError, match="model.num_queries=5"):
        MaskFormerConfig.tiny(num_classes=K, num_queries=20, architecture="per_pixel_plus")


def test_per_pixel_plus_loss_supervises_every_layer():
    torch.manual_seed(0)
    cfg = plus_config()
    model, criterion = build_model(cfg).train(), build_criterion(cfg)
    batch = collate([Shapes(num_samples=2, image_size=64, num_classes=K, seed=0)[i] for i in range(2)])
    outputs = model(batch["images"])
    losses = criterion.batch_losses(outputs, batch)
    assert list(losses) == ["loss_sem_seg", "loss_sem_seg_0", "loss_sem_seg_1"]
    alone = PerPixelLoss(K)({"semantic_logits": outputs.aux_outputs[1]["semantic_logits"]}, batch["semantic"])
    torch.testing.assert_close(losses["loss_sem_seg_1"], alone["loss_sem_seg"])
    torch.testing.assert_close(criterion.total_loss(losses), sum(losses.values()))


def test_per_pixel_plus_checkpoint_round_trip(tmp_path):
    from maskformer.hub import from_pretrained

    torch.manual_seed(0)
    model = build_model(plus_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is PerPixelBaselinePlus
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).semantic_logits, model(images).semantic_logits)


# ---- gradient accumulation stays exact for the new variants --------------------------------------------
@pytest.mark.parametrize("kw", [dict(architecture="per_pixel_plus", num_queries=K),
                                dict(architecture="per_pixel", per_pixel_loss="focal_dice"),
                                dict(matching="fixed", num_queries=K)], ids=["plus", "per-pixel-focal", "fixed"])
def test_micro_batches_equal_the_full_batch(kw):
    cfg = MaskFormerConfig.tiny(num_classes=K, backbone="resnet", dropout=0.0, dec_layers=2, **kw)
    images = [Shapes(num_samples=4, image_size=64, num_classes=K, seed=1)[i] for i in range(4)]
    results = []
    for size in (4, 2):
        torch.manual_seed(0)
        model, criterion = build_model(cfg).train(), build_criterion(cfg)
        batches = [collate(images[i:i + size]) for i in range(0, 4, size)]
        normalisers = criterion.normalisers(batches)
        total = 0.0
        for batch in batches:
            loss = criterion.total_loss(criterion.batch_losses(model(batch["images"]), batch, normalisers))
            loss.backward()
            total += loss.item()
        results.append((total, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    (whole, whole_grad), (parts, parts_grad) = results
    assert parts == pytest.approx(whole, rel=1e-5)
    torch.testing.assert_close(parts_grad, whole_grad, rtol=1e-4, atol=1e-5 * whole_grad.abs().max().item())


# ---- every variant trains --------------------------------------------------------------------------
TINY_RUN = ["solver.max_iters=3", "solver.batch_size=4", "solver.warmup_iters=0", "data.num_train=8",
            "data.num_val=4", "data.image_size=32", "data.test_short_edge=32", "data.test_max_size=32",
            "eval_period=0", "checkpoint_period=0"]
VARIANTS = {
    "per_pixel_plus": ("shapes/per_pixel_plus_tiny", []),
    "per_pixel_plus-focal_dice": ("shapes/per_pixel_plus_tiny", ["model.per_pixel_loss=focal_dice"]),
    "per_pixel-focal_dice": ("shapes/per_pixel_tiny", ["model.per_pixel_loss=focal_dice"]),
    "fixed_matching": ("shapes/maskformer_fixed_tiny", []),
    "bce_dice": ("shapes/maskformer_tiny", ["model.mask_loss=bce_dice"]),
    "unfused": ("shapes/maskformer_tiny", ["model.fused_mask_loss=false"]),
    "one_layer_no_deep_supervision": ("shapes/maskformer_tiny", ["model.dec_layers=1",
                                                                 "model.deep_supervision=false"]),
    # Mask2Former's ladder (configs/shapes/mask2former_*): each step and each leave-one-out
    **{name: (f"shapes/{name}", []) for name in (
        "mask2former_step1_settings_tiny", "mask2former_step2_decoder_tiny", "mask2former_tiny",
        "mask2former_no_masked_attention_tiny", "mask2former_no_multi_scale_tiny", "mask2former_no_query_features_tiny")},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_trains_a_few_steps(name, tmp_path):
    config, extra = VARIANTS[name]
    cfg = load_config(config, TINY_RUN + extra + [f"output_dir={tmp_path}"])
    trainer = Trainer(cfg, progress=False)
    results = trainer.train()
    assert trainer.step == 3 and 0 <= results["mIoU"] <= 1
    losses = [r["loss"] for r in trainer.history if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert (tmp_path / "model" / "config.json").exists()


def test_shipped_variant_configs():
    plus = load_config("shapes/per_pixel_plus_tiny").model
    assert (plus.architecture, plus.num_queries, plus.num_classes) == ("per_pixel_plus", 7, 7)
    fixed = load_config("shapes/maskformer_fixed_tiny").model
    assert (fixed.matching, fixed.num_queries, fixed.num_classes) == ("fixed", 7, 7)
    ade = load_config("ade20k-150/per_pixel_baseline_plus_R50_bs16_160k")
    assert (ade.model.architecture, ade.model.num_queries, ade.model.backbone) == ("per_pixel_plus", 150, "resnet")
    assert dataclasses.asdict(ade.solver) == dataclasses.asdict(
        load_config("ade20k-150/per_pixel_baseline_R50_bs16_160k").solver)
