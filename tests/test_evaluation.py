"""Semantic evaluation (single scale, multi-scale + flip), results files, and build_dataset.

A "perfect" fake model reads the class of every pixel from the image itself (channel 0 holds the
label), so whatever the scale, flip and padding, a correct pipeline must give mIoU 1.0.
"""

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.data import ADE20K_CLASSES, ADE20K_PALETTE, Shapes, build_dataset, collate, eval_transforms
from maskformer.evaluation import (
    ADE20K_640_TEST_MAX_SIZE,
    ADE20K_640_TEST_SCALES,
    ADE20K_TEST_MAX_SIZE,
    ADE20K_TEST_SCALES,
    evaluate_semantic,
    format_results,
    multi_scale_sizes,
    tta_probabilities,
    write_results,
)
from maskformer.metrics import SemanticMetrics
from maskformer.postprocess import semantic_segmentation

K = 4
STRIPE = 16  # label stripes are 16 px wide, so at scales 0.5..2 they stay aligned with the stride-4 grid


class Stripes(Dataset):
    """Vertical stripes of random classes (one stripe unlabelled); image channel 0 holds class id + 1
    (0 is the padding)."""

    class_names = [f"class{i}" for i in range(K)]
    num_classes = K

    def __init__(self, sizes=((64, 64), (64, 96), (96, 64))):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        H, W = self.sizes[index]
        g = torch.Generator().manual_seed(index)
        classes = torch.randint(0, K, (W // STRIPE,), generator=g)
        semantic = classes.repeat_interleave(STRIPE)[None].expand(H, W).clone()  # [H, W]
        image = torch.zeros(3, H, W)
        image[0] = semantic.float() + 1
        semantic[:, STRIPE : 2 * STRIPE] = 255  # unlabelled: the model's answer there must not count
        return {"image": image, "original_semantic": semantic, "name": str(index)}


class PerfectModel(nn.Module):
    """Reads each stride-4 cell's class at pixel (4i+1, 4j+1) of channel 0 (inside the cell, away from the
    blur of resizing at stripe edges) and answers it with confidence, per-pixel or MaskFormer style.
    On padding it answers nothing (all logits 0), as any class there would leak into the image's border
    pixels through the upsampling."""

    def __init__(self, style):
        super().__init__()
        self.style = style
        self.unused = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, images, return_aux=True):
        value = images[:, 0, 1::4, 1::4].round().long()  # [B, H/4, W/4], class + 1, 0 on padding
        image = (value > 0)[:, None].float()  # [B, 1, H/4, W/4]
        one_hot = F.one_hot((value - 1).clamp(0, K - 1), K).permute(0, 3, 1, 2).float()  # [B, K, H/4, W/4]
        if self.style == "per_pixel":
            return {"semantic_logits": 20 * one_hot * image}
        B = images.shape[0]
        logits = torch.full((B, K, K + 1), -20.0)  # query q predicts class q
        logits[:, torch.arange(K), torch.arange(K)] = 20.0
        return {"pred_logits": logits, "pred_masks": 20 * (2 * one_hot - 1) * image}  # [B, Q=K, H/4, W/4]


class AvgPoolModel(nn.Module):
    """A per-pixel model that commutes with horizontal flips (4x4 average pooling, then a 1x1 conv);
    ``ramp`` adds a left-to-right gradient to class 0, which breaks that."""

    def __init__(self, in_channels=3, ramp=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(in_channels, K, 1)
        self.ramp = ramp

    def forward(self, images, return_aux=True):
        logits = self.conv(F.avg_pool2d(images, 4))  # [B, K, H/4, W/4]
        if self.ramp:
            logits[:, 0] += torch.linspace(-3, 3, logits.shape[-1])
        return {"semantic_logits": logits}


@pytest.mark.parametrize("style", ["per_pixel", "maskformer"])
@pytest.mark.parametrize("short_edges,flip", [((64,), False), ((32, 64, 96, 128), False), ((32, 96), True)])
def test_perfect_model_scores_one(style, short_edges, flip):
    results = evaluate_semantic(PerfectModel(style), Stripes(), short_edges=short_edges, flip=flip, batch_size=2,
                                progress=False)
    assert results["mIoU"] == 1.0 and results["pixel_accuracy"] == 1.0
    assert results["num_images"] == 3 and results["short_edges"] == list(short_edges) and results["flip"] is flip
    assert list(results["per_class"]) == Stripes.class_names


def test_flip_of_a_flip_equivariant_model_changes_nothing():
    dataset = Shapes(num_samples=3, image_size=64, num_classes=K, seed=1)  # 64 px: no padding at 32, 64, 128
    images = [dataset[i]["image"] for i in range(3)]
    model = AvgPoolModel()
    plain = tta_probabilities(model, images, short_edges=(32, 64, 128))
    flipped = tta_probabilities(model, images, short_edges=(32, 64, 128), flip=True)
    for a, b in zip(plain, flipped):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    results = [evaluate_semantic(model, dataset, short_edges=(32, 64, 128), flip=f, progress=False) for f in (0, 1)]
    torch.testing.assert_close(results[0]["IoU"], results[1]["IoU"], equal_nan=True)
    # the flipped pass does run: a model that is not flip-equivariant gives other scores
    ramped = AvgPoolModel(ramp=True)
    assert not torch.allclose(tta_probabilities(ramped, images[:1])[0],
                              tta_probabilities(ramped, images[:1], flip=True)[0])


def tiny_maskformer(num_classes=5):
    torch.manual_seed(0)
    return MaskFormer(MaskFormerConfig.tiny(num_classes=num_classes)).eval()


def manual_loop(model, samples, num_classes):
    metrics = SemanticMetrics(num_classes)
    for sample in samples:
        batch = collate([sample])
        with torch.no_grad():
            outputs = model(batch["images"], return_aux=False)
        prediction = semantic_segmentation(outputs, batch["image_sizes"], batch["original_sizes"])[0]
        metrics.update(prediction, sample["original_semantic"])
    return metrics.compute()


def test_single_scale_equals_postprocess_and_metrics_by_hand():
    model = tiny_maskformer()
    dataset = Shapes(num_samples=3, image_size=72, num_classes=5, seed=2)  # 72 px: padded to 96
    results = evaluate_semantic(model, dataset, short_edges=(72,), progress=False)
    expected = manual_loop(model, [dataset[i] for i in range(3)], 5)
    torch.testing.assert_close(results["IoU"], expected["IoU"], equal_nan=True)
    assert results["mIoU"] == expected["mIoU"] and results["pixel_accuracy"] == expected["pixel_accuracy"]


def test_resizing_matches_the_eval_transforms():
    """Evaluating at short edge 96 equals running the data pipeline's eval_transforms(96), up to its
    uint8 rounding (the transform resizes before normalising, evaluation after)."""
    model = tiny_maskformer()
    results = evaluate_semantic(model, Shapes(num_samples=2, image_size=64, num_classes=5, seed=4),
                                short_edges=(96,), progress=False)
    resized = Shapes(num_samples=2, image_size=64, num_classes=5, seed=4, transforms=eval_transforms(96))
    expected = manual_loop(model, [resized[i] for i in range(2)], 5)
    assert resized[0]["image_size"] == (96, 96)
    assert abs(results["pixel_accuracy"] - expected["pixel_accuracy"]) < 0.01


def test_training_mode_is_restored():
    model = tiny_maskformer()
    dataset = Shapes(num_samples=1, image_size=64, num_classes=5)
    for training in (True, False):
        model.train(training)
        evaluate_semantic(model, dataset, short_edges=(64,), progress=False)
        assert model.training is training
        assert all(m.training is training for m in model.modules())


def test_limit_and_class_name_checks():
    results = evaluate_semantic(PerfectModel("per_pixel"), Stripes(), short_edges=(64,), limit=1, progress=False)
    assert results["num_images"] == 1
    with pytest.raises(ValueError, match="predicts 4 classes but the dataset Shapes has 7"):
        evaluate_semantic(PerfectModel("per_pixel"), Shapes(num_samples=1, image_size=64), short_edges=(64,),
                          progress=False)


def test_multi_scale_sizes_are_the_originals():
    assert multi_scale_sizes(512) == (ADE20K_TEST_SCALES, ADE20K_TEST_MAX_SIZE)
    assert multi_scale_sizes(640) == (ADE20K_640_TEST_SCALES, ADE20K_640_TEST_MAX_SIZE)


def test_write_and_format_results(tmp_path):
    results = evaluate_semantic(AvgPoolModel(), Stripes(), short_edges=(64,), progress=False)
    path = write_results(results, tmp_path / "results.json")
    loaded = json.loads(path.read_text())
    assert loaded["mIoU"] == results["mIoU"] and loaded["num_images"] == 3 and loaded["short_edges"] == [64]
    assert loaded["IoU"] == [None if math.isnan(v) else v for v in results["IoU"].tolist()]
    assert loaded["per_class"].keys() == results["per_class"].keys()

    with write_results(results, tmp_path / "sub" / "iou.csv").open() as f:  # folders are created
        rows = list(csv.DictReader(f))
    assert [r["class_name"] for r in rows] == Stripes.class_names
    for row, iou in zip(rows, results["IoU"].tolist()):
        assert (row["IoU"] == "") if math.isnan(iou) else abs(float(row["IoU"]) - iou) < 1e-6

    text = format_results(results)
    assert text.splitlines()[0].startswith("mIoU") and f"{100 * results['mIoU']:.2f}" in text
    assert "pixel accuracy" in text and all(name in text for name in Stripes.class_names)
    with pytest.raises(ValueError, match=r"results\.txt.*\.json.*\.csv"):
        write_results(results, tmp_path / "results.txt")


# ------------------------------------------------------------------------------------ build_dataset


def test_build_shapes_defaults_and_overrides():
    train, val = build_dataset("shapes", "train"), build_dataset("shapes", "validation")
    assert (len(train), len(val)) == (2000, 100)
    assert train.image_size == val.image_size == 64 and train.num_classes == 7
    assert val.seed != train.seed  # disjoint: Shapes draws sample i from (seed, i)
    assert not torch.equal(train[0]["image"], val[0]["image"])
    custom = build_dataset("shapes", "val", num_samples=5, image_size=32, num_classes=3, seed=7)
    assert (len(custom), custom.image_size, custom.num_classes) == (5, 32, 3)
    assert custom.seed == build_dataset("shapes", "val", seed=7).seed
    for dataset in (train, custom):
        assert len(dataset.class_names) == len(dataset.palette) == dataset.num_classes


def test_build_dataset_errors():
    with pytest.raises(ValueError, match=r"unknown dataset 'coco'.*shapes.*ade20k"):
        build_dataset("coco", "train")
    with pytest.raises(ValueError, match=r"unknown split 'test'"):
        build_dataset("shapes", "test")
    with pytest.raises(ValueError, match="image_size=32 applies to shapes only"):
        build_dataset("ade20k", "val", root="anywhere", image_size=32)
    with pytest.raises(ValueError, match="150 classes"):
        build_dataset("ade20k", "val", root="anywhere", num_classes=10)


@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((24, 32, 3), 100, dtype=np.uint8)).save(root / "images" / split / f"a{i}.jpg")
            Image.fromarray(np.full((24, 32), i + 1, dtype=np.uint8)).save(root / "annotations" / split / f"a{i}.png")
    return tmp_path


def test_build_ade20k_from_a_folder(ade_root):
    val = build_dataset("ade20k", "val", root=ade_root)
    assert len(val) == 2 and val.split == "validation" and val.num_classes == 150
    assert list(val.class_names) == list(ADE20K_CLASSES) and list(val.palette) == list(ADE20K_PALETTE)
    assert build_dataset("ade20k", "training", root=ade_root).split == "training"
    first = build_dataset("ade20k", "train", root=ade_root, num_samples=1)
    assert len(first) == 1 and first.num_classes == 150 and list(first.palette) == list(ADE20K_PALETTE)
    assert first[0]["original_semantic"].unique().tolist() == [0]


def test_build_ade20k_offline_message(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    import maskformer.pretrained

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(maskformer.pretrained, "hub_endpoint_reachable", lambda: True)  # the load itself fails
    with pytest.raises(RuntimeError, match=r"could not load 'scene_parse_150'.*ADE20K\(root"):
        build_dataset("ade20k", "val")
    monkeypatch.setattr(maskformer.pretrained, "hub_endpoint_reachable", lambda: False)  # offline: at once
    with pytest.raises(RuntimeError, match=r"cannot be reached.*--data-root DIR"):
        build_dataset("ade20k", "val")
