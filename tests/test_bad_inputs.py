"""Every user mistake ends with one actionable line and a non-zero exit code, never a traceback.

Each row of ``CASES`` is a command line (with ``{run}``, ``{tmp}`` ... filled in from small trees the
fixtures make) and words its message must contain. ``main()`` raising ``SystemExit`` with a string is
exactly what Python prints as one line on stderr with exit code 1; a subprocess check at the end
confirms that for a few rows end to end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskformer.cli import main

TINY = ["--max-iters", "2", "--batch-size", "2", "--progress", "lines", "data.image_size=32", "data.num_train=4",
        "data.num_val=2", "data.test_short_edge=32", "data.test_max_size=32", "log_period=1", "model.dec_layers=1",
        "checkpoint_period=1", "eval_period=0"]


def write_folder(root: Path, n: int = 4, size: int = 32, classes: int = 3, bad_label_value: int | None = None) -> Path:
    """``root/images/*.png`` and ``root/labels/*.png`` (ids 0..classes-1) and ``root/classes.txt``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        label = np.zeros((size, size), np.uint8)
        label[: size // 2] = 1 + i % (classes - 1)
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        image[label == 1] = (220, 40, 40)
        if bad_label_value is not None and i == 1:
            label[0, 0] = bad_label_value
        Image.fromarray(image).save(root / "images" / f"img{i}.png")
        Image.fromarray(label).save(root / "labels" / f"img{i}.png")
    (root / "classes.txt").write_text("\n".join(f"class{c}" for c in range(classes)) + "\n")
    return root


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A finished 2-step Shapes run, a folder dataset, and damaged copies of both."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    run = tmp / "run"
    main(["train", "--output-dir", str(run), *TINY])
    folder = write_folder(tmp / "folder")
    from maskformer.data import write_ade20k_sample

    ade = write_ade20k_sample(tmp / "ade", num_train=2, num_val=1, size=(32, 32))
    out = {"tmp": tmp, "run": run, "model": run / "model", "folder": folder, "ade": ade}

    broken_config = tmp / "broken_config"
    shutil.copytree(run / "model", broken_config)
    (broken_config / "config.json").write_text('{"format": "maskformer", "num_classes": ')
    truncated = tmp / "truncated_weights"
    shutil.copytree(run / "model", truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    corrupt_run = tmp / "corrupt_run"
    shutil.copytree(run, corrupt_run)
    for p in (corrupt_run / "checkpoints").glob("step_*.pt"):
        p.write_bytes(p.read_bytes()[:100])
    bad_type = tmp / "bad_type"
    shutil.copytree(run / "model", bad_type)
    config = json.loads((bad_type / "config.json").read_text())
    config["num_queries"] = "many"
    (bad_type / "config.json").write_text(json.dumps(config))
    (tmp / "empty_classes.txt").write_text("\n# nothing here\n")
    (tmp / "a_file").write_text("not a folder")
    (tmp / "bad.yaml").write_text("solver: [unclosed\n")
    (tmp / "photo.txt").write_text("not an image")
    bad_label = write_folder(tmp / "bad_label", bad_label_value=200)
    unreadable = write_folder(tmp / "unreadable")
    (unreadable / "images" / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out.update(broken_config=broken_config, truncated=truncated, corrupt_run=corrupt_run, bad_type=bad_type,
               bad_label=bad_label, unreadable=unreadable)
    return out


def fill(args: list[str], paths: dict) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]


# (id, command line, words the message must contain)
CASES = [
    # ---- configs and flags --------------------------------------------------------------------------
    ("batch-size-abc", ["train", "solver.batch_size=abc"], ["solver.batch_size", "abc", "int"]),
    ("num-queries-abc", ["train", "model.num_queries=abc"], ["model.num_queries", "abc", "int"]),
    ("max-iters-float", ["train", "solver.max_iters=5.5"], ["solver.max_iters", "5.5", "int"]),
    ("lr-word", ["train", "solver.lr=fast"], ["solver.lr", "fast", "float"]),
    ("unknown-model-field", ["train", "model.num_querys=5"], ["num_querys", "num_queries"]),
    ("unknown-solver-field", ["train", "solver.learning_rate=1"], ["learning_rate", "known"]),
    ("batch-size-zero", ["train", "solver.batch_size=0"], ["solver.batch_size", "0"]),
    ("lr-schedule-unknown", ["train", "solver.lr_schedule=cosine"], ["solver.lr_schedule", "cosine", "poly"]),
    ("negative-lr-flag", ["train", "--lr", "-1"], ["solver.lr", "-1"]),
    ("override-without-value", ["train", "solver.lr"], ["solver.lr", "section.field=value"]),
    ("no-such-config", ["train", "--config", "nope"], ["nope", "shipped"]),
    ("invalid-yaml", ["train", "--config", "{tmp}/bad.yaml"], ["bad.yaml", "YAML"]),
    ("data-root-on-is-a-path", ["train", "--config", "ade20k-150/maskformer_R50_bs16_160k", "--data-root", "on",
                                "--output-dir", "{tmp}/never"], ["on"]),
    ("ade20k-offline-without-root", ["train", "--config", "ade20k-150/maskformer_R50_bs16_160k", "--output-dir",
                                     "{tmp}/never"], ["--data-root", "ADEChallengeData2016"]),
    ("imagenet-weights-offline", ["train", "--config", "ade20k-150/maskformer_R50_bs16_160k", "--data-root",
                                  "{ade}", "--output-dir", "{tmp}/never"], ["--no-pretrained", "hf download"]),
    # ---- your own data ---------------------------------------------------------------------------------
    ("folder-without-images", ["train", "--dataset", "folder", "--output-dir", "{tmp}/never"], ["--images"]),
    ("folder-missing-dir", ["train", "--dataset", "folder", "--images", "{tmp}/nowhere", "--labels", "{tmp}/nowhere",
                            "--classes", "a,b,c", "--output-dir", "{tmp}/never", *TINY[:2]], ["nowhere"]),
    ("classes-file-empty", ["train", "--dataset", "folder", "--images", "{folder}/images", "--labels",
                            "{folder}/labels", "--classes", "{tmp}/empty_classes.txt", "--output-dir", "{tmp}/never"],
     ["empty_classes.txt", "no class names"]),
    ("classes-count-mismatch", ["train", "--dataset", "folder", "--images", "{folder}/images", "--labels",
                                "{folder}/labels", "--classes", "a,b", "--output-dir", "{tmp}/never"],
     ["2 classes", "model.num_classes"]),
    ("label-out-of-range", ["train", "--dataset", "folder", "--images", "{bad_label}/images", "--labels",
                            "{bad_label}/labels", "--classes", "{bad_label}/classes.txt", "model.num_classes=3",
                            "data.num_workers=0", "--output-dir", "{tmp}/bad_label_run", *TINY[:4]],
     ["img1.png", "200"]),
    ("unreadable-image-mid-run", ["train", "--dataset", "folder", "--images", "{unreadable}/images", "--labels",
                                  "{unreadable}/labels", "--classes", "{unreadable}/classes.txt",
                                  "model.num_classes=3", "data.num_workers=1", "data.val_fraction=0.25",
                                  "--output-dir", "{tmp}/unreadable_run", *TINY[:4]], ["img2.png"]),
    ("hf-folder-missing", ["train", "--dataset", "hf", "--hf-name", "{tmp}/no_such_dataset", "--classes", "a,b",
                           "--output-dir", "{tmp}/never"], ["no_such_dataset", "save_to_disk"]),
    ("hf-hub-offline", ["train", "--dataset", "hf", "--hf-name", "someone/segments", "--classes", "a,b",
                        "--output-dir", "{tmp}/never"], ["hf download someone/segments --repo-type dataset"]),
    ("hf-without-classes", ["train", "--dataset", "hf", "--hf-name", "someone/segments", "--output-dir",
                            "{tmp}/never"], ["--classes"]),
    # ---- no lost work -------------------------------------------------------------------------------
    ("second-run-refused", ["train", "--output-dir", "{run}", *TINY], ["--resume", "--output-dir", "--overwrite"]),
    ("resume-other-model", ["train", "--output-dir", "{run}", "--resume", *TINY, "model.num_queries=12"],
     ["model.num_queries", "20", "12"]),
    ("resume-from-missing", ["train", "--output-dir", "{tmp}/fresh", "--resume-from", "{tmp}/nope.pt", *TINY],
     ["nope.pt", "does not exist"]),
    ("all-checkpoints-corrupt", ["train", "--output-dir", "{corrupt_run}", "--resume", *TINY],
     ["no usable checkpoint", "--output-dir"]),
    ("non-finite-loss", ["train", "--output-dir", "{tmp}/nan_run", *TINY, "--max-iters", "4", "solver.lr=1e30",
                         "solver.clip_grad_norm=null", "solver.warmup_iters=0"],
     ["non-finite loss at step 2", "last good checkpoint is", "step_0000001.pt", "shapes-"]),
    ("output-dir-unwritable", ["train", "--output-dir", "{tmp}/a_file/sub", *TINY], ["cannot write", "--output-dir"]),
    # ---- checkpoints ----------------------------------------------------------------------------------
    ("config-json-broken", ["evaluate", "--checkpoint", "{broken_config}", "--out", "{tmp}/r.json"],
     ["config.json", "not valid JSON"]),
    ("weights-truncated", ["evaluate", "--checkpoint", "{truncated}", "--out", "{tmp}/r.json"],
     ["model.safetensors", "truncated or corrupt"]),
    ("config-json-wrong-type", ["evaluate", "--checkpoint", "{bad_type}", "--out", "{tmp}/r.json"],
     ["num_queries", "many"]),
    ("run-dir-not-model", ["evaluate", "--checkpoint", "{run}", "--out", "{tmp}/r.json"], ["model", "pass that"]),
    ("checkpoint-missing", ["evaluate", "--checkpoint", "{tmp}/nowhere", "--out", "{tmp}/r.json"],
     ["nowhere", "does not exist"]),
    ("checkpoint-is-a-pt-file", ["predict", "{tmp}/photo.txt", "--checkpoint", "{run}/checkpoints/step_0000002.pt",
                                 "--out-dir", "{tmp}/pred"], [".pt", "--resume"]),
    ("hub-id-offline", ["evaluate", "--checkpoint", "facebook/maskformer-swin-tiny-ade", "--out", "{tmp}/r.json"],
     ["hf download", "facebook/maskformer-swin-tiny-ade"]),
    ("evaluate-out-suffix", ["evaluate", "--checkpoint", "{model}", "--out", "{tmp}/results.txt"], [".json", ".csv"]),
    ("evaluate-out-unwritable", ["evaluate", "--checkpoint", "{model}", "--out", "{tmp}/a_file/r.json"],
     ["cannot write", "--out"]),
    ("predict-image-missing", ["predict", "{tmp}/missing.jpg", "--checkpoint", "{model}", "--out-dir", "{tmp}/pred"],
     ["missing.jpg"]),
    ("predict-not-an-image", ["predict", "{tmp}/photo.txt", "--checkpoint", "{model}", "--out-dir", "{tmp}/pred"],
     ["photo.txt"]),
    ("demo-image-missing", ["demo", "--preset", "tiny", "--image", "{tmp}/missing.jpg", "--out", "{tmp}/d.png"],
     ["missing.jpg"]),
]


@pytest.mark.parametrize("name, argv, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(name, argv, words, paths, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(fill(argv, paths))
    message = exit_info.value.code
    assert isinstance(message, str), f"exit code {message!r} instead of a message"
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message and "Traceback" not in capsys.readouterr().err
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_second_run_leaves_the_first_untouched(paths):
    run = paths["run"]
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit):
        main(["train", "--output-dir", str(run), *TINY])
    assert before == {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, words", [
    (["train", "solver.max_iters=5.5"], ["solver.max_iters"]),
    (["evaluate", "--checkpoint", "{broken_config}", "--out", "{tmp}/r.json"], ["not valid JSON"]),
])
def test_bad_input_end_to_end(argv, words, paths):
    result = subprocess.run([sys.executable, "-m", "maskformer", *fill(argv, paths)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    import errno

    import maskformer.checkpoint

    def no_space(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maskformer.checkpoint.torch, "save", no_space)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--output-dir", str(tmp_path / "run"), *TINY])
    message = exit_info.value.code
    assert "disk full" in message and "step_0000001.pt" in message and "\n" not in message
