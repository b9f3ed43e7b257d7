"""From mask-classification outputs to semantic, instance and panoptic results (paper §3.4; the original's
``mask_former_model.py`` and Mask2Former's instance inference).

The model predicts Q (class, mask) pairs per image: `pred_logits` `[B, Q, K+1]` (the last class
is "no object") and `pred_masks` `[B, Q, h, w]`, mask logits at stride 4 of the *padded* batch.
Each function here turns them into one result per image, following the original detectron2
code of MaskFormer / Mask2Former:

1. mask logits are upsampled (bilinear) to the padded input size,
2. the padding is cropped to each image's real size (``image_sizes``),
3. the result is resized (bilinear) to the size of the image before any resizing
   (``original_sizes``), so that results line up with the original labels.

Semantic inference resizes the per-class score map (steps 2-3 after the einsum), as the original
does; panoptic and instance inference resize the mask logits before the algorithm, as the
original does. ``image_sizes=None`` means "no padding"; ``original_sizes=None`` means "no
resizing"; with both left out and ``padded_size`` equal to the mask size, nothing is interpolated
(this is the Hugging Face convention when ``target_sizes`` is not given).

Where Hugging Face's ``MaskFormerImageProcessor`` differs, the difference is stated next to the
code that does it differently (and in README, "Differences from transformers").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["semantic_segmentation", "instance_segmentation", "panoptic_segmentation"]

Size = tuple[int, int]


# ----------------------------------------------------------------------------------------------
# Input handling shared by the three functions
# ----------------------------------------------------------------------------------------------


def _unpack(outputs: Any) -> tuple[Tensor, Tensor]:
    """Return (`pred_logits` [B,Q,K+1], `pred_masks` [B,Q,h,w]) from our outputs or Hugging Face's."""
    if isinstance(outputs, Mapping) and "pred_logits" in outputs and "pred_masks" in outputs:
        logits, masks = outputs["pred_logits"], outputs["pred_masks"]
    elif hasattr(outputs, "class_queries_logits") and hasattr(outputs, "masks_queries_logits"):
        logits, masks = outputs.class_queries_logits, outputs.masks_queries_logits
    else:
        keys = list(outputs.keys()) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ValueError(
            f"maskformer/postprocess.py: expected model outputs with 'pred_logits' [B,Q,K+1] and "
            f"'pred_masks' [B,Q,h,w], got {keys}; pass the dict returned by MaskFormer.forward"
        )
    if logits.dim() != 3 or masks.dim() != 4 or logits.shape[:2] != masks.shape[:2]:
        raise ValueError(
            f"maskformer/postprocess.py: pred_logits must be [B,Q,K+1] and pred_masks [B,Q,h,w] with the "
            f"same B and Q, got {tuple(logits.shape)} and {tuple(masks.shape)}"
        )
    if logits.shape[-1] < 2:
        raise ValueError(
            f"maskformer/postprocess.py: pred_logits has {logits.shape[-1]} classes; it needs at least one "
            f"real class plus the final 'no object' class"
        )
    return logits, masks


def _sizes(name: str, sizes: Sequence[Size] | None, default: Sequence[Size], batch: int) -> list[Size]:
    """Validate a per-image list of (height, width); None means `default`."""
    if sizes is None:
        return [tuple(s) for s in default]
    if isinstance(sizes, Tensor):
        sizes = sizes.tolist()
    sizes = [tuple(int(v) for v in s) for s in sizes]
    if len(sizes) != batch:
        raise ValueError(
            f"maskformer/postprocess.py: {name} has {len(sizes)} entries but the batch has {batch} images; "
            f"pass one (height, width) per image"
        )
    for s in sizes:
        if len(s) != 2 or min(s) <= 0:
            raise ValueError(f"maskformer/postprocess.py: {name} must hold positive (height, width) pairs, got {s}")
    return sizes


def _resolve_sizes(
    masks: Tensor,
    image_sizes: Sequence[Size] | None,
    original_sizes: Sequence[Size] | None,
    padded_size: Size | None,
) -> tuple[Size, list[Size], list[Size]]:
    B, _, h, w = masks.shape
    padded = (4 * h, 4 * w) if padded_size is None else (int(padded_size[0]), int(padded_size[1]))
    image_sizes = _sizes("image_sizes", image_sizes, [padded] * B, B)
    for s in image_sizes:
        if s[0] > padded[0] or s[1] > padded[1]:
            raise ValueError(
                f"maskformer/postprocess.py: image size {s} is larger than the padded input {padded}; "
                f"image_sizes are the real sizes inside the padded batch (batch['image_sizes'])"
            )
    original_sizes = _sizes("original_sizes", original_sizes, image_sizes, B)
    return padded, image_sizes, original_sizes


def _resize(x: Tensor, size: Size) -> Tensor:
    """Bilinear resize of a `[C, h, w]` map to `[C, *size]`; identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


def _masks_to_original(mask_logits: Tensor, padded: Size, image_size: Size, original_size: Size) -> Tensor:
    """Mask logits `[Q, h, w]` at stride 4 -> `[Q, H0, W0]` at the original image size.

    Upsample to the padded input, crop the padding, resize to the original size (the original's
    `sem_seg_postprocess` applied to the mask logits).
    """
    x = _resize(mask_logits, padded)  # [Q, Hp, Wp]
    x = x[:, : image_size[0], : image_size[1]]  # [Q, H, W], padding cropped
    return _resize(x, original_size)  # [Q, H0, W0]


# ----------------------------------------------------------------------------------------------
# Semantic
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def semantic_segmentation(
    outputs: Mapping[str, Tensor],
    image_sizes: Sequence[Size] | None = None,
    original_sizes: Sequence[Size] | None = None,
    *,
    padded_size: Size | None = None,
    return_scores: bool = False,
) -> list[Tensor] | list[dict[str, Tensor]]:
    """Per-pixel class maps: the marginal over queries, ``sum_q p_q(c) * m_q[h, w]``.

    Args:
        outputs: `pred_logits` `[B, Q, K+1]` and `pred_masks` `[B, Q, h, w]` (stride-4 logits of
            the padded batch). Hugging Face outputs (`class_queries_logits`, ...) also work.
        image_sizes: real (unpadded) `(H, W)` of each image inside the padded batch
            (`batch["image_sizes"]`); None means the whole padded input is image.
        original_sizes: `(H0, W0)` to resize each result to (`batch["original_sizes"]`);
            None keeps `image_sizes`.
        padded_size: `(Hp, Wp)` of the padded input; default `(4h, 4w)`.
        return_scores: also return the `[K, H0, W0]` per-class scores.

    Returns:
        One int64 `[H0, W0]` map of class ids in `0..K-1` per image, or with `return_scores`
        one dict `{"segmentation": [H0, W0], "scores": [K, H0, W0]}` per image.

    The einsum happens at the padded input resolution, and the padding is cropped before
    resizing to the original size (original code). Hugging Face does the einsum at stride 4 and
    resizes the whole padded map, so the padding stretches into the result.
    """
    logits, masks = _unpack(outputs)
    padded, image_sizes, original_sizes = _resolve_sizes(masks, image_sizes, original_sizes, padded_size)
    class_probs = logits.softmax(-1)[..., :-1]  # [B, Q, K], "no object" dropped
    results = []
    for b in range(logits.shape[0]):
        mask_probs = _resize(masks[b], padded).sigmoid()  # [Q, Hp, Wp]
        scores = torch.einsum("qk,qhw->khw", class_probs[b], mask_probs)  # [K, Hp, Wp]
        scores = scores[:, : image_sizes[b][0], : image_sizes[b][1]]  # [K, H, W]
        scores = _resize(scores, original_sizes[b])  # [K, H0, W0]
        segmentation = scores.argmax(0)  # [H0, W0]
        results.append({"segmentation": segmentation, "scores": scores} if return_scores else segmentation)
    return results


# ----------------------------------------------------------------------------------------------
# Instance
# ----------------------------------------------------------------------------------------------


def _coco_rle(masks: Tensor) -> list[dict]:
    """COCO run-length encodings of bool masks `[N, H, W]`, via pycocotools."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as error:  # pragma: no cover - pycocotools is a dev dependency
        raise ImportError(
            "maskformer/postprocess.py: return_rle=True needs pycocotools; install it with "
            "`pip install pycocotools` (it is in the [dev] extra)"
        ) from error
    import numpy as np

    array = np.asfortranarray(masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))  # [H, W, N]
    rles = mask_utils.encode(array) if masks.shape[0] else []
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")  # JSON-serialisable, as COCO results files expect
    return list(rles)


@torch.no_grad()
def instance_segmentation(
    outputs: Mapping[str, Tensor],
    image_sizes: Sequence[Size] | None = None,
    original_sizes: Sequence[Size] | None = None,
    *,
    top_k: int | None = None,
    score_threshold: float = 0.0,
    padded_size: Size | None = None,
    return_rle: bool = False,
) -> list[dict[str, Any]]:
    """Instances: the top-k (query, class) pairs, each with a binary mask and a score.

    Args:
        outputs, image_sizes, original_sizes, padded_size: as in :func:`semantic_segmentation`.
        top_k: number of (query, class) pairs kept from the flattened `Q x K` class scores;
            default Q (the original's `TEST.DETECTIONS_PER_IMAGE` is 100 = Q).
        score_threshold: drop instances whose final score is below it (0 keeps all top-k, as the
            original does before COCO evaluation).
        return_rle: also return COCO RLE dicts (needs pycocotools), ready for COCO json results.

    Returns:
        Per image a dict, instances sorted by decreasing score:
        `masks` bool `[N, H0, W0]` (mask logit > 0), `labels` int64 `[N]` in `0..K-1`,
        `scores` float `[N]` = class probability x mean mask probability inside the mask,
        and `rle` (list of N dicts) when `return_rle`.

    One query may appear with several classes. Masks may overlap; nothing is painted into a
    single map (Hugging Face does, so later instances overwrite earlier ones there).
    """
    logits, masks = _unpack(outputs)
    padded, image_sizes, original_sizes = _resolve_sizes(masks, image_sizes, original_sizes, padded_size)
    B, Q, K1 = logits.shape
    K = K1 - 1
    top_k = Q if top_k is None else int(top_k)
    if not 1 <= top_k <= Q * K:
        raise ValueError(f"maskformer/postprocess.py: top_k must be in 1..Q*K = {Q * K}, got {top_k}")
    results = []
    for b in range(B):
        class_probs = logits[b].softmax(-1)[:, :-1]  # [Q, K]
        class_scores, flat = class_probs.flatten().topk(top_k)  # [k], indices into Q*K
        labels = flat % K  # [k]
        queries = flat // K  # [k]
        mask_logits = _masks_to_original(masks[b, queries], padded, image_sizes[b], original_sizes[b])  # [k, H0, W0]
        binary = mask_logits > 0  # [k, H0, W0]
        inside = binary.flatten(1).float()  # [k, H0*W0]
        mask_scores = (mask_logits.sigmoid().flatten(1) * inside).sum(1) / (inside.sum(1) + 1e-6)  # [k]
        scores = class_scores * mask_scores  # [k]
        order = scores.argsort(descending=True, stable=True)
        order = order[scores[order] >= score_threshold]
        result = {"masks": binary[order], "labels": labels[order], "scores": scores[order]}
        if return_rle:
            result["rle"] = _coco_rle(result["masks"])
        results.append(result)
    return results


# ----------------------------------------------------------------------------------------------
# Panoptic
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def panoptic_segmentation(
    outputs: Mapping[str, Tensor],
    image_sizes: Sequence[Size] | None = None,
    original_sizes: Sequence[Size] | None = None,
    *,
    object_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    label_ids_to_fuse: Collection[int] | None = None,
    padded_size: Size | None = None,
) -> list[dict[str, Any]]:
    """Non-overlapping segments: every pixel goes to one kept query, or to void.

    Args:
        outputs, image_sizes, original_sizes, padded_size: as in :func:`semantic_segmentation`.
        object_threshold: keep queries whose best class is not "no object" and whose class
            probability is above this (0.8 COCO, 0.7 ADE20K panoptic).
        overlap_threshold: drop a segment whose final area is less than this fraction of its
            query's own mask area (`sigmoid(mask) >= 0.5`): a query mostly covered by others.
        label_ids_to_fuse: "stuff" classes; all segments of one such class are merged into one.
            Other classes are "things", one segment per query.

    Returns:
        Per image a dict: `segmentation` int64 `[H0, W0]` with segment ids `1..S` and 0 for
        void (no segment), and `segments_info`, a list of dicts `{"id", "label_id", "is_thing",
        "score", "area"}` (a merged stuff segment keeps its first query's score and the total area).

    The area check compares against the *unweighted* mask. Hugging Face multiplies the masks by the
    class scores first, so a query with score 0.7 never reaches 0.5 on pixels below 0.71 and
    whole images come back with no segment.
    """
    logits, masks = _unpack(outputs)
    padded, image_sizes, original_sizes = _resolve_sizes(masks, image_sizes, original_sizes, padded_size)
    K = logits.shape[-1] - 1
    stuff = set(int(c) for c in (label_ids_to_fuse or ()))
    results = []
    for b in range(logits.shape[0]):
        scores, labels = logits[b].softmax(-1).max(-1)  # [Q], [Q]
        keep = (labels != K) & (scores > object_threshold)  # [Q]
        H0, W0 = original_sizes[b]
        segmentation = torch.zeros(H0, W0, dtype=torch.long, device=logits.device)
        segments: list[dict[str, Any]] = []
        if keep.any():
            mask_probs = _masks_to_original(masks[b, keep], padded, image_sizes[b], original_sizes[b]).sigmoid()
            kept_scores, kept_labels = scores[keep], labels[keep]  # [Qk]
            owner = (kept_scores[:, None, None] * mask_probs).argmax(0)  # [H0, W0], index of the winning query
            stuff_segment: dict[int, dict[str, Any]] = {}
            for k in range(kept_labels.shape[0]):
                label = int(kept_labels[k])
                region = owner == k  # [H0, W0]
                area = int(region.sum())
                own_area = int((mask_probs[k] >= 0.5).sum())
                if area == 0 or own_area == 0 or area / own_area < overlap_threshold:
                    continue
                if label in stuff and label in stuff_segment:
                    segmentation[region] = stuff_segment[label]["id"]
                    stuff_segment[label]["area"] += area
                    continue
                info = {
                    "id": len(segments) + 1,
                    "label_id": label,
                    "is_thing": label not in stuff,
                    "score": float(kept_scores[k]),
                    "area": area,
                }
                segmentation[region] = info["id"]
                segments.append(info)
                if label in stuff:
                    stuff_segment[label] = info
        results.append({"segmentation": segmentation, "segments_info": segments})
    return results
