"""The per-pixel baseline (paper §4.1): shapes, the loss against a hand computation, training, checkpoints,
and the build_model / build_criterion dispatch the trainer relies on."""

import math

import pytest
import torch
import torch.nn.functional as F

from maskformer import MaskFormer, MaskFormerConfig, MaskFormerLoss
from maskformer.baseline import PerPixelBaseline, PerPixelLoss
from maskformer.builders import build_criterion, build_model
from maskformer.data import Shapes, collate


def tiny_config(num_classes=5, **kw):
    return MaskFormerConfig.tiny(num_classes=num_classes, architecture="per_pixel", **kw)


@pytest.mark.parametrize("backbone", ["swin", "resnet"])
@pytest.mark.parametrize("size", [(64, 96), (70, 90), (33, 65)])
def test_output_shape(backbone, size):
    torch.manual_seed(0)
    model = PerPixelBaseline(tiny_config(backbone=backbone)).eval()
    H, W = size
    with torch.no_grad():
        out = model(torch.randn(2, 3, H, W))
    assert list(out) == ["semantic_logits"]
    assert out.semantic_logits.shape == (2, 5, math.ceil(H / 4), math.ceil(W / 4))
    assert torch.isfinite(out.semantic_logits).all()
    assert model.predictor.weight.is_contiguous(memory_format=torch.channels_last)


def test_batched_equals_one_by_one():
    torch.manual_seed(0)
    model = PerPixelBaseline(tiny_config(backbone="resnet")).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        batched = model(images).semantic_logits
        single = torch.cat([model(images[i : i + 1]).semantic_logits for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)


def random_labels(shape, num_classes, seed=0, ignore_fraction=0.2):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, shape, generator=generator)
    labels[torch.rand(shape, generator=generator) < ignore_fraction] = 255
    return labels


@pytest.mark.parametrize("label_size", [(64, 80), (62, 77)], ids=["multiple-of-4", "cropped"])
def test_loss_equals_hand_computation(label_size):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 16, 20, requires_grad=True)
    labels = random_labels((2, *label_size), 5)
    loss = PerPixelLoss(5)({"semantic_logits": logits}, labels)["loss_sem_seg"]
    # by hand: upsample by the stride 4 (detectron2's semantic FPN head), crop to the labels, mean CE
    upsampled = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
    upsampled = upsampled[..., : label_size[0], : label_size[1]]
    expected = F.cross_entropy(upsampled, labels, ignore_index=255)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_loss_refuses_labels_larger_than_the_logits():
    with pytest.raises(ValueError, match=r"labels of size \(68, 80\).*logits \(16, 20\)"):
        PerPixelLoss(5)({"semantic_logits": torch.randn(1, 5, 16, 20)}, torch.zeros(1, 68, 80, dtype=torch.long))


def test_all_ignore_gives_zero_and_finite_gradients():
    logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    labels = torch.full((2, 32, 32), 255)
    criterion = PerPixelLoss(5)
    loss = criterion.total_loss(criterion({"semantic_logits": logits}, labels))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_normalisers_count_the_labelled_pixels_of_the_step():
    criterion = PerPixelLoss(5)
    first, second = random_labels((2, 8, 8), 5, seed=0), random_labels((1, 8, 8), 5, seed=1, ignore_fraction=0.6)
    step = [{"semantic": first}, {"semantic": second}]
    normalisers = criterion.normalisers(step)
    assert normalisers == {"num_pixels": float((first != 255).sum() + (second != 255).sum())}
    assert criterion.normalisers([{"semantic": torch.full((1, 4, 4), 255)}]) == {"num_pixels": 1.0}  # clamped
    # with them, the micro-batches' losses sum to the mean over the whole step's labelled pixels
    logits = torch.randn(3, 5, 2, 2)
    parts = [criterion.batch_losses({"semantic_logits": logits[:2]}, step[0], normalisers),
             criterion({"semantic_logits": logits[2:]}, second, normalisers)]
    whole = criterion({"semantic_logits": logits}, torch.cat([first, second]))
    torch.testing.assert_close(parts[0]["loss_sem_seg"] + parts[1]["loss_sem_seg"], whole["loss_sem_seg"])


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    config = tiny_config(num_classes=7)
    model, criterion = build_model(config), build_criterion(config)
    batch = collate([Shapes(num_samples=1, image_size=32, num_classes=7, seed=0)[0]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = criterion.total_loss(criterion.batch_losses(model(batch["images"]), batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_batch_losses_read_the_right_batch_keys():
    torch.manual_seed(0)
    dataset = Shapes(num_samples=2, image_size=64, num_classes=5, seed=3)
    batch = collate([dataset[0], dataset[1]])

    config = MaskFormerConfig.tiny(num_classes=5, backbone="resnet")
    model, criterion = build_model(config), build_criterion(config)
    outputs = model(batch["images"])
    by_batch = criterion.batch_losses(outputs, batch)
    direct = criterion(outputs, batch["targets"])
    assert by_batch.keys() == direct.keys()
    for name in direct:
        torch.testing.assert_close(by_batch[name], direct[name])

    config = tiny_config(backbone="resnet")
    model, criterion = build_model(config), build_criterion(config)
    outputs = model(batch["images"])
    torch.testing.assert_close(criterion.batch_losses(outputs, batch)["loss_sem_seg"],
                               criterion(outputs, batch["semantic"])["loss_sem_seg"])


def test_build_model_and_criterion_dispatch():
    per_pixel = tiny_config()
    assert type(build_model(per_pixel)) is PerPixelBaseline
    assert type(build_criterion(per_pixel)) is PerPixelLoss
    assert build_criterion(per_pixel).num_classes == 5
    maskformer = MaskFormerConfig.tiny(num_classes=5)
    assert type(build_model(maskformer)) is MaskFormer
    criterion = build_criterion(maskformer)
    assert type(criterion) is MaskFormerLoss and criterion.weight_dict["loss_mask"] == maskformer.mask_weight
    with pytest.raises(ValueError, match="architecture"):
        MaskFormerConfig.tiny(architecture="fcn")


def test_total_loss_names_unknown_terms():
    with pytest.raises(KeyError, match="loss_ce"):
        PerPixelLoss(3).total_loss({"loss_sem_seg": torch.tensor(1.0), "loss_ce": torch.tensor(1.0)})


def test_checkpoint_round_trip(tmp_path):
    from maskformer.hub import from_pretrained

    torch.manual_seed(0)
    config = tiny_config(id2label={i: f"c{i}" for i in range(5)})
    model = PerPixelBaseline(config).eval()
    model.save_pretrained(tmp_path)
    images = torch.randn(1, 3, 64, 64)
    for loaded in (from_pretrained(tmp_path), PerPixelBaseline.from_pretrained(tmp_path)):
        assert type(loaded) is PerPixelBaseline and not loaded.training
        assert loaded.config == config
        with torch.no_grad():
            torch.testing.assert_close(loaded(images).semantic_logits, model(images).semantic_logits)
    assert model.num_parameters == loaded.num_parameters
    with pytest.raises(ValueError, match="per_pixel"):  # names the architecture the checkpoint holds
        MaskFormer.from_pretrained(tmp_path)
