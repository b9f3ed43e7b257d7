"""COCO panoptic format and panoptic quality, computed by the official COCO rules.

The COCO panoptic format (Kirillov et al., *Panoptic Segmentation*, CVPR 2019, and the COCO
`panopticapi`) stores one PNG per image whose RGB colour encodes a segment id
(`id = R + 256 G + 256^2 B`, 0 = void) and one JSON file with `categories` (`id`, `name`,
`isthing`) and, per image, `annotations[i] = {"image_id", "file_name", "segments_info"}` where each
segment has `id`, `category_id` (and, in the ground truth, `iscrowd` and `area`).

:func:`coco_panoptic_pq` reads a ground-truth and a prediction in this format and returns PQ, SQ
and RQ for all classes, things and stuff, and per class, in the layout of `panopticapi`'s
`pq_compute` (`result["All"]["pq"]`, `result["Things"]["n"]`, `result["per_class"][cat_id]["sq"]`).
The rules, per image and class (paper §4.1 of Kirillov et al., and `panopticapi/evaluation.py`):

- a predicted and a true segment of the same class match when their IoU is above 0.5, which makes
  each match unique; the union leaves out the predicted pixels that are void in the ground truth;
- crowd segments (`iscrowd: 1`) are never matched and never false negatives;
- an unmatched prediction is not a false positive when more than half of it lies on void or on the
  crowd region of its own class;
- `PQ = sum IoU(TP) / (TP + FP/2 + FN/2)`, `SQ = sum IoU(TP) / TP`, `RQ = TP / (TP + FP/2 + FN/2)`,
  averaged over the classes with any TP, FP or FN (`n`).

:class:`PanopticStats` holds the per-class sums and can be fed images in memory
(:meth:`PanopticStats.add_image`); :func:`write_panoptic_png` and :func:`write_panoptic_json`
write predictions in the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "rgb_to_id", "id_to_rgb", "read_panoptic_png", "write_panoptic_png", "write_panoptic_json",
    "PanopticStats", "coco_panoptic_pq", "format_panoptic_results",
]

OFFSET = 256**3  # more than any segment id a 24-bit PNG can hold: pairs (gt, pred) are gt * OFFSET + pred
VOID = 0


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """`[H, W, 3]` colours -> `[H, W]` int64 segment ids, `R + 256 G + 256^2 B`."""
    rgb = np.asarray(rgb).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """`[H, W]` segment ids (`0 .. 256^3 - 1`) -> `[H, W, 3]` uint8 colours (inverse of :func:`rgb_to_id`)."""
    ids = np.asarray(ids).astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= OFFSET):
        raise ValueError(f"maskformer/panoptic_eval.py: segment ids must be in 0..{OFFSET - 1} to fit an RGB PNG, "
                         f"got {ids.min()}..{ids.max()}")
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def read_panoptic_png(path: str | Path) -> np.ndarray:
    """A COCO panoptic PNG -> `[H, W]` int64 segment ids; a missing or unreadable file names itself."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"maskformer/panoptic_eval.py: panoptic PNG {path} does not exist; check the "
                                f"segmentation folder and the annotation's file_name")
    try:
        with Image.open(path) as image:
            return rgb_to_id(np.asarray(image.convert("RGB")))
    except OSError as err:
        raise ValueError(f"maskformer/panoptic_eval.py: cannot read panoptic PNG {path} ({err})") from None


def write_panoptic_png(ids: np.ndarray, path: str | Path) -> Path:
    """Save `[H, W]` segment ids as a COCO panoptic RGB PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id_to_rgb(ids), "RGB").save(path)
    return path


def write_panoptic_json(path: str | Path, annotations: Sequence[Mapping[str, Any]],
                        categories: Sequence[Mapping[str, Any]], images: Sequence[Mapping[str, Any]] | None = None
                        ) -> Path:
    """Write a COCO panoptic JSON: `annotations` (one per image: `image_id`, `file_name`, `segments_info`),
    `categories` (`id`, `name`, `isthing`) and, optionally, `images` (`id`, `file_name`, `height`, `width`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"annotations": [_plain(a) for a in annotations], "categories": [_plain(c) for c in categories]}
    if images is not None:
        content["images"] = [_plain(i) for i in images]
    path.write_text(json.dumps(content))
    return path


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, recursively, so that json can write them."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class PanopticStats:
    """Per-class IoU sums and TP / FP / FN counts, accumulated image by image.

    Args:
        categories: `{category id: {"isthing": 0 or 1, ...}}` (the ground truth JSON's `categories`,
            by id); predictions of any other category are refused.
    """

    def __init__(self, categories: Mapping[int, Mapping[str, Any]]):
        self.categories = {int(c): dict(info) for c, info in categories.items()}
        self.iou = {c: 0.0 for c in self.categories}
        self.tp = {c: 0 for c in self.categories}
        self.fp = {c: 0 for c in self.categories}
        self.fn = {c: 0 for c in self.categories}

    def add_image(self, gt_ids: np.ndarray, gt_segments: Sequence[Mapping[str, Any]], pred_ids: np.ndarray,
                  pred_segments: Sequence[Mapping[str, Any]], image: str = "image") -> None:
        """Add one image: `[H, W]` segment-id maps and their `segments_info` lists.

        Ground-truth segments need `id`, `category_id` and `iscrowd`; `area` is taken from them when
        present (as `panopticapi` does), else counted. Predicted segments need `id` and `category_id`.
        `image` names the image in errors.
        """
        gt_ids, pred_ids = np.asarray(gt_ids, dtype=np.int64), np.asarray(pred_ids, dtype=np.int64)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"maskformer/panoptic_eval.py: {image}: prediction {pred_ids.shape} and ground truth "
                             f"{gt_ids.shape} differ in size; predict at the original image size")
        gt = {int(s["id"]): s for s in gt_segments}
        pred = {int(s["id"]): s for s in pred_segments}

        # Areas from the maps; every id in a map must be listed, and every listed id must be in the map.
        ids, counts = np.unique(pred_ids, return_counts=True)
        pred_area = {int(i): int(n) for i, n in zip(ids, counts) if i != VOID}
        _check_listed(pred_area, pred, image, "prediction")
        for segment_id, s in pred.items():
            if int(s["category_id"]) not in self.categories:
                raise KeyError(f"maskformer/panoptic_eval.py: {image}: predicted segment {segment_id} has category "
                               f"{s['category_id']}, which the ground truth's categories do not list")
        ids, counts = np.unique(gt_ids, return_counts=True)
        gt_counted = {int(i): int(n) for i, n in zip(ids, counts) if i != VOID}
        _check_listed(gt_counted, gt, image, "ground truth", strict_json=False)
        gt_area = {i: int(s.get("area", gt_counted.get(i, 0))) for i, s in gt.items()}

        # Pixel counts of every (ground-truth id, predicted id) pair present.
        pairs, counts = np.unique(gt_ids.ravel() * OFFSET + pred_ids.ravel(), return_counts=True)
        overlap = {(int(p // OFFSET), int(p % OFFSET)): int(n) for p, n in zip(pairs, counts)}

        matched_gt, matched_pred = set(), set()
        for (g, p), inter in overlap.items():
            if g not in gt or p not in pred or gt[g].get("iscrowd", 0):
                continue
            category = int(gt[g]["category_id"])
            if category != int(pred[p]["category_id"]):
                continue
            union = pred_area[p] + gt_area[g] - inter - overlap.get((VOID, p), 0)
            iou = inter / union
            if iou > 0.5:  # more than half overlap: at most one match per segment
                self.tp[category] += 1
                self.iou[category] += iou
                matched_gt.add(g)
                matched_pred.add(p)

        crowd_of_category = {}  # category -> its crowd segment; COCO has at most one per class and image
        for g, s in gt.items():
            if s.get("iscrowd", 0):
                crowd_of_category[int(s["category_id"])] = g  # with several, the last listed (as panopticapi)
            elif g not in matched_gt:
                self.fn[int(s["category_id"])] += 1
        for p, s in pred.items():
            if p in matched_pred:
                continue
            category = int(s["category_id"])
            ignored = overlap.get((VOID, p), 0)
            if category in crowd_of_category:
                ignored += overlap.get((crowd_of_category[category], p), 0)
            if ignored / pred_area[p] <= 0.5:  # mostly on void or its class's crowd: not counted
                self.fp[category] += 1

    def __iadd__(self, other: "PanopticStats") -> "PanopticStats":
        for c in other.categories:
            self.iou[c] = self.iou.get(c, 0.0) + other.iou[c]
            for mine, theirs in ((self.tp, other.tp), (self.fp, other.fp), (self.fn, other.fn)):
                mine[c] = mine.get(c, 0) + theirs[c]
        return self

    def per_class(self) -> dict[int, dict[str, float]]:
        """`{category: {"pq", "sq", "rq", "tp", "fp", "fn"}}`; pq, sq, rq are 0 for a class never seen."""
        result = {}
        for c in self.categories:
            tp, fp, fn, iou = self.tp[c], self.fp[c], self.fn[c], self.iou[c]
            denominator = tp + 0.5 * fp + 0.5 * fn
            result[c] = {"pq": iou / denominator if denominator else 0.0, "sq": iou / tp if tp else 0.0,
                         "rq": tp / denominator if denominator else 0.0, "tp": tp, "fp": fp, "fn": fn}
        return result

    def summarize(self) -> dict[str, Any]:
        """The layout of `panopticapi`'s `pq_compute`: `All`, `Things`, `Stuff` -> `{"pq", "sq", "rq", "n"}`
        (NaN where no class of the group was seen; the official code divides by zero there) and
        `per_class` -> :meth:`per_class`."""
        per_class = self.per_class()
        results: dict[str, Any] = {}
        for group, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            seen = [c for c in self.categories if (isthing is None or bool(self.categories[c]["isthing"]) == isthing)
                    and self.tp[c] + self.fp[c] + self.fn[c] > 0]
            n = len(seen)
            results[group] = {k: sum(per_class[c][k] for c in seen) / n if n else math.nan for k in ("pq", "sq", "rq")}
            results[group]["n"] = n
        results["per_class"] = per_class
        return results


def _check_listed(in_map: Mapping[int, int], listed: Mapping[int, Any], image: str, what: str,
                  strict_json: bool = True) -> None:
    """Every id of the map must be in `segments_info`; with `strict_json`, every listed id must be in the map."""
    unlisted = sorted(set(in_map) - set(listed))
    if unlisted:
        raise KeyError(f"maskformer/panoptic_eval.py: {image}: the {what} PNG holds segment ids {unlisted[:10]} that "
                       f"its JSON segments_info does not list; write every segment of the PNG into segments_info")
    missing = sorted(set(listed) - set(in_map))
    if strict_json and missing:
        raise KeyError(f"maskformer/panoptic_eval.py: {image}: the {what} JSON lists segment ids {missing[:10]} that "
                       f"are not in its PNG; list only segments with at least one pixel")


def _load_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"maskformer/panoptic_eval.py: {what} JSON {path} does not exist")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"maskformer/panoptic_eval.py: cannot read {what} JSON {path} ({err})") from None
    for key in ("annotations",) + (("categories",) if what == "ground-truth" else ()):
        if key not in content:
            raise ValueError(f"maskformer/panoptic_eval.py: {what} JSON {path} has no {key!r}; it is not in the COCO "
                             f"panoptic format")
    return content


def coco_panoptic_pq(gt_json: str | Path, pred_json: str | Path, gt_folder: str | Path | None = None,
                     pred_folder: str | Path | None = None) -> dict[str, Any]:
    """PQ, SQ and RQ of COCO-format panoptic predictions, by the official COCO rules (module docstring).

    Args:
        gt_json: the ground truth's JSON (`annotations`, `categories`), e.g.
            `annotations/panoptic_val2017.json`.
        pred_json: the predictions' JSON (`annotations`); every ground-truth image needs one.
        gt_folder: the ground truth's PNGs; default `gt_json` without `.json` (as `panopticapi`).
        pred_folder: the predictions' PNGs; default `pred_json` without `.json`.

    Returns:
        `{"All" | "Things" | "Stuff": {"pq", "sq", "rq", "n"}, "per_class": {category id: {"pq", "sq",
        "rq", "tp", "fp", "fn"}}}`, fractions in 0..1 (`panopticapi`'s layout, plus the counts).
    """
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt_folder = Path(gt_folder) if gt_folder is not None else gt_json.with_suffix("")
    pred_folder = Path(pred_folder) if pred_folder is not None else pred_json.with_suffix("")
    gt, pred = _load_json(gt_json, "ground-truth"), _load_json(pred_json, "prediction")
    for folder, what in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise FileNotFoundError(f"maskformer/panoptic_eval.py: {what} PNG folder {folder} does not exist")
    stats = PanopticStats({int(c["id"]): c for c in gt["categories"]})
    predictions = {a["image_id"]: a for a in pred["annotations"]}
    for gt_ann in gt["annotations"]:
        image_id = gt_ann["image_id"]
        if image_id not in predictions:
            raise KeyError(f"maskformer/panoptic_eval.py: {pred_json} has no prediction for image {image_id!r}; "
                           f"predict every image of {gt_json}")
        pred_ann = predictions[image_id]
        stats.add_image(read_panoptic_png(gt_folder / gt_ann["file_name"]), gt_ann["segments_info"],
                        read_panoptic_png(pred_folder / pred_ann["file_name"]), pred_ann["segments_info"],
                        image=f"image {image_id!r}")
    return stats.summarize()


def format_panoptic_results(results: Mapping[str, Any], class_names: Mapping[int, str] | None = None) -> str:
    """A table in percent: PQ, SQ, RQ and the number of classes for All / Things / Stuff, then every class seen."""
    percent = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"  # noqa: E731
    lines = [f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s}  {'N':>4s}", "-" * 38]
    for group in ("All", "Things", "Stuff"):
        r = results[group]
        values = "  ".join(f"{percent(r[k]):>5s}" for k in ("pq", "sq", "rq"))
        lines.append(f"{group:10s}| {values}  {r['n']:>4d}")
    per_class = {c: r for c, r in results.get("per_class", {}).items()
                 if r.get("tp", 0) + r.get("fp", 0) + r.get("fn", 0) > 0 or "tp" not in r}
    if per_class:
        names = {c: (class_names or {}).get(c, str(c)) for c in per_class}
        width = max([5] + [len(n) for n in names.values()])
        header = "  ".join(f"{k:>5}" for k in ("PQ", "SQ", "RQ")) + "  " + "  ".join(f"{k:>4}" for k in ("TP", "FP", "FN"))
        lines += ["", f"{'id':>4}  {'class':<{width}}  {header}"]
        for c, r in per_class.items():
            lines.append(f"{c:>4}  {names[c]:<{width}}  {percent(r['pq']):>5}  {percent(r['sq']):>5}  "
                         f"{percent(r['rq']):>5}  {r.get('tp', '-'):>4}  {r.get('fp', '-'):>4}  {r.get('fn', '-'):>4}")
    return "\n".join(lines)
