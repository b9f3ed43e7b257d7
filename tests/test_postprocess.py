"""Post-processing: Hugging Face parity under its conventions, the original rules, and invariances."""

import pytest
import torch
import torch.nn.functional as F

from maskformer.postprocess import instance_segmentation, panoptic_segmentation, semantic_segmentation

hf_maskformer = pytest.importorskip("transformers.models.maskformer.image_processing_maskformer")


class HFOutputs:
    """The two fields of `MaskFormerForInstanceSegmentationOutput` that post-processing reads."""

    def __init__(self, outputs):
        self.class_queries_logits = outputs["pred_logits"].clone()
        self.masks_queries_logits = outputs["pred_masks"].clone()


def random_outputs(B=2, Q=12, K=5, h=16, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "pred_logits": torch.randn(B, Q, K + 1, generator=g) * 3,
        "pred_masks": torch.randn(B, Q, h, w, generator=g) * 4,
    }


def hf_processor():
    return hf_maskformer.MaskFormerImageProcessor()


# ---------------------------------------------------------------------------- semantic



def _transformers_version() -> tuple[int, ...]:
    import transformers

    return tuple(int(part) for part in transformers.__version__.split(".")[:2] if part.isdigit())


@pytest.mark.skipif(_transformers_version() < (5, 13), reason="return_segmentation_scores needs transformers 5.13")
def test_semantic_equals_hf_without_padding_or_resizing():
    outputs = random_outputs()
    h, w = outputs["pred_masks"].shape[-2:]
    ours = semantic_segmentation(outputs, padded_size=(h, w), return_scores=True)
    theirs = hf_processor().post_process_semantic_segmentation(HFOutputs(outputs), return_segmentation_scores=True)
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o["scores"], t.segmentation_scores)
        assert torch.equal(o["segmentation"], t.segmentation)


def test_semantic_crops_padding_before_resizing():
    # Image 1 fills only the top-left 40x48 of a 64x80 padded batch; its result must not depend
    # on what the model predicts on the padding.
    outputs = random_outputs(B=2, h=16, w=20)
    sizes, originals = [(64, 80), (40, 48)], [(64, 80), (80, 96)]
    first = semantic_segmentation(outputs, sizes, originals, return_scores=True)
    scribbled = {k: v.clone() for k, v in outputs.items()}
    scribbled["pred_masks"][1, :, 12:, :] = 50.0  # rows 48.. of the padded input are padding
    scribbled["pred_masks"][1, :, :, 14:] = -50.0
    second = semantic_segmentation(scribbled, sizes, originals, return_scores=True)
    assert second[1]["segmentation"].shape == (80, 96)
    # bilinear upsampling mixes in at most one stride-4 cell across the border, so compare away from it
    torch.testing.assert_close(first[1]["scores"][:, :88, :88], second[1]["scores"][:, :88, :88])


def test_semantic_matches_the_einsum_written_out():
    outputs = random_outputs(B=1, Q=4, K=3, h=8, w=8)
    (ours,) = semantic_segmentation(outputs, [(28, 30)], [(50, 40)], return_scores=True)
    masks = F.interpolate(outputs["pred_masks"], size=(32, 32), mode="bilinear", align_corners=False)[0]
    probs = outputs["pred_logits"][0].softmax(-1)
    scores = sum(probs[q, :3, None, None] * masks[q].sigmoid() for q in range(4))[:, :28, :30]
    scores = F.interpolate(scores[None], size=(50, 40), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(ours["scores"], scores)
    assert torch.equal(ours["segmentation"], scores.argmax(0))


def test_batched_equals_one_by_one():
    outputs = random_outputs(B=3)
    sizes, originals = [(64, 80), (40, 64), (60, 33)], [(64, 80), (30, 50), (120, 66)]
    batched = semantic_segmentation(outputs, sizes, originals)
    batched_panoptic = panoptic_segmentation(outputs, sizes, originals, object_threshold=0.3)
    for b in range(3):
        single = {k: v[b : b + 1] for k, v in outputs.items()}
        assert torch.equal(batched[b], semantic_segmentation(single, [sizes[b]], [originals[b]])[0])
        one = panoptic_segmentation(single, [sizes[b]], [originals[b]], object_threshold=0.3)[0]
        assert torch.equal(batched_panoptic[b]["segmentation"], one["segmentation"])


# ---------------------------------------------------------------------------- instance


def _sorted_hf_instances(result):
    """HF paints instances into one map and uses an unsorted top-k; sort its binary maps by score."""
    scores = torch.tensor([s["score"] for s in result["segments_info"]])
    labels = torch.tensor([s["label_id"] for s in result["segments_info"]])
    order = scores.argsort(descending=True)
    return result["segmentation"][order].bool(), labels[order], scores[order]


def test_instance_equals_hf_without_padding_or_resizing():
    outputs = random_outputs(B=2, Q=10, K=4, seed=1)
    outputs["pred_logits"] *= 2  # confident classes, so that several instances pass 0.3
    h, w = outputs["pred_masks"].shape[-2:]
    ours = instance_segmentation(outputs, padded_size=(h, w), score_threshold=0.3)
    theirs = hf_processor().post_process_instance_segmentation(HFOutputs(outputs), threshold=0.3, return_binary_maps=True)
    for o, t in zip(ours, theirs):
        masks, labels, scores = _sorted_hf_instances(t)
        assert len(o["labels"]) == len(labels) > 0
        assert torch.equal(o["masks"], masks)
        assert torch.equal(o["labels"], labels)
        torch.testing.assert_close(o["scores"], scores, atol=1e-6, rtol=0)  # HF rounds to 6 decimals


def test_instance_top_k_and_scores():
    outputs = random_outputs(B=1, Q=6, K=3)
    (result,) = instance_segmentation(outputs, [(50, 60)], [(25, 30)], top_k=18)
    assert result["masks"].shape == (18, 25, 30) and result["masks"].dtype == torch.bool
    assert (result["scores"][:-1] >= result["scores"][1:]).all()  # sorted
    # every (query, class) pair appears once: the labels of the 18 = 6 x 3 pairs cover each class 6 times
    assert torch.bincount(result["labels"], minlength=3).tolist() == [6, 6, 6]
    assert (result["scores"] <= 1).all() and (result["scores"] >= 0).all()


def test_instance_rle_decodes_to_the_masks():
    mask_utils = pytest.importorskip("pycocotools.mask")
    outputs = random_outputs(B=1, Q=5, K=2)
    (result,) = instance_segmentation(outputs, top_k=4, return_rle=True)
    decoded = torch.from_numpy(mask_utils.decode(result["rle"])).permute(2, 0, 1).bool()  # [N, H, W]
    assert torch.equal(decoded, result["masks"])
    assert isinstance(result["rle"][0]["counts"], str)


# ---------------------------------------------------------------------------- panoptic


def panoptic_by_pixel_loop(logits, masks, object_threshold, overlap_threshold, stuff):
    """The original rule written pixel by pixel, independent of the vectorised implementation.

    logits [Q, K+1], masks [Q, H, W] (already at the output size). Returns (segment map, info list).
    """
    Q, K1 = logits.shape
    probs = logits.softmax(-1)
    kept = [q for q in range(Q) if probs[q].argmax() != K1 - 1 and probs[q].max() > object_threshold]
    H, W = masks.shape[1:]
    owner = {}
    for y in range(H):
        for x in range(W):
            values = [probs[q].max().item() * masks[q, y, x].sigmoid().item() for q in kept]
            if values:
                owner[(y, x)] = kept[max(range(len(values)), key=lambda i: (values[i], -i))]
    segmentation = torch.zeros(H, W, dtype=torch.long)
    info, stuff_ids = [], {}
    for q in kept:
        pixels = [p for p, o in owner.items() if o == q]
        own = sum(1 for y in range(H) for x in range(W) if masks[q, y, x].sigmoid() >= 0.5)
        label = int(probs[q].argmax())
        if not pixels or own == 0 or len(pixels) / own < overlap_threshold:
            continue
        if label in stuff and label in stuff_ids:
            segment_id = stuff_ids[label]
        else:
            segment_id = len(info) + 1
            info.append((segment_id, label))
            if label in stuff:
                stuff_ids[label] = segment_id
        for y, x in pixels:
            segmentation[y, x] = segment_id
    return segmentation, info


@pytest.mark.parametrize("seed, stuff", [(0, {0}), (0, {1}), (2, set()), (4, {0, 1, 2})])
def test_panoptic_equals_pixel_loop(seed, stuff):
    outputs = random_outputs(B=1, Q=8, K=3, h=9, w=11, seed=seed)
    outputs["pred_logits"] *= 2
    # smooth masks, so that queries own blobs rather than salt-and-pepper pixels
    outputs["pred_masks"] = F.interpolate(outputs["pred_masks"][:, :, ::3, ::3], size=(9, 11), mode="bilinear")
    (ours,) = panoptic_segmentation(
        outputs, padded_size=(9, 11), object_threshold=0.5, overlap_threshold=0.3, label_ids_to_fuse=stuff
    )
    segmentation, info = panoptic_by_pixel_loop(outputs["pred_logits"][0], outputs["pred_masks"][0], 0.5, 0.3, stuff)
    assert len(info) > 1
    assert torch.equal(ours["segmentation"], segmentation)
    assert [(s["id"], s["label_id"]) for s in ours["segments_info"]] == info
    for s in ours["segments_info"]:
        assert s["area"] == int((ours["segmentation"] == s["id"]).sum())
        assert s["is_thing"] == (s["label_id"] not in stuff)


def two_sure_queries(margin):
    """Two queries of classes 0 and 1, each sure of its half of an 8x8 image; the class logit is
    `margin` above the two others, so the class probability is e^m / (e^m + 2)."""
    logits = torch.zeros(1, 3, 3)  # Q=3, K=2 (+ no object)
    logits[0, 0, 0] = logits[0, 1, 1] = margin
    logits[0, 2, 2] = 10.0  # query 2 predicts no object
    masks = torch.full((1, 3, 8, 8), -6.0)
    masks[0, 0, :, :4] = 6.0
    masks[0, 1, :, 4:] = 6.0
    return {"pred_logits": logits, "pred_masks": masks}


def test_panoptic_keeps_segments_that_hf_drops():
    hf = hf_processor()
    # class probability 0.64: both implementations find the two halves
    sure = two_sure_queries(margin=1.25)
    assert 0.6 < sure["pred_logits"][0, 0].softmax(-1).max() < 0.7
    (ours,) = panoptic_segmentation(sure, padded_size=(8, 8), object_threshold=0.5)
    (theirs,) = hf.post_process_panoptic_segmentation(HFOutputs(sure), threshold=0.5, label_ids_to_fuse=set())
    assert [s["label_id"] for s in ours["segments_info"]] == [s["label_id"] for s in theirs["segments_info"]] == [0, 1]
    assert torch.equal(ours["segmentation"], theirs["segmentation"].long())

    # class probability 0.45, above an object threshold of 0.4: HF multiplies the masks by 0.45
    # before counting pixels >= 0.5, finds no pixel, and returns no segment at all
    unsure = two_sure_queries(margin=0.5)
    assert 0.4 < unsure["pred_logits"][0, 0].softmax(-1).max() < 0.5
    (theirs,) = hf.post_process_panoptic_segmentation(HFOutputs(unsure), threshold=0.4, label_ids_to_fuse=set())
    assert theirs["segments_info"] == []
    (ours,) = panoptic_segmentation(unsure, padded_size=(8, 8), object_threshold=0.4)
    assert [s["label_id"] for s in ours["segments_info"]] == [0, 1]
    assert torch.equal(ours["segmentation"][:, :4], torch.full((8, 4), 1))
    assert torch.equal(ours["segmentation"][:, 4:], torch.full((8, 4), 2))


def test_panoptic_merges_stuff_and_drops_covered_queries():
    logits = torch.full((1, 3, 3), -10.0)
    logits[0, :, 0] = 10.0  # all three queries say class 0
    masks = torch.full((1, 3, 8, 8), -6.0)
    masks[0, 0, :4] = 6.0  # top half
    masks[0, 1, 4:] = 6.0  # bottom half
    masks[0, 2, :4] = 5.0  # a weaker copy of query 0: wins no pixel, so it is dropped
    outputs = {"pred_logits": logits, "pred_masks": masks}
    (as_stuff,) = panoptic_segmentation(outputs, padded_size=(8, 8), label_ids_to_fuse={0})
    assert as_stuff["segments_info"] == [{"id": 1, "label_id": 0, "is_thing": False, "score": pytest.approx(1.0), "area": 64}]
    assert (as_stuff["segmentation"] == 1).all()
    (as_things,) = panoptic_segmentation(outputs, padded_size=(8, 8))
    assert [s["area"] for s in as_things["segments_info"]] == [32, 32]


def test_panoptic_with_nothing_kept_is_all_void():
    outputs = random_outputs(B=1)
    outputs["pred_logits"][..., -1] = 100.0
    (result,) = panoptic_segmentation(outputs, [(50, 60)], [(20, 30)])
    assert result["segments_info"] == [] and torch.equal(result["segmentation"], torch.zeros(20, 30, dtype=torch.long))


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_problem():
    outputs = random_outputs(B=2)
    with pytest.raises(ValueError, match=r"postprocess\.py.*image_sizes has 1 entries but the batch has 2"):
        semantic_segmentation(outputs, [(64, 80)])
    with pytest.raises(ValueError, match=r"image size \(100, 80\) is larger than the padded input \(64, 80\)"):
        panoptic_segmentation(outputs, [(64, 80), (100, 80)])
    with pytest.raises(ValueError, match=r"pred_logits.*pred_masks.*got \['logits'\]"):
        instance_segmentation({"logits": outputs["pred_logits"]})
    with pytest.raises(ValueError, match=r"top_k must be in 1\.\.Q\*K = 60, got 61"):
        instance_segmentation(outputs, top_k=61)
