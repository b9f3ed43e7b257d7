"""predict() on photos, and the `predict` / `evaluate` commands, on tiny random models."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from maskformer import MaskFormer, MaskFormerConfig
from maskformer.__main__ import main
from maskformer.baseline import PerPixelBaseline
from maskformer.data import ADE20K_PALETTE, distinct_palette
from maskformer.predict import default_class_names, default_palette, predict


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny MaskFormer (7 classes, as Shapes) and a tiny per-pixel baseline, saved with save_pretrained."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    MaskFormer(MaskFormerConfig.tiny(num_classes=7)).save_pretrained(root / "maskformer")
    PerPixelBaseline(MaskFormerConfig.tiny(num_classes=7, architecture="per_pixel")).save_pretrained(root / "per_pixel")
    return root


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, size in (("street.jpg", (48, 80)), ("room.png", (64, 56))):
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 16
        image.load()


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_predict_writes_pngs(checkpoints, photos, tmp_path, task):
    model = MaskFormer.from_pretrained(checkpoints / "maskformer")
    model.train()
    written = predict(model, photos, tmp_path / "out", task=task, short_edge=64,
                      class_names=[f"thing {i}" for i in range(7)])
    assert written == [tmp_path / "out" / f"street_{task}.png", tmp_path / "out" / f"room_{task}.png"]
    for path in written:
        assert_png(path)
    assert model.training  # restored


def test_predict_with_the_baseline_and_duplicate_names(checkpoints, photos, tmp_path):
    model = PerPixelBaseline.from_pretrained(checkpoints / "per_pixel")
    written = predict(model, [photos[0], photos[0]], tmp_path / "out", short_edge=64)
    assert len(set(written)) == 2  # the same stem twice does not overwrite
    for path in written:
        assert_png(path)
    with pytest.raises(ValueError, match="panoptic.*needs a MaskFormer"):
        predict(model, photos[:1], tmp_path / "out", task="panoptic", short_edge=64)


def test_missing_or_unreadable_image_is_named(checkpoints, photos, tmp_path):
    model = MaskFormer.from_pretrained(checkpoints / "maskformer")
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        predict(model, [photos[0], missing], tmp_path / "out", short_edge=64)
    assert not (tmp_path / "out").exists()  # every image is read before anything is written
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        predict(model, [broken], tmp_path / "out", short_edge=64)


def test_default_names_and_palette():
    model = MaskFormer(MaskFormerConfig.tiny(num_classes=3, id2label={0: "a", 1: "b", 2: "c"}))
    assert default_class_names(model) == ["a", "b", "c"]
    assert default_palette(150) == list(ADE20K_PALETTE)
    colours = default_palette(12)
    assert colours == list(distinct_palette(12)) and len(set(colours)) == 12


def test_cli_predict(checkpoints, photos, tmp_path, capsys):
    out = tmp_path / "pngs"
    main(["predict", *map(str, photos), "--checkpoint", str(checkpoints / "maskformer"), "--out-dir", str(out),
          "--short-edge", "64", "--task", "panoptic", "--device", "cpu"])
    assert sorted(p.name for p in out.iterdir()) == ["panoptic.json", "room_panoptic.png", "room_panoptic_ids.png",
                                                      "street_panoptic.png", "street_panoptic_ids.png"]
    assert capsys.readouterr().out.count("wrote") == 3
    with pytest.raises(SystemExit, match="nope.jpg"):
        main(["predict", str(tmp_path / "nope.jpg"), "--checkpoint", str(checkpoints / "maskformer")])


def test_cli_offline_hub_id_is_a_message(photos, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(SystemExit, match="facebook/maskformer-swin-tiny-ade.*hf download facebook/maskformer-swin-tiny-ade"):
        main(["predict", str(photos[0]), "--checkpoint", "facebook/maskformer-swin-tiny-ade"])


@pytest.mark.parametrize("architecture", ["maskformer", "per_pixel"])
def test_cli_evaluate_on_shapes(checkpoints, tmp_path, capsys, architecture):
    out = tmp_path / "results.json"
    main(["evaluate", "--checkpoint", str(checkpoints / architecture), "--dataset", "shapes", "--limit", "4",
          "--short-edge", "64", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert results["num_images"] == 4 and results["short_edges"] == [64] and results["flip"] is False
    assert len(results["IoU"]) == 7 and "background" in results["per_class"]
    assert printed.startswith("mIoU") and "background" in printed and f"wrote {out}" in printed


def test_cli_evaluate_multi_scale_flip_to_csv(checkpoints, tmp_path):
    out = tmp_path / "iou.csv"
    main(["evaluate", "--checkpoint", str(checkpoints / "per_pixel"), "--dataset", "shapes", "--limit", "2",
          "--short-edge", "32", "--multi-scale", "--flip", "--device", "cpu", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0] == "class_id,class_name,IoU,accuracy" and len(lines) == 8


def test_cli_evaluate_bad_inputs_are_messages(checkpoints, tmp_path):
    with pytest.raises(SystemExit, match="x does not exist: pass a checkpoint directory"):
        main(["evaluate", "--checkpoint", str(tmp_path / "missing" / "x"), "--dataset", "shapes"])
    with pytest.raises(SystemExit, match="ADE20K not found"):
        main(["evaluate", "--checkpoint", str(checkpoints / "maskformer"), "--data-root", str(tmp_path)])
