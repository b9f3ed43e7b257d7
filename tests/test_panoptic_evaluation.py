"""evaluate_panoptic (PQ) and evaluate_instance (mask AP): a perfect model scores 1, the written files give the
official numbers (panopticapi's pq_compute, pycocotools' COCOeval), and the command line prints them."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.data import COCOInstances, COCOPanoptic, Shapes
from maskformer.data.coco_sample import write_coco_sample
from maskformer.evaluation import evaluate_instance, evaluate_panoptic, panoptic_ground_truth

pytest.importorskip("pycocotools")


class Oracle(nn.Module):
    """Returns the ground truth of the samples it is given, one query per segment, in the order they are run.

    With `noise`, a share of the queries get a wrong class, masks are shifted by a few pixels, scores vary,
    and a few random boxes are added: numbers between 0 and 1 that exercise matching and ranking.
    """

    def __init__(self, samples, num_classes, num_queries=16, noise=0.0, seed=0):
        super().__init__()
        self.samples, self.K, self.Q, self.calls = list(samples), num_classes, num_queries, 0
        self.noise, self.rng = noise, np.random.default_rng(seed)

    def forward(self, images, return_aux=False):
        B, _, Hp, Wp = images.shape
        logits = torch.full((B, self.Q, self.K + 1), -20.0)
        logits[..., self.K] = 20.0  # "no object" unless a segment is assigned
        masks = torch.full((B, self.Q, Hp, Wp), -10.0)
        for b in range(B):
            ids, segments = panoptic_ground_truth(self.samples[self.calls])
            self.calls += 1
            # crowd regions too: every pixel goes to some query, and a crowd region predicted as its class is no
            # false positive (COCO's rule), while leaving it out would let it enlarge a neighbour
            queries = [(s["category_id"], torch.from_numpy(ids == s["id"])) for s in segments]
            if self.noise:
                for _ in range(3):
                    box = torch.zeros(ids.shape, dtype=torch.bool)
                    top, left = self.rng.integers(0, ids.shape[0] - 8), self.rng.integers(0, ids.shape[1] - 8)
                    box[top:top + int(self.rng.integers(4, 16)), left:left + int(self.rng.integers(4, 16))] = True
                    queries.append((int(self.rng.integers(0, self.K)), box))
            for q, (label, inside) in enumerate(queries[: self.Q]):
                if self.noise:
                    if self.rng.random() < self.noise:
                        label = int(self.rng.integers(0, self.K))
                    inside = inside.roll(int(self.rng.integers(-3, 4)), dims=int(self.rng.integers(0, 2)))
                logits[b, q] = -20.0
                logits[b, q, label] = float(self.rng.uniform(1.0, 6.0)) if self.noise else 20.0
                masks[b, q, : inside.shape[0], : inside.shape[1]][inside] = 10.0
        return {"pred_logits": logits, "pred_masks": masks}


def test_a_perfect_model_scores_one_on_shapes(tmp_path):
    dataset = Shapes(num_samples=4, image_size=64, seed=3, targets="panoptic")
    oracle = Oracle([dataset[i] for i in range(4)], dataset.num_classes)
    results = evaluate_panoptic(oracle, dataset, tmp_path / "panoptic", short_edge=64, max_size=1000, progress=False)
    assert results["All"]["pq"] == pytest.approx(1.0) and results["Things"]["n"] >= 2 and results["Stuff"]["n"] == 1
    oracle.calls = 0
    results = evaluate_instance(oracle, dataset, short_edge=64, max_size=1000, progress=False)
    assert results["AP"] == pytest.approx(1.0) and results["AP50"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def coco_tree(tmp_path_factory):
    return write_coco_sample(tmp_path_factory.mktemp("coco"), num_train=2, num_val=4, image_size=64, crowd_fraction=0.5)


def test_a_perfect_model_scores_one_on_coco_with_crowd(coco_tree, tmp_path):
    dataset = COCOPanoptic(coco_tree / "val2017", coco_tree / "panoptic_val2017",
                           coco_tree / "annotations/panoptic_val2017.json")
    assert any(s["iscrowd"] for i in range(len(dataset)) for s in dataset[i]["segments_info"])
    oracle = Oracle([dataset[i] for i in range(len(dataset))], dataset.num_classes)
    results = evaluate_panoptic(oracle, dataset, tmp_path, short_edge=64, max_size=1000, progress=False)
    assert results["All"]["pq"] == pytest.approx(1.0)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert {s["category_id"] for a in predictions["annotations"] for s in a["segments_info"]} <= {1, 2, 3, 4, 5, 6, 100}


def tiny_model(num_classes):
    torch.manual_seed(0)
    return MaskFormer(MaskFormerConfig.tiny(num_classes=num_classes)).eval()


def test_written_files_give_the_official_numbers(coco_tree, tmp_path, monkeypatch):
    evaluation = pytest.importorskip("panopticapi.evaluation")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = COCOPanoptic(coco_tree / "val2017", coco_tree / "panoptic_val2017",
                           coco_tree / "annotations/panoptic_val2017.json")
    samples = [dataset[i] for i in range(len(dataset))]
    ours = evaluate_panoptic(Oracle(samples, dataset.num_classes, noise=0.3), dataset, tmp_path, short_edge=64,
                             max_size=1000, object_threshold=0.5, progress=False)
    assert 0.1 < ours["All"]["pq"] < 0.95
    monkeypatch.setattr(evaluation.multiprocessing, "cpu_count", lambda: 1)
    with contextlib.redirect_stdout(io.StringIO()):
        official = evaluation.pq_compute(str(tmp_path / "ground_truth.json"), str(tmp_path / "predictions.json"))
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            assert ours[group][key] == pytest.approx(official[group][key], abs=1e-12)
    # ... and the written ground truth is the original one: the same segments as the original PNGs and JSON
    original = json.loads((coco_tree / "annotations/panoptic_val2017.json").read_text())
    written = json.loads((tmp_path / "ground_truth.json").read_text())
    for a, b in zip(original["annotations"], written["annotations"]):
        assert [(s["category_id"], s["iscrowd"], s["area"]) for s in a["segments_info"]] == \
               [(s["category_id"], s["iscrowd"], s["area"]) for s in b["segments_info"]]

    instances = COCOInstances(coco_tree / "val2017", coco_tree / "annotations/instances_val2017.json")
    oracle = Oracle([instances[i] for i in range(len(instances))], instances.num_classes, noise=0.3)
    ours = evaluate_instance(oracle, instances, tmp_path, short_edge=64, max_size=1000, progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_tree / "annotations/instances_val2017.json"))  # the original file, not the written one
        coco_eval = COCOeval(gt, gt.loadRes(str(tmp_path / "instances_predictions.json")), iouType="segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    expected = [v if v >= 0 else float("nan") for v in coco_eval.stats[:6]]
    got = [ours[k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert 0.1 < ours["AP"] < 0.95


def test_evaluate_command_prints_pq_and_ap(coco_tree, tmp_path, capsys):
    from maskformer.cli import main

    dataset = COCOPanoptic(coco_tree / "val2017", coco_tree / "panoptic_val2017",
                           coco_tree / "annotations/panoptic_val2017.json")
    model = tiny_model(dataset.num_classes)
    model.config.id2label = dict(enumerate(dataset.class_names))
    model.save_pretrained(tmp_path / "model")
    main(["evaluate", "--checkpoint", str(tmp_path / "model"), "--task", "panoptic", "--dataset", "coco_panoptic",
          "--data-root", str(coco_tree), "--short-edge", "64", "--out", str(tmp_path / "pq.json")])
    out = capsys.readouterr().out
    assert "All" in out and "Things" in out and "Stuff" in out and "background" in out
    saved = json.loads((tmp_path / "pq.json").read_text())
    assert set(saved) >= {"All", "Things", "Stuff", "per_class"}
    assert (tmp_path / "pq" / "predictions.json").is_file()
    main(["evaluate", "--checkpoint", str(tmp_path / "model"), "--task", "instance", "--dataset", "coco_panoptic",
          "--data-root", str(coco_tree), "--short-edge", "64", "--out", str(tmp_path / "ap.json")])
    out = capsys.readouterr().out
    assert "AP50" in out and "APl" in out


def test_shapes_panoptic_targets_are_one_per_shape():
    dataset = Shapes(num_samples=40, image_size=64, shapes_per_image=(3, 4), num_classes=3, targets="panoptic")
    found = False
    for i in range(len(dataset)):
        sample = dataset[i]
        labels = sample["targets"]["labels"].tolist()
        assert labels == [sample["id_to_class"][k] for k in sorted(sample["id_to_class"])]  # background 0 first
        assert labels.count(0) == 1  # the background (stuff) once
        found |= any(labels.count(c) > 1 for c in (1, 2))  # two shapes of one class: two targets
    assert found


@pytest.mark.parametrize("task,key", [("panoptic", "PQ"), ("instance", "AP")])
def test_training_a_shapes_model_reports_pq_or_ap(tmp_path, capsys, task, key):
    from maskformer.cli import main

    run = tmp_path / "run"
    main(["train", "--config", f"shapes/maskformer_{task}_tiny", "--output-dir", str(run), "--max-iters", "2",
          "--batch-size", "2", "--progress", "lines", "data.image_size=32", "data.num_train=4", "data.num_val=2",
          "data.test_short_edge=32", "data.test_max_size=32", "model.dec_layers=1", "eval_period=0"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if key in r][-1]
    assert final["step"] == 2 and 0 <= final[key] <= 1 and "mIoU" in final
    assert f"{key} " in capsys.readouterr().out
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["extra"]["training"]["data"]["task"] == task
    # evaluate --checkpoint RUN/model knows the task and the data: it gives the number the training printed last
    main(["evaluate", "--checkpoint", str(run / "model"), "--out", str(tmp_path / "results.json")])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (saved["All"]["pq"] if task == "panoptic" else saved["AP"]) == pytest.approx(final[key], abs=1e-12)


def test_training_on_coco_panoptic_files_a_few_steps(coco_tree, tmp_path):
    from maskformer.cli import main

    run = tmp_path / "run"
    main(["train", "--config", "coco-panoptic/maskformer_panoptic_R50_bs64_554k", "--data-root", str(coco_tree),
          "--output-dir", str(run), "--no-pretrained", "--max-iters", "2", "--batch-size", "2", "--progress", "lines",
          "model.preset=tiny", "model.num_classes=7", "model.dec_layers=1", "data.train_short_edges=[64]",
          "data.max_size=96", "data.crop_range=[32,48]", "data.test_short_edge=64", "data.test_max_size=96",
          "data.num_workers=0", "eval_period=0"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "PQ" in r] == [2]


def test_predict_writes_the_coco_panoptic_format(tmp_path):
    from PIL import Image

    from maskformer.panoptic_eval import read_panoptic_png
    from maskformer.predict import predict

    dataset = Shapes(num_samples=1, image_size=64, targets="panoptic")
    image, *_ = dataset.draw(0)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    model = Oracle([dataset[0]], dataset.num_classes, noise=0.3)
    model.config = MaskFormerConfig.tiny(num_classes=7)
    written = predict(model, [tmp_path / "photo.png"], tmp_path / "out", task="panoptic", short_edge=64, max_size=64,
                      stuff_ids=[0], object_threshold=0.5)
    assert written == [tmp_path / "out" / "photo_panoptic.png"]
    content = json.loads((tmp_path / "out" / "panoptic.json").read_text())
    (annotation,) = content["annotations"]
    ids = read_panoptic_png(tmp_path / "out" / annotation["file_name"])
    assert annotation["segments_info"] and sorted(set(np.unique(ids).tolist()) - {0}) == \
        sorted(s["id"] for s in annotation["segments_info"])
    assert [c["isthing"] for c in content["categories"]] == [0, 1, 1, 1, 1, 1, 1]
    for s in annotation["segments_info"]:
        assert s["area"] == int((ids == s["id"]).sum())
