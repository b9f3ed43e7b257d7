"""Targets, transforms, batching and the Shapes dataset."""

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from maskformer.data import (
    ColorJitterSSD,
    PadTo,
    RandomCropCategoryArea,
    ResizeShortestEdge,
    Shapes,
    collate,
    eval_transforms,
    instance_to_targets,
    make_sample,
    reduce_labels,
    semantic_to_targets,
    train_transforms,
)


def blocky_labels(H=40, W=56, K=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, (H // 8, W // 8), generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1)


# ---------------------------------------------------------------------------- targets


def test_semantic_targets_partition_the_labelled_pixels():
    semantic = blocky_labels()
    semantic[:8] = 255
    targets = semantic_to_targets(semantic)
    masks, labels = targets["masks"], targets["labels"]
    assert masks.dtype == torch.bool and labels.dtype == torch.int64
    assert 255 not in labels.tolist() and labels.tolist() == sorted(set(semantic.unique().tolist()) - {255})
    assert (masks.sum(0) == (semantic != 255)).all()  # each labelled pixel in exactly one mask, ignore in none
    rebuilt = torch.full_like(semantic, 255)
    for label, mask in zip(labels, masks):
        rebuilt[mask] = label
    assert torch.equal(rebuilt, semantic)


def test_ade20k_label_rule_and_all_ignore_map():
    assert reduce_labels(torch.tensor([[0, 1], [150, 2]])).tolist() == [[255, 0], [149, 1]]
    empty = semantic_to_targets(torch.full((4, 5), 255))  # a crop of pure "other" must not crash
    assert empty["labels"].shape == (0,) and empty["masks"].shape == (0, 4, 5)


def test_instance_targets_one_mask_per_segment():
    instance = torch.tensor([[0, 0, 1], [2, 2, 1], [7, 0, 0]])
    targets = instance_to_targets(instance, {0: 0, 1: 3, 2: 3, 5: 9})  # id 7 unmapped, id 5 absent
    assert targets["labels"].tolist() == [0, 3, 3]
    assert targets["masks"].sum((1, 2)).tolist() == [4, 2, 2]
    assert not targets["masks"][:, 2, 0].any()


# ---------------------------------------------------------------------------- transforms


def test_resize_shortest_edge_sizes():
    image = tv_tensors.Image(torch.zeros(3, 480, 640, dtype=torch.uint8))
    assert ResizeShortestEdge(512)(image).shape[-2:] == (512, 683)
    assert ResizeShortestEdge(512, max_size=2048)(tv_tensors.Image(torch.zeros(3, 100, 1000, dtype=torch.uint8))).shape[-2:] == (205, 2048)


def test_geometric_transforms_move_image_and_labels_together():
    torch.manual_seed(0)
    semantic = blocky_labels(40, 56)
    image = (semantic * 40).to(torch.uint8)[None].repeat(3, 1, 1)  # colour encodes the label
    pipeline = v2.Compose([
        ResizeShortestEdge(40, 2048),  # same size: no interpolation
        RandomCropCategoryArea(32),
        v2.RandomHorizontalFlip(),
        PadTo(48),
    ])
    for _ in range(5):
        out_image, out_semantic = pipeline(tv_tensors.Image(image), tv_tensors.Mask(semantic))
        assert out_image.shape == (3, 48, 48) and out_semantic.shape == (48, 48)
        real = out_semantic != 255
        assert real.sum() == 32 * 32
        assert torch.equal(out_image[0][real], (out_semantic[real] * 40).to(torch.uint8))
        assert (out_image[:, ~real] == 128).all()


def test_resized_labels_keep_their_values():
    semantic = blocky_labels(40, 56)
    semantic[0, 0] = 255
    out = ResizeShortestEdge(77)(tv_tensors.Image(torch.zeros(3, 40, 56, dtype=torch.uint8)), tv_tensors.Mask(semantic))[1]
    assert set(out.unique().tolist()) <= set(semantic.unique().tolist())  # nearest, never a blend


def test_category_area_crop_prefers_mixed_crops():
    semantic = torch.zeros(64, 64, dtype=torch.long)
    semantic[:, 32:] = 1
    semantic[:4] = 255  # ignore is not a category
    image = tv_tensors.Image(torch.zeros(3, 64, 64, dtype=torch.uint8))

    def passing(max_area):
        torch.manual_seed(0)
        crop, count = RandomCropCategoryArea(16, single_category_max_area=max_area), 0
        for _ in range(40):
            out = crop(image, tv_tensors.Mask(semantic))[1]
            areas = out[out != 255].unique(return_counts=True)[1]
            count += bool(len(areas) > 1 and areas.max() < 0.75 * areas.sum())
        return count

    # a crop passes when 5..11 of its 16 columns are category 1: 7 in 49 left positions for one
    # draw (~ 6 in 40), 1 - (42/49)^10 ~ 0.79 with ten tries (~ 31 in 40)
    assert passing(1.0) <= 12 and passing(0.75) >= 24
    semantic[:, :] = 255  # all ignore: no crop passes, the last try is used
    assert RandomCropCategoryArea(16, 0.75)(image, tv_tensors.Mask(semantic))[1].shape == (16, 16)


def test_ssd_jitter_leaves_labels_alone_and_is_seeded():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8))
    semantic = tv_tensors.Mask(blocky_labels(16, 16))
    torch.manual_seed(3)
    first = ColorJitterSSD()(image, semantic)
    torch.manual_seed(3)
    second = ColorJitterSSD()(image, semantic)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], semantic)
    assert first[0].dtype == torch.uint8


def test_train_and_eval_pipelines():
    torch.manual_seed(0)
    image, semantic = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8), blocky_labels(64, 96)
    sample = make_sample(image, semantic, train_transforms(crop_size=64), num_classes=5)
    assert sample["image"].shape == (3, 64, 64) and sample["image_size"] == (64, 64)
    assert sample["original_size"] == (64, 96) and torch.equal(sample["original_semantic"], semantic)
    assert (sample["targets"]["masks"].sum(0) == (sample["semantic"] != 255)).all()
    evaluated = make_sample(image, semantic, eval_transforms(short_edge=32))
    assert evaluated["image_size"] == (32, 48)


# ---------------------------------------------------------------------------- batching


def test_collate_pads_to_32_and_keeps_sizes():
    samples = [make_sample(torch.zeros(3, h, w, dtype=torch.uint8), blocky_labels(h, w)) for h, w in [(40, 56), (72, 32)]]
    batch = collate(samples)
    assert batch["images"].shape == (2, 3, 96, 64)
    assert batch["image_sizes"] == [(40, 56), (72, 32)] == batch["original_sizes"]
    assert (batch["images"][0, :, 40:] == 0).all() and (batch["semantic"][1, :, 32:] == 255).all()
    assert batch["pixel_mask"].sum((1, 2)).tolist() == [40 * 56, 72 * 32]
    for sample, targets in zip(samples, batch["targets"]):
        assert targets["masks"].shape[-2:] == (96, 64)
        h, w = sample["image_size"]
        assert torch.equal(targets["masks"][:, :h, :w], sample["targets"]["masks"]) and not targets["masks"][:, h:].any()


# ---------------------------------------------------------------------------- Shapes


def test_shapes_is_deterministic_and_consistent():
    data = Shapes(num_samples=6, image_size=64, num_classes=13, shapes_per_image=(2, 5), seed=1, targets="panoptic")
    again = Shapes(num_samples=6, image_size=64, num_classes=13, shapes_per_image=(2, 5), seed=1)
    other = Shapes(num_samples=6, image_size=64, num_classes=13, shapes_per_image=(2, 5), seed=2)
    for i in (4, 0, 3):
        image, semantic, instance, id_to_class = data.draw(i)
        assert torch.equal(image, again.draw(i)[0])
        for segment, cls in id_to_class.items():  # instances and semantics agree
            assert (semantic[instance == segment] == cls).all()
        sample = data[i]
        assert sample["targets"]["labels"].tolist() == [id_to_class[k] for k in sorted(id_to_class)]
        assert (sample["targets"]["masks"].sum(0) == 1).all()  # panoptic targets cover every pixel once
    assert not torch.equal(data.draw(0)[0], other.draw(0)[0])
    assert data.class_names[0] == "background" and len(set(data.class_names)) == 13
    assert data.thing_ids == list(range(1, 13)) and data.stuff_ids == [0]


def test_shapes_scales_to_many_classes_and_sizes():
    data = Shapes(num_samples=3, image_size=256, num_classes=151, shapes_per_image=(8, 8))
    sample = data[2]
    assert sample["image"].shape == (3, 256, 256) and sample["semantic"].max() < 151
    assert len(set(data.class_names)) == 151


def test_shapes_bad_arguments():
    with pytest.raises(ValueError, match=r"shapes\.py: num_classes=1"):
        Shapes(num_classes=1)
    with pytest.raises(ValueError, match=r"shapes_per_image=\(3, 2\)"):
        Shapes(shapes_per_image=(3, 2))
