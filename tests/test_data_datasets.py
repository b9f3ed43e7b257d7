"""ADE20K, SegmentationFolder and datasets.Dataset on small trees built here, and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from maskformer.data import (
    ADE20K,
    ADE20K_CLASSES,
    HFSegmentationDataset,
    SegmentationFolder,
    collate,
    eval_transforms,
    train_transforms,
)
from maskformer.data.io import DataError, MissingFileError


def write_pair(images, labels, name, size=(24, 32), values=(0, 1, 5, 150), image_mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    H, W = size
    label = np.array(values, dtype=np.uint8)[rng.integers(0, len(values), size=(H // 8, W // 8))]
    Image.fromarray(label.repeat(8, 0).repeat(8, 1)).save(labels / f"{name}.png")
    pixels = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(image_mode)
    image.save(images / f"{name}.{'jpg' if image_mode in ('RGB', 'L') else 'png'}")


@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
    for i in range(3):
        write_pair(root / "images" / "training", root / "annotations" / "training", f"ADE_train_{i:08d}", seed=i)
    write_pair(root / "images" / "validation", root / "annotations" / "validation", "ADE_val_00000001", size=(40, 24))
    return tmp_path


def test_ade20k_reads_the_official_layout(ade_root):
    train = ADE20K(ade_root, "training")  # the parent of ADEChallengeData2016 works too
    assert len(train) == 3 and train.num_classes == 150 and train.class_names == list(ADE20K_CLASSES)
    sample = train[0]
    assert sample["image"].shape == (3, 24, 32) and sample["image"].dtype == torch.float32
    assert set(sample["semantic"].unique().tolist()) <= {255, 0, 4, 149}  # 0 -> ignore, l -> l-1
    val = ADE20K(ade_root / "ADEChallengeData2016", "validation", transforms=eval_transforms(short_edge=48))
    assert val[0]["image_size"] == (80, 48) and val[0]["original_size"] == (40, 24)


def test_ade20k_in_a_dataloader(ade_root):
    torch.manual_seed(0)
    data = ADE20K(ade_root, "training", transforms=train_transforms(crop_size=32))
    batch = next(iter(DataLoader(data, batch_size=2, collate_fn=collate)))
    assert batch["images"].shape == (2, 3, 32, 32) and len(batch["targets"]) == 2
    assert all(t["labels"].max() < 150 for t in batch["targets"])


def test_ade20k_missing_root_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ade20k\.py: ADE20K not found at .*nowhere.*ADEChallengeData2016\.zip"):
        ADE20K(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"split must be 'training' or 'validation', got 'train'"):
        ADE20K(tmp_path, "train")


def test_ade20k_from_hub_offline_message(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not load 'scene_parse_150'.*ConnectionError.*ADE20K\(root"):
        ADE20K.from_hub("validation")


# ---------------------------------------------------------------------------- SegmentationFolder


@pytest.fixture
def folder(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(2):
        write_pair(images, labels, f"photo{i}", values=(0, 1, 2, 255), seed=i)
    return images, labels


def test_folder_reads_custom_data(folder):
    data = SegmentationFolder(*folder, class_names=["road", "car", "tree"])
    assert len(data) == 2 and data.names == ["photo0", "photo1"]
    sample = data[1]
    assert set(sample["targets"]["labels"].tolist()) <= {0, 1, 2}
    assert sample["name"].endswith("photo1.png")


def test_folder_images_without_labels_and_the_reverse(folder):
    images, labels = folder
    Image.new("RGB", (8, 8)).save(images / "lonely.jpg")
    with pytest.raises(FileNotFoundError, match=r"1 images in .* have no label PNG .*: lonely\.jpg"):
        SegmentationFolder(images, labels, ["a", "b", "c"])
    (images / "lonely.jpg").unlink()
    Image.new("L", (8, 8)).save(labels / "orphan.png")
    with pytest.raises(FileNotFoundError, match=r"1 label PNGs in .* have no image .*: orphan\.png"):
        SegmentationFolder(images, labels, ["a", "b", "c"])
    with pytest.raises(FileNotFoundError, match=r"images folder .*missing does not exist"):
        SegmentationFolder(images.parent / "missing", labels, ["a"])


def test_folder_size_mismatch_names_both_files(folder):
    images, labels = folder
    Image.new("L", (10, 10)).save(labels / "photo0.png")
    with pytest.raises(ValueError, match=r"image .*photo0\.jpg is \(24, 32\) \(H, W\) but its label .*photo0\.png is \(10, 10\)"):
        SegmentationFolder(images, labels, ["a", "b", "c"])[0]


def test_folder_label_values_out_of_range(folder):
    data = SegmentationFolder(*folder, class_names=["a", "b"])  # labels hold 2, but only 0..1 exist
    with pytest.raises(ValueError, match=r"photo0\.png has label values \[2\] outside 0\.\.1 .*reduce_labels=True"):
        data[0]


def test_truncated_image_names_the_file(folder):
    images, labels = folder
    data = (images / "photo1.jpg").read_bytes()
    (images / "photo1.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot read .*photo1\.jpg .*truncated or not an image"):
        SegmentationFolder(images, labels, ["a", "b", "c"])[1]
    (images / "photo1.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read .*photo1\.jpg"):
        SegmentationFolder(images, labels, ["a", "b", "c"])[1]


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_grayscale_rgba_and_16_bit_images_are_read_as_rgb(tmp_path, mode):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(labels / "x.png")
    if mode == "I;16":
        Image.fromarray(np.full((16, 16), 257 * 200, dtype=np.uint16)).save(images / "x.png")
    else:
        Image.new(mode, (16, 16), 200 if mode == "L" else (200, 200, 200, 10)).save(images / "x.png")
    sample = SegmentationFolder(images, labels, ["a"])[0]
    assert sample["image"].shape == (3, 16, 16)
    expected = (200 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(sample["image"][:, 0, 0], expected)


def test_colour_labels_are_refused(folder):
    images, labels = folder
    Image.new("RGB", (32, 24), (255, 0, 0)).save(labels / "photo0.png")
    with pytest.raises(ValueError, match=r"label .*photo0\.png has PIL mode 'RGB' with colours; .*class ids"):
        SegmentationFolder(images, labels, ["a", "b", "c"])[0]


def test_unreadable_and_missing_files_mid_run_are_one_line_data_errors(folder):
    images, labels = folder
    data = SegmentationFolder(images, labels, ["a", "b", "c"])  # every file was fine when the run started
    (images / "photo1.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError) as error:
        data[1]
    assert "photo1.jpg" in str(error.value) and "\n" not in str(error.value)
    (labels / "photo0.png").unlink()
    with pytest.raises(MissingFileError) as error:
        data[0]
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, DataError)
    assert "photo0.png does not exist" in str(error.value) and "\n" not in str(error.value)


def test_every_bad_sample_file_is_a_data_error(folder):
    images, labels = folder
    Image.new("L", (10, 10)).save(labels / "photo0.png")  # wrong size
    Image.new("RGB", (32, 24), (255, 0, 0)).save(labels / "photo1.png")  # colours, not class ids
    data = SegmentationFolder(images, labels, ["a", "b"])
    for index in (0, 1):
        with pytest.raises(DataError, match=rf"photo{index}\.png"):
            data[index]
    write_pair(images, labels, "photo0", values=(0, 2))  # class 2 of 2 classes
    with pytest.raises(DataError, match=r"photo0\.png has label values \[2\]"):
        data[0]


def folder_with_16_bit_label(tmp_path, stored, other=7):
    """One black image and a 16-bit label PNG (PIL mode "I;16"): top half `stored`, bottom half `other`."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(images / "x.png")
    label = np.full((16, 16), other, dtype=np.uint16)
    label[:8] = stored
    image = Image.fromarray(label)
    assert image.mode == "I;16"
    image.save(labels / "x.png")
    assert Image.open(labels / "x.png").mode in ("I;16", "I")  # Pillow 10.0 reads 16-bit PNGs as "I"
    return images, labels


def test_16_bit_labels_keep_values_of_256_and_more(tmp_path):
    images, labels = folder_with_16_bit_label(tmp_path, 300)
    names = [f"class{i}" for i in range(400)]
    data = SegmentationFolder(images, labels, names, eval_transforms(short_edge=24), ignore_index=65535)
    sample = data[0]
    assert sample["original_semantic"].unique().tolist() == [7, 300]
    assert sample["semantic"].unique().tolist() == [7, 300] and sample["targets"]["labels"].tolist() == [7, 300]
    batch = collate([sample], ignore_index=65535)
    assert batch["semantic"].unique().tolist() == [7, 300, 65535]  # padding is the only ignore


def test_16_bit_label_values_out_of_range_name_the_file_and_the_value(tmp_path):
    images, labels = folder_with_16_bit_label(tmp_path, 300)
    with pytest.raises(DataError, match=r"labels/x\.png has label values \[300\] outside 0\.\.149 \(and 255 = ignore\)"):
        SegmentationFolder(images, labels, [f"class{i}" for i in range(150)])[0]


def test_an_ignore_index_that_is_also_a_class_is_refused(tmp_path):
    images, labels = folder_with_16_bit_label(tmp_path, 255)
    with pytest.raises(ValueError, match=r"ignore_index=255 is also a class id \(400 classes, 0\.\.399\).*65535"):
        SegmentationFolder(images, labels, [f"class{i}" for i in range(400)])  # class 255 would vanish
    data = SegmentationFolder(images, labels, [f"class{i}" for i in range(400)], ignore_index=65535)
    assert data[0]["targets"]["labels"].tolist() == [7, 255]


def test_reduce_labels_on_16_bit_labels(tmp_path):
    images, labels = folder_with_16_bit_label(tmp_path, 256, other=0)  # stored 256 = class 255, 0 = unlabelled
    with pytest.raises(DataError, match=r"x\.png has label values \[256\] outside 0\.\.150 \(0 = unlabelled"):
        SegmentationFolder(images, labels, [f"class{i}" for i in range(150)], reduce_labels=True)[0]
    data = SegmentationFolder(images, labels, [f"class{i}" for i in range(400)], reduce_labels=True, ignore_index=65535)
    assert data[0]["semantic"].unique().tolist() == [255, 65535] and data[0]["targets"]["labels"].tolist() == [255]


def test_out_of_range_labels_are_reported_as_stored(ade_root):
    annotations = ade_root / "ADEChallengeData2016" / "annotations" / "training"
    label = np.array(Image.open(annotations / "ADE_train_00000000.png"))
    label[0, 0] = 200  # as stored; reduce_labels would make it 199
    Image.fromarray(label).save(annotations / "ADE_train_00000000.png")
    with pytest.raises(DataError, match=r"ADE_train_00000000\.png has label values \[200\] outside 0\.\.150 "):
        ADE20K(ade_root, "training")[0]


# ---------------------------------------------------------------------------- datasets.Dataset


def hub_like_dataset(n=2, size=(16, 24)):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]
    labels = [Image.fromarray(rng.integers(0, 4, size, dtype=np.uint8)) for _ in range(n)]
    return datasets.Dataset.from_dict({"image": images, "annotation": labels})


def test_datasets_adapter_matches_the_folder_rules():
    dataset = hub_like_dataset()
    data = HFSegmentationDataset(dataset, ["a", "b", "c"], reduce_labels=True)
    sample = data[1]
    raw = torch.from_numpy(np.array(dataset[1]["annotation"])).long()
    assert torch.equal(sample["semantic"], torch.where(raw == 0, 255, raw - 1))
    batch = collate([data[0], data[1]])
    assert batch["images"].shape == (2, 3, 32, 32) and batch["image_sizes"] == [(16, 24)] * 2


def test_datasets_adapter_errors():
    dataset = hub_like_dataset()
    with pytest.raises(KeyError, match=r"label_column='label' is not a column .*\['image', 'annotation'\]"):
        HFSegmentationDataset(dataset, ["a"], label_column="label")
    with pytest.raises(ValueError, match=r"row 0 has label values \[3\] outside 0\.\.2"):
        HFSegmentationDataset(dataset, ["a", "b", "c"])[0]
    mismatched = [{"image": np.zeros((8, 8, 3), dtype=np.uint8), "annotation": np.zeros((8, 9), dtype=np.uint8)}]
    with pytest.raises(ValueError, match=r"row 0: image size \(8, 8\) differs from annotation size \(8, 9\)"):
        HFSegmentationDataset(mismatched, ["a"])[0]
