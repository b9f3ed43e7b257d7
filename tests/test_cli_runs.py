"""`python -m maskformer train / evaluate` as a user runs them: no lost work, resuming, Ctrl-C, the
model knowing its classes and its evaluation, your own data from the command line, TensorBoard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from maskformer.cli import main
from test_bad_inputs import TINY, write_folder


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def final_miou(run):
    return [r["mIoU"] for r in metrics(run) if "mIoU" in r][-1]


def test_overwrite_replaces_the_run_and_its_metrics(tmp_path):
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), *TINY])
    main(["train", "--output-dir", str(run), "--overwrite", *TINY, "--max-iters", "1"])
    steps = [r["step"] for r in metrics(run) if "loss" in r]
    assert steps == [1]  # only the new run's lines
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_0000001.pt"]


def test_resume_keeps_the_next_argument_as_an_override(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), *TINY])
    capsys.readouterr()
    main(["train", "--output-dir", str(run), *TINY[2:], "--resume", "solver.max_iters=3"])  # TINY[:2]: --max-iters
    text = capsys.readouterr().out
    assert "resumed from" in text and "step_0000002.pt" in text and "step 3/3" in text
    assert [r["step"] for r in metrics(run) if "loss" in r] == [1, 2, 3]


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), *TINY])
    latest = run / "checkpoints" / "step_0000002.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    capsys.readouterr()
    main(["train", "--output-dir", str(run), "--resume", *TINY])
    text = capsys.readouterr().out
    assert "step_0000002.pt is truncated or corrupt" in text
    assert "resumed from" in text and "step_0000001.pt at step 1" in text and "step 2/2" in text


def test_ctrl_c_saves_draws_and_exits_130_without_traceback(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "maskformer", "train", "--output-dir", str(run), *TINY, "--max-iters", "500",
            "checkpoint_period=1000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    for line in proc.stdout:  # wait until training runs
        if line.startswith("step 2/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    assert "interrupted at step" in out and "--resume" in out
    assert (run / "curves.png").exists() and list((run / "checkpoints").glob("step_*.pt"))


def test_model_knows_its_classes_and_evaluate_reproduces_training(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), *TINY])
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["id2label"]["0"] == "background" and len(config["id2label"]) == 7
    assert config["extra"]["training"]["stuff_ids"] == [0]  # predict --task panoptic merges the background
    capsys.readouterr()
    main(["evaluate", "--checkpoint", str(run / "model"), "--out", str(tmp_path / "r.json")])
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["short_edges"] == [32]  # the training's evaluation size, not 512
    assert results["mIoU"] == pytest.approx(final_miou(run), abs=1e-9)
    printed = capsys.readouterr().out
    assert f"mIoU            {100 * results['mIoU']:.2f}" in printed


def test_folder_dataset_from_the_command_line(tmp_path, capsys):
    root = write_folder(tmp_path / "data", n=5)
    run = tmp_path / "run"
    main(["train", "--dataset", "folder", "--images", str(root / "images"), "--labels", str(root / "labels"),
          "--classes", str(root / "classes.txt"), "model.num_classes=3", "data.num_workers=0",
          "data.val_fraction=0.4", "--output-dir", str(run), *TINY])
    text = capsys.readouterr().out
    assert "on 3 images" in text  # 5 images, 2 held out for validation
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "class0", "1": "class1", "2": "class2"}
    main(["evaluate", "--checkpoint", str(run / "model"), "--out", str(tmp_path / "r.json")])
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["num_images"] == 2 and results["mIoU"] == pytest.approx(final_miou(run), abs=1e-9)


def test_folder_dataset_with_a_validation_folder_and_reduced_labels(tmp_path, capsys):
    train = write_folder(tmp_path / "train", n=4, classes=4)
    val = write_folder(tmp_path / "val", n=2, classes=4)
    main(["train", "--dataset", "folder", "--images", str(train / "images"), "--labels", str(train / "labels"),
          "--val-images", str(val / "images"), "--val-labels", str(val / "labels"), "--classes", "a,b,c",
          "--reduce-labels", "model.num_classes=3", "data.num_workers=0", "--output-dir", str(tmp_path / "run"),
          *TINY])
    text = capsys.readouterr().out
    assert "on 4 images" in text and "on 2 validation images" in text


def test_datasets_dataset_saved_to_disk(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    root = write_folder(tmp_path / "data", n=4)
    rows = {"image": [Image.open(p).convert("RGB") for p in sorted((root / "images").iterdir())],
            "annotation": [Image.open(p) for p in sorted((root / "labels").iterdir())]}
    splits = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows),
                                  validation=datasets.Dataset.from_dict({k: v[:2] for k, v in rows.items()}))
    splits.save_to_disk(str(tmp_path / "saved"))
    main(["train", "--dataset", "hf", "--hf-name", str(tmp_path / "saved"), "--classes", str(root / "classes.txt"),
          "model.num_classes=3", "data.num_workers=0", "--output-dir", str(tmp_path / "run"), *TINY])
    text = capsys.readouterr().out
    assert "on 4 images" in text and "on 2 validation images" in text


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), "--tensorboard", *TINY])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_one_unit_and_evaluation_lines_above_the_bar(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--output-dir", str(run), *TINY, "--progress", "bar"])
    out, err = capsys.readouterr()
    miou = final_miou(run)
    assert f"step 2: mIoU {100 * miou:.2f} on 2 validation images\n" in out  # a whole line, in percent
    assert f"mIoU            {100 * miou:.2f}" in out  # the final table: the same unit
    assert "train:" in err  # the bar itself went to stderr


def test_more_than_255_classes_with_16_bit_labels(tmp_path):
    """data.ignore_index reaches the augmentation's padding, the batch padding and the metrics, so that
    class 255 stays a class when the labels are 16-bit and the unlabelled value is 65535."""
    import numpy as np
    from PIL import Image

    from maskformer.recipes import load_config
    from maskformer.trainer import Trainer

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        label = np.full((30, 30), 255 + i, np.uint16)  # class 255 (and 256, 257) on the top half
        label[15:] = 299
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(label).save(root / "labels" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(f"c{k}" for k in range(300)))
    cfg = load_config("shapes/maskformer_tiny", ["model.num_classes=300", "data.num_workers=0", "data.crop_size=40",
                                                 "data.ignore_index=65535", "solver.batch_size=2", "solver.max_iters=1",
                                                 "data.test_short_edge=30", "data.test_max_size=30", "eval_period=0",
                                                 f"output_dir={tmp_path / 'run'}"],
                      {"data.dataset": "folder", "data.images": str(root / "images"),
                       "data.labels": str(root / "labels"), "data.classes": str(root / "classes.txt"),
                       "data.val_fraction": 0.34})
    trainer = Trainer(cfg, progress=False)
    batch = next(iter(trainer._loader()))
    semantic = batch["semantic"]
    assert (semantic == 65535).any()  # the batch padding from 40 to 64 pixels
    assert set(semantic.unique().tolist()) <= {255, 256, 257, 299, 65535}
    assert (semantic == 255).sum() + (semantic == 256).sum() + (semantic == 257).sum() > 0  # class 255.. kept
    assert any(255 <= int(label) <= 257 for t in batch["targets"] for label in t["labels"])
    results = trainer.train()
    assert 0.0 <= results["mIoU"] <= 1.0
