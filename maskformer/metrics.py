"""Evaluation metrics: streaming semantic metrics and panoptic quality.

- :class:`SemanticMetrics` accumulates a `K x K` confusion matrix over any number of images and
  reports mIoU, per-class IoU, pixel accuracy and mean class accuracy, as detectron2's
  `SemSegEvaluator` does (the numbers in the MaskFormer paper).
- :class:`PanopticQuality` accumulates per-class IoU sums and TP/FP/FN counts and reports
  PQ, SQ, RQ over all classes, things and stuff, as the COCO `panopticapi` does (no crowd regions).
- :func:`coco_panoptic_pq` evaluates COCO-format panoptic files (PNGs + JSON) by the official rules,
  crowd regions included, in the layout of `panopticapi`'s `pq_compute` (:mod:`maskformer.panoptic_eval`).

Both are plain objects with `update`, `compute` and `reset`; for several processes, all-reduce
`confusion_matrix` (or `iou_sum`, `tp`, `fp`, `fn`) with a sum before `compute`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import Tensor

from .panoptic_eval import coco_panoptic_pq

__all__ = ["SemanticMetrics", "PanopticQuality", "panoptic_to_category_instance", "coco_panoptic_pq"]


class SemanticMetrics:
    """mIoU, per-class IoU and pixel accuracy from a streaming confusion matrix.

    `confusion_matrix[t, p]` counts pixels of true class t predicted as p; pixels whose target is
    `ignore_index` are left out. A class's IoU is `tp / (tp + fp + fn)`; it is NaN when the class
    appears neither in the targets nor in the predictions, and the mean is over the other classes
    (a class only predicted counts with IoU 0). Pixel accuracy is `sum tp / labelled pixels`.

    Args:
        num_classes: K, the number of real classes (ids `0..K-1`).
        ignore_index: the target value that marks unlabelled pixels (255 for ADE20K).
        class_names: optional names, used as keys of `compute()["per_class"]`.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ValueError(f"maskformer/metrics.py: num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"maskformer/metrics.py: {len(class_names)} class_names for num_classes={num_classes}; "
                f"pass one name per class"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        self.confusion_matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add predictions and targets of the same shape (`[H, W]` or `[B, H, W]`), class ids."""
        if preds.shape != target.shape:
            raise ValueError(
                f"maskformer/metrics.py: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ; "
                f"resize predictions to the label size first (postprocess.semantic_segmentation(..., original_sizes))"
            )
        preds, target = preds.flatten().long().cpu(), target.flatten().long().cpu()
        labelled = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        preds, target = preds[labelled], target[labelled]
        K = self.num_classes
        for name, values in (("target", target), ("preds", preds)):
            if values.numel() and (values.min() < 0 or values.max() >= K):
                bad = values[(values < 0) | (values >= K)][0].item()
                raise ValueError(
                    f"maskformer/metrics.py: {name} holds class id {bad}, outside 0..{K - 1} "
                    f"(ignore_index={self.ignore_index}); check num_classes and the label mapping"
                )
        self.confusion_matrix += torch.bincount(target * K + preds, minlength=K * K).view(K, K)

    def compute(self) -> dict[str, Any]:
        """Returns `mIoU`, `pixel_accuracy`, `mean_accuracy` (floats), `IoU` and `accuracy` (`[K]`, NaN
        where undefined) and `per_class` (name -> IoU) when class names were given."""
        cm = self.confusion_matrix.double()
        tp = cm.diagonal()  # [K]
        gt = cm.sum(1)  # [K], pixels of each true class
        pred = cm.sum(0)  # [K], pixels predicted as each class
        union = gt + pred - tp
        nan = torch.full_like(tp, float("nan"))
        iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
        accuracy = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
        result = {
            "mIoU": float(iou.nanmean()) if (union > 0).any() else float("nan"),
            "pixel_accuracy": float(tp.sum() / gt.sum()) if gt.sum() > 0 else float("nan"),
            "mean_accuracy": float(accuracy.nanmean()) if (gt > 0).any() else float("nan"),
            "IoU": iou,
            "accuracy": accuracy,
        }
        if self.class_names is not None:
            result["per_class"] = {name: float(v) for name, v in zip(self.class_names, iou)}
        return result


def panoptic_to_category_instance(
    segmentation: Tensor, segments_info: Sequence[dict], void_label: int = 255
) -> Tensor:
    """A panoptic result (segment-id map + segments_info) -> `[H, W, 2]` (category, instance) pairs.

    `segments_info` entries need `id` and `label_id` (the format of
    :func:`maskformer.postprocess.panoptic_segmentation`). Pixels of id 0 or of an id not in
    `segments_info` become `(void_label, 0)`. The instance channel is the segment id.
    """
    category = torch.full_like(segmentation, void_label, dtype=torch.long)
    for info in segments_info:
        category[segmentation == info["id"]] = int(info["label_id"])
    instance = torch.where(category == void_label, 0, segmentation.long())
    return torch.stack([category, instance], dim=-1)  # [H, W, 2]


class PanopticQuality:
    """Panoptic quality PQ = SQ x RQ, per class and averaged over all / things / stuff classes.

    Segments are identified by (category, instance) pairs; for stuff classes the instance is
    ignored (one segment per stuff class and image). A predicted and a true segment of the same
    class match when their IoU > 0.5 (which makes the matching unique); the IoU leaves out the
    predicted segment's pixels that are void in the target. Per class,
    `PQ = sum IoU(TP) / (TP + FP/2 + FN/2)`, `SQ = sum IoU(TP) / TP`, `RQ = TP / (TP + FP/2 + FN/2)`.
    An unmatched prediction lying more than half on target void is not a false positive.
    Classes with no TP, FP or FN are left out of the averages. These are the rules of the COCO
    `panopticapi` (no crowd regions here).

    Args:
        things: category ids of thing classes.
        stuffs: category ids of stuff classes.
        void_label: category used for void; any category not in things or stuffs is void too.
    """

    def __init__(self, things: Collection[int], stuffs: Collection[int], void_label: int = 255):
        self.things, self.stuffs = {int(c) for c in things}, {int(c) for c in stuffs}
        if self.things & self.stuffs:
            raise ValueError(
                f"maskformer/metrics.py: categories {sorted(self.things & self.stuffs)} are both things and stuff"
            )
        if not self.things | self.stuffs:
            raise ValueError("maskformer/metrics.py: PanopticQuality needs at least one thing or stuff category")
        if void_label in self.things | self.stuffs:
            raise ValueError(f"maskformer/metrics.py: void_label {void_label} is also a thing or stuff category")
        self.void_label = void_label
        self.categories = sorted(self.things | self.stuffs)
        self._index = {c: i for i, c in enumerate(self.categories)}
        self.reset()

    def reset(self) -> None:
        C = len(self.categories)
        self.iou_sum = torch.zeros(C, dtype=torch.float64)
        self.tp = torch.zeros(C, dtype=torch.long)
        self.fp = torch.zeros(C, dtype=torch.long)
        self.fn = torch.zeros(C, dtype=torch.long)

    def _segment_ids(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`[N, 2]` (category, instance) -> (int64 segment key [N], category [N]); void -> key -1."""
        category, instance = x[:, 0].long(), x[:, 1].long()
        known = torch.isin(category, torch.tensor(self.categories))
        is_stuff = torch.isin(category, torch.tensor(sorted(self.stuffs), dtype=torch.long))
        instance = torch.where(is_stuff, 0, instance)  # one segment per stuff class
        key = category * (1 << 32) + instance
        return torch.where(known, key, -1), torch.where(known, category, -1)

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add `[H, W, 2]` or `[B, H, W, 2]` (category, instance) predictions and targets."""
        if preds.shape != target.shape or preds.shape[-1] != 2 or preds.dim() < 3:
            raise ValueError(
                f"maskformer/metrics.py: preds and target must both be [H, W, 2] or [B, H, W, 2] "
                f"(category, instance), got {tuple(preds.shape)} and {tuple(target.shape)}; "
                f"convert panoptic results with panoptic_to_category_instance"
            )
        if preds.dim() == 3:
            preds, target = preds[None], target[None]
        for p, t in zip(preds.cpu(), target.cpu()):
            self._update_one(p.reshape(-1, 2), t.reshape(-1, 2))

    def _update_one(self, preds: Tensor, target: Tensor) -> None:
        pred_key, pred_cat = self._segment_ids(preds)  # [N]
        true_key, true_cat = self._segment_ids(target)  # [N]
        pred_keys, pred_area = pred_key.unique(return_counts=True)
        true_keys, true_area = true_key.unique(return_counts=True)
        pred_area = dict(zip(pred_keys.tolist(), pred_area.tolist()))
        true_area = dict(zip(true_keys.tolist(), true_area.tolist()))
        pairs, overlap = torch.stack([pred_key, true_key], 1).unique(dim=0, return_counts=True)
        overlap = {(int(p), int(t)): int(n) for (p, t), n in zip(pairs.tolist(), overlap.tolist())}
        category = lambda key: key >> 32  # noqa: E731 - inverse of the key encoding above

        matched_pred, matched_true = set(), set()
        for (p, t), inter in overlap.items():
            if p == -1 or t == -1 or category(p) != category(t):
                continue
            union = pred_area[p] + true_area[t] - inter - overlap.get((p, -1), 0)
            iou = inter / union
            if iou > 0.5:
                c = self._index[category(t)]
                self.iou_sum[c] += iou
                self.tp[c] += 1
                matched_pred.add(p)
                matched_true.add(t)
        for t in true_area:
            if t != -1 and t not in matched_true:
                self.fn[self._index[category(t)]] += 1
        for p, area in pred_area.items():
            if p != -1 and p not in matched_pred and overlap.get((p, -1), 0) / area <= 0.5:
                self.fp[self._index[category(p)]] += 1

    def compute(self) -> dict[str, Any]:
        """Returns `PQ`, `SQ`, `RQ` (all classes), `PQ_th`, `SQ_th`, `RQ_th` (things), `PQ_st`, `SQ_st`,
        `RQ_st` (stuff) as floats, and `per_class`: category -> {PQ, SQ, RQ, TP, FP, FN}."""
        tp, fp, fn = self.tp.double(), self.fp.double(), self.fn.double()
        denominator = tp + 0.5 * fp + 0.5 * fn
        sq = torch.where(tp > 0, self.iou_sum / tp.clamp(min=1), 0.0)
        rq = torch.where(denominator > 0, tp / denominator.clamp(min=1e-12), 0.0)
        pq = sq * rq
        present = denominator > 0
        result: dict[str, Any] = {}
        for suffix, members in (("", self.things | self.stuffs), ("_th", self.things), ("_st", self.stuffs)):
            chosen = torch.tensor([c in members for c in self.categories]) & present
            n = int(chosen.sum())
            for name, values in (("PQ", pq), ("SQ", sq), ("RQ", rq)):
                result[name + suffix] = float(values[chosen].sum() / n) if n else float("nan")
        result["per_class"] = {
            c: {"PQ": float(pq[i]), "SQ": float(sq[i]), "RQ": float(rq[i]),
                "TP": int(tp[i]), "FP": int(fp[i]), "FN": int(fn[i])}
            for i, c in enumerate(self.categories)
            if present[i]
        }
        return result
