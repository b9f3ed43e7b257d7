"""coco_panoptic_pq against the official COCO panoptic evaluation (panopticapi's pq_compute).

The reference is `panopticapi-lite` from PyPI, which packages the official `panopticapi/evaluation.py`.
Its metadata pins numpy < 2 although its code runs on numpy 2, so it is installed without its
dependencies (`pip install --no-deps panopticapi-lite`); the test is skipped when it is absent.
Random cases hold things, stuff, void and crowd regions, and predictions that match, miss, split,
relabel and cover crowd and void regions.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from maskformer.metrics import PanopticQuality, coco_panoptic_pq
from maskformer.panoptic_eval import PanopticStats, id_to_rgb, rgb_to_id, write_panoptic_json, write_panoptic_png

THINGS = {1: "person", 3: "car", 4: "dog"}
STUFF = {7: "sky", 8: "grass", 12: "wall"}
CATEGORIES = [{"id": c, "name": n, "isthing": 1} for c, n in THINGS.items()] + \
             [{"id": c, "name": n, "isthing": 0} for c, n in STUFF.items()]


def _box(rng, H, W):
    h, w = rng.integers(2, H // 2 + 2), rng.integers(2, W // 2 + 2)
    top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    return slice(top, top + h), slice(left, left + w)


def _fresh_id(rng, used):
    while True:
        i = int(rng.integers(1, 256**3))
        if i not in used:
            used.add(i)
            return i


def _segments(ids, categories, crowd=()):
    """segments_info of the ids present in a map, with areas counted."""
    present, counts = np.unique(ids, return_counts=True)
    return [{"id": int(i), "category_id": int(categories[int(i)]), "iscrowd": int(int(i) in crowd), "area": int(n)}
            for i, n in zip(present, counts) if i != 0]


def random_image(rng, allow_crowd=True, merge_pred_stuff=False):
    """(gt ids, gt segments, pred ids, pred segments) of one random image."""
    H, W = int(rng.integers(12, 40)), int(rng.integers(12, 40))
    used = set()
    gt = np.zeros((H, W), np.int64)
    category = {}
    stuff_id = {}
    for c in rng.choice(list(STUFF), size=int(rng.integers(1, 3)), replace=False):  # stuff: one segment per class
        stuff_id[int(c)] = _fresh_id(rng, used)
        category[stuff_id[int(c)]] = int(c)
    stuff_classes = list(stuff_id)
    gt[:] = stuff_id[stuff_classes[0]]
    for _ in range(int(rng.integers(0, 3))):
        gt[_box(rng, H, W)] = stuff_id[int(rng.choice(stuff_classes))]
    crowd = set()
    for _ in range(int(rng.integers(1, 5))):  # things, one segment per instance
        i = _fresh_id(rng, used)
        category[i] = int(rng.choice(list(THINGS)))
        gt[_box(rng, H, W)] = i
    if allow_crowd and rng.random() < 0.7:  # at most one crowd region per class, as in COCO
        for c in rng.choice(list(THINGS), size=int(rng.integers(1, 3)), replace=False):
            i = _fresh_id(rng, used)
            category[i], crowd = int(c), crowd | {i}
            gt[_box(rng, H, W)] = i
    for _ in range(int(rng.integers(0, 3))):  # void
        gt[_box(rng, H, W)] = 0

    # Prediction: the ground truth relabelled and moved a little, with segments added on top.
    pred_used = set()
    to_pred = {g: _fresh_id(rng, pred_used) for g in np.unique(gt).tolist() if g != 0}
    pred_category = {}
    for g, p in to_pred.items():
        pred_category[p] = category[g] if rng.random() < 0.8 else int(rng.choice([c["id"] for c in CATEGORIES]))
    void_fill = _fresh_id(rng, pred_used) if rng.random() < 0.5 else 0  # void pixels predicted as something
    pred_category[void_fill] = int(rng.choice(list(STUFF)))
    pred = np.vectorize(lambda g: to_pred.get(g, void_fill))(gt) if gt.size else gt.copy()
    if rng.random() < 0.5:
        pred = np.roll(pred, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
    for _ in range(int(rng.integers(0, 5))):
        p = _fresh_id(rng, pred_used)
        pred_category[p] = int(rng.choice([c["id"] for c in CATEGORIES]))
        pred[_box(rng, H, W)] = p
    if crowd and rng.random() < 0.7:  # a prediction lying on a crowd region of its own class
        g = next(iter(crowd))
        p = _fresh_id(rng, pred_used)
        pred_category[p] = category[g]
        ys, xs = np.nonzero(gt == g)
        if len(ys):
            pred[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = p
    if rng.random() < 0.3:
        pred[_box(rng, H, W)] = 0  # predicted void
    if merge_pred_stuff:  # one predicted segment per stuff class (what PanopticQuality assumes)
        first = {}
        for p in np.unique(pred).tolist():
            if p and pred_category[p] in STUFF:
                pred[pred == p] = first.setdefault(pred_category[p], p)
    gt_segments = _segments(gt, category, crowd)
    pred_segments = [{"id": s["id"], "category_id": s["category_id"]} for s in _segments(pred, pred_category)]
    return gt, gt_segments, pred, pred_segments


def write_case(root, images):
    """Write ground truth and predictions in the COCO panoptic format; returns the four paths."""
    gt_annotations, pred_annotations = [], []
    for k, (gt, gt_segments, pred, pred_segments) in enumerate(images):
        name = f"{k:06d}.png"
        write_panoptic_png(gt, root / "gt" / name)
        write_panoptic_png(pred, root / "pred" / name)
        gt_annotations.append({"image_id": k, "file_name": name, "segments_info": gt_segments})
        pred_annotations.append({"image_id": k, "file_name": name, "segments_info": pred_segments})
    write_panoptic_json(root / "gt.json", gt_annotations, CATEGORIES)
    write_panoptic_json(root / "pred.json", pred_annotations, CATEGORIES)
    return root / "gt.json", root / "pred.json", root / "gt", root / "pred"


def official_pq(paths, monkeypatch):
    evaluation = pytest.importorskip("panopticapi.evaluation")
    monkeypatch.setattr(evaluation.multiprocessing, "cpu_count", lambda: 1)  # one worker: the machine is shared
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluation.pq_compute(*(str(p) for p in paths))


def differences(ours, theirs):
    """Largest |ours - official| over every group and class, and whether the counts n agree."""
    worst, same_n = 0.0, True
    for group in ("All", "Things", "Stuff"):
        worst = max([worst] + [abs(ours[group][k] - theirs[group][k]) for k in ("pq", "sq", "rq")])
        same_n &= ours[group]["n"] == theirs[group]["n"]
    for c, r in theirs["per_class"].items():
        worst = max([worst] + [abs(ours["per_class"][c][k] - r[k]) for k in ("pq", "sq", "rq")])
    return worst, same_n


def test_rgb_encoding_round_trips():
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 256**3 - 1, 123456]])
    assert (rgb_to_id(id_to_rgb(ids)) == ids).all()
    assert id_to_rgb(np.array([[1 + 2 * 256 + 3 * 65536]]))[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("seed", range(40))
def test_equals_official_pq_compute(tmp_path, monkeypatch, seed):
    pytest.importorskip("panopticapi.evaluation")
    rng = np.random.default_rng(seed)
    images = [random_image(rng) for _ in range(3)]
    paths = write_case(tmp_path, images)
    ours, theirs = coco_panoptic_pq(*paths), official_pq(paths, monkeypatch)
    worst, same_n = differences(ours, theirs)
    assert worst < 1e-12 and same_n, (worst, ours, theirs)
    assert set(ours) >= {"All", "Things", "Stuff", "per_class"}


def test_the_random_cases_exercise_every_rule():
    """The cases above hold crowd-ignored and void-ignored predictions, true and false positives and negatives."""
    crowd_ignored = void_ignored = 0
    stats = PanopticStats({c["id"]: c for c in CATEGORIES})
    for seed in range(40):
        rng = np.random.default_rng(seed)
        for _ in range(3):
            gt, gt_segments, pred, pred_segments = random_image(rng)
            stats.add_image(gt, gt_segments, pred, pred_segments)
            crowd = {s["id"]: s["category_id"] for s in gt_segments if s["iscrowd"]}
            for s in pred_segments:
                area = (pred == s["id"]).sum()
                on_crowd = sum(((pred == s["id"]) & (gt == g)).sum() for g, c in crowd.items() if c == s["category_id"])
                on_void = ((pred == s["id"]) & (gt == 0)).sum()
                crowd_ignored += on_crowd / area > 0.5
                void_ignored += on_void / area > 0.5
    assert crowd_ignored >= 10 and void_ignored >= 5
    per_class = stats.per_class()
    assert all(sum(per_class[c][k] for c in per_class) > 50 for k in ("tp", "fp", "fn"))


def test_crowd_and_void_rules_by_hand(tmp_path):
    # 4 x 4: a person (id 1) on the left half, a crowd of persons (id 2) top right, void bottom right.
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 0, 0], [1, 1, 0, 0]])
    gt_segments = [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 8},
                   {"id": 2, "category_id": 1, "iscrowd": 1, "area": 4}]
    # a perfect person, a person on the crowd (ignored), a car on the crowd (false positive),
    # and a person on the void (ignored)
    pred = np.array([[1, 1, 2, 3], [1, 1, 2, 3], [1, 1, 4, 4], [1, 1, 4, 4]])
    pred_segments = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 1}, {"id": 3, "category_id": 3},
                     {"id": 4, "category_id": 1}]
    stats = PanopticStats({1: {"isthing": 1}, 3: {"isthing": 1}})
    stats.add_image(gt, gt_segments, pred, pred_segments)
    per_class = stats.per_class()
    assert (per_class[1]["tp"], per_class[1]["fp"], per_class[1]["fn"]) == (1, 0, 0)
    assert (per_class[3]["tp"], per_class[3]["fp"], per_class[3]["fn"]) == (0, 1, 0)
    result = stats.summarize()
    assert result["All"]["pq"] == pytest.approx(0.5) and result["All"]["n"] == 2
    assert np.isnan(result["Stuff"]["pq"]) and result["Stuff"]["n"] == 0


def test_panoptic_quality_equals_coco_without_crowd(tmp_path):
    """The streaming PanopticQuality gives the COCO numbers on images without crowd regions."""
    rng = np.random.default_rng(123)
    images = [random_image(rng, allow_crowd=False, merge_pred_stuff=True) for _ in range(20)]
    ours = coco_panoptic_pq(*write_case(tmp_path, images))
    metric = PanopticQuality(things=set(THINGS), stuffs=set(STUFF))

    def pairs(ids, segments):
        category = np.full(ids.shape, 255, np.int64)
        for s in segments:
            category[ids == s["id"]] = s["category_id"]
        return torch.from_numpy(np.stack([category, np.where(category == 255, 0, ids)], -1))

    for gt, gt_segments, pred, pred_segments in images:
        metric.update(pairs(pred, pred_segments), pairs(gt, gt_segments))
    streamed = metric.compute()
    for suffix, group in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
        for name in ("PQ", "SQ", "RQ"):
            assert streamed[name + suffix] == pytest.approx(ours[group][name.lower()], abs=1e-12)


def test_bad_inputs_name_the_problem(tmp_path):
    rng = np.random.default_rng(0)
    gt, gt_segments, pred, pred_segments = random_image(rng)
    paths = write_case(tmp_path, [(gt, gt_segments, pred, pred_segments)])
    content = json.loads(paths[1].read_text())
    missing = content["annotations"][0]["segments_info"].pop()
    paths[1].write_text(json.dumps(content))
    with pytest.raises(KeyError, match=f"segment ids \\[{missing['id']}\\] that its JSON segments_info does not list"):
        coco_panoptic_pq(*paths)
    content["annotations"][0]["segments_info"] += [missing, {"id": 77, "category_id": 1}]
    paths[1].write_text(json.dumps(content))
    with pytest.raises(KeyError, match="lists segment ids \\[77\\] that are not in its PNG"):
        coco_panoptic_pq(*paths)
    content["annotations"][0]["segments_info"] = [dict(s, category_id=99) if i == 0 else s for i, s in
                                                  enumerate(content["annotations"][0]["segments_info"][:-1])]
    paths[1].write_text(json.dumps(content))
    with pytest.raises(KeyError, match="has category 99"):
        coco_panoptic_pq(*paths)
    content["annotations"] = []
    paths[1].write_text(json.dumps(content))
    with pytest.raises(KeyError, match="no prediction for image 0"):
        coco_panoptic_pq(*paths)
    with pytest.raises(FileNotFoundError, match="prediction PNG folder"):
        coco_panoptic_pq(paths[0], paths[1], paths[2], tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="ground-truth JSON"):
        coco_panoptic_pq(tmp_path / "none.json", paths[1])
