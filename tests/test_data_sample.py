"""write_ade20k_sample: the official layout, the label rule through ADE20K, sizes, counts, determinism."""

import numpy as np
import pytest
import torch
from PIL import Image

from maskformer.data import ADE20K, ADE20K_CLASSES, read_label, write_ade20k_sample
from maskformer.data.sample import SAMPLE_CLASSES


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    return write_ade20k_sample(tmp_path_factory.mktemp("ade"), num_train=5, num_val=3, size=(48, 64), seed=3)


def test_official_layout_and_counts(sample_root):
    assert sample_root.name == "ADEChallengeData2016"
    train_images = sorted(p.name for p in (sample_root / "images" / "training").iterdir())
    assert train_images == [f"ADE_train_{i:08d}.jpg" for i in range(1, 6)]
    val_labels = sorted(p.name for p in (sample_root / "annotations" / "validation").iterdir())
    assert val_labels == [f"ADE_val_{i:08d}.png" for i in range(1, 4)]
    with Image.open(sample_root / "annotations" / "training" / "ADE_train_00000001.png") as label:
        assert label.mode == "L" and label.size == (64, 48)  # PIL sizes are (W, H)
    with Image.open(sample_root / "images" / "training" / "ADE_train_00000001.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (64, 48)
    assert len(ADE20K(sample_root.parent, "training")) == 5 and len(ADE20K(sample_root, "validation")) == 3


def test_label_rule_holds_on_every_pixel(sample_root):
    data = ADE20K(sample_root, "training")
    for i in range(len(data)):
        raw = read_label(data.label_paths[i])  # [H, W] values as written
        assert raw.shape == (48, 64)
        assert set(raw.unique().tolist()) <= {0, *SAMPLE_CLASSES} and (raw == 0).any() and (raw > 0).any()
        semantic = data[i]["semantic"]
        assert (semantic[raw == 0] == 255).all()
        torch.testing.assert_close(semantic[raw > 0], raw[raw > 0] - 1)
        assert data[i]["image"].shape == (3, 48, 64)


def test_scenes_use_ade20k_classes_with_their_colours(sample_root):
    data = ADE20K(sample_root, "training")
    present = set()
    for i in range(len(data)):
        present |= set(data[i]["semantic"].unique().tolist()) - {255}
    assert len(present) >= 5 and all(0 <= c < len(ADE20K_CLASSES) for c in present)
    # the sky (label 3 -> class 2) is painted in its benchmark colour, up to shading and noise
    for image_path, label_path in zip(data.image_paths, data.label_paths):
        raw = np.asarray(Image.open(label_path))
        if (raw == 3).sum() > 100:
            rgb = np.asarray(Image.open(image_path)).astype(float)[raw == 3].mean(0)
            assert np.argmin(rgb) == 0 and rgb[1] > 150 and rgb[2] > 150  # cyan: (6, 230, 230)
            break
    else:
        pytest.fail("no image with sky in the sample")


def test_same_seed_same_files_other_seed_other_files(tmp_path, sample_root):
    again = write_ade20k_sample(tmp_path / "a", num_train=5, num_val=3, size=(48, 64), seed=3)
    other = write_ade20k_sample(tmp_path / "b", num_train=5, num_val=3, size=(48, 64), seed=4)
    for split in ("images/training", "annotations/training", "annotations/validation"):
        for path in (sample_root / split).iterdir():
            assert path.read_bytes() == (again / split / path.name).read_bytes(), path.name
    label = "annotations/training/ADE_train_00000001.png"
    assert not np.array_equal(np.asarray(Image.open(sample_root / label)), np.asarray(Image.open(other / label)))


def test_image_i_does_not_depend_on_the_counts(tmp_path, sample_root):
    fewer = write_ade20k_sample(tmp_path, num_train=2, num_val=1, size=(48, 64), seed=3)
    name = "annotations/validation/ADE_val_00000001.png"
    assert (fewer / name).read_bytes() == (sample_root / name).read_bytes()
    assert len(list((fewer / "images" / "training").iterdir())) == 2


def test_rewriting_is_allowed_but_other_files_are_protected(tmp_path):
    root = write_ade20k_sample(tmp_path, num_train=2, num_val=1, size=(32, 32))
    write_ade20k_sample(tmp_path, num_train=2, num_val=1, size=(32, 32))  # same names: replaced
    (root / "images" / "training" / "ADE_train_00000099.jpg").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="ADE_train_00000099.jpg"):
        write_ade20k_sample(tmp_path, num_train=2, num_val=1, size=(32, 32))
    assert (root / "images" / "training" / "ADE_train_00000099.jpg").read_bytes() == b"real data"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="size"):
        write_ade20k_sample(tmp_path, size=(8, 8))
    with pytest.raises(ValueError, match="num_train"):
        write_ade20k_sample(tmp_path, num_train=0)
