"""COCOPanoptic and COCOInstances on small trees written in the official formats, and their errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from maskformer.data import COCOInstances, COCOPanoptic, collate
from maskformer.data.coco_sample import STUFF_ID, write_coco_sample
from maskformer.data.io import DataError, MissingFileError

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_coco_sample(tmp_path_factory.mktemp("coco"), num_train=8, num_val=2, image_size=48, crowd_fraction=0.5)


IMAGES, PNGS, PANOPTIC_JSON, INSTANCES_JSON = ("train2017", "panoptic_train2017", "annotations/panoptic_train2017.json",
                                               "annotations/instances_train2017.json")


def panoptic(tree, **kw):
    return COCOPanoptic(tree / IMAGES, tree / PNGS, tree / PANOPTIC_JSON, **kw)


def coco_ids(tree, index):
    rgb = np.asarray(Image.open(tree / PNGS / f"{index:06d}.png")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_panoptic_targets_are_the_non_crowd_segments(tree):
    dataset = panoptic(tree)
    content = json.loads((tree / PANOPTIC_JSON).read_text())
    assert len(dataset) == 8 and dataset.num_classes == 7
    assert dataset.class_names[-1] == "background" and dataset.stuff_ids == [6] and dataset.thing_ids == list(range(6))
    assert dataset.contiguous_to_category == [1, 2, 3, 4, 5, 6, STUFF_ID]
    crowds = 0
    for index in range(len(dataset)):
        sample = dataset[index]
        segments = content["annotations"][index]["segments_info"]
        ids = coco_ids(tree, index)
        kept = [s for s in segments if not s["iscrowd"]]
        crowds += len(segments) - len(kept)
        # one target per non-crowd segment, in JSON order: things per instance, the stuff class once
        assert sample["targets"]["labels"].tolist() == [dataset.category_to_contiguous[s["category_id"]] for s in kept]
        for mask, s in zip(sample["targets"]["masks"], kept):
            assert torch.equal(mask, torch.from_numpy(ids == s["id"]))
        covered = sample["targets"]["masks"].any(0).numpy()
        for s in segments:
            if s["iscrowd"]:  # crowd: in no target, but in the semantic map with its class
                assert not covered[ids == s["id"]].any()
            label = dataset.category_to_contiguous[s["category_id"]]
            assert (sample["semantic"].numpy()[ids == s["id"]] == label).all()
        assert (sample["semantic"].numpy()[ids == 0] == 255).all()  # void
        assert [s["coco_id"] for s in sample["segments_info"]] == [s["id"] for s in segments]
        assert torch.equal(sample["original_instance"], sample["instance"])
    assert crowds >= 2
    batch = collate([dataset[0], dataset[1]])
    assert batch["images"].shape == (2, 3, 64, 64) and len(batch["targets"]) == 2


def test_panoptic_transforms_move_the_segments_with_the_image(tree):
    plain, flipped = panoptic(tree)[3], panoptic(tree, transforms=v2.RandomHorizontalFlip(p=1.0))[3]
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert torch.equal(flipped["targets"]["masks"], plain["targets"]["masks"].flip(-1))
    assert torch.equal(flipped["original_instance"], plain["original_instance"])  # evaluation keeps the original


def test_instances_read_rle_polygons_and_uncompressed_rle(tree, tmp_path):
    from pycocotools import mask as mask_utils

    dataset = COCOInstances(tree / IMAGES, tree / INSTANCES_JSON)
    content = json.loads((tree / INSTANCES_JSON).read_text())
    assert dataset.num_classes == 6 and dataset.thing_ids == list(range(6)) and dataset.stuff_ids == []
    sample = dataset[0]
    anns = [a for a in content["annotations"] if a["image_id"] == 0]
    kept = [a for a in anns if not a["iscrowd"]]
    assert sample["targets"]["labels"].tolist() == [dataset.category_to_contiguous[a["category_id"]] for a in kept]
    for mask, a in zip(sample["targets"]["masks"], kept):
        assert torch.equal(mask, torch.from_numpy(mask_utils.decode(a["segmentation"]).astype(bool)))
    assert (sample["semantic"][~sample["targets"]["masks"].any(0)] != 0).all()

    # a polygon (a 10 x 10 square) and an uncompressed RLE of the same square in one 48 x 48 image
    square = np.zeros((48, 48), np.uint8)
    square[5:15, 20:30] = 1
    column_major = square.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.r_[0, column_major, 0]))
    counts = np.diff(np.r_[0, changes, column_major.size]).tolist()  # alternating runs, background first, all pixels
    assert sum(counts) == 48 * 48 and len(counts) % 2 == 1
    polygon = [[20, 5, 30, 5, 30, 15, 20, 15]]
    content["annotations"] = [
        {"id": 1, "image_id": 0, "category_id": 2, "segmentation": polygon, "iscrowd": 0},
        {"id": 2, "image_id": 0, "category_id": 3, "segmentation": {"size": [48, 48], "counts": counts}, "iscrowd": 0},
    ]
    (tmp_path / "instances.json").write_text(json.dumps(content))
    dataset = COCOInstances(tree / IMAGES, tmp_path / "instances.json")
    polygon_mask = dataset.decode(content["annotations"][0], 48, 48)
    assert abs(int(polygon_mask.sum()) - 100) <= 25 and polygon_mask[8:12, 23:27].all()  # the rasterised polygon
    assert np.array_equal(dataset.decode(content["annotations"][1], 48, 48), square.astype(bool))
    # counts that stop short of the last pixel would decode to uninitialised memory: refused in one line instead
    short = {"id": 3, "segmentation": {"size": [48, 48], "counts": counts[:-1]}}
    with pytest.raises(DataError, match="annotation 3 has an uncompressed RLE of size \\[48, 48\\] whose counts cover") as refused:
        dataset.decode(short, 48, 48)
    assert "not a polygon list" not in str(refused.value) and str(48 * 48 - counts[-1]) in str(refused.value)
    # overlapping instances: the larger is painted first, so the smaller keeps the shared pixels
    sample = dataset[0]
    smaller = int(np.argmin([polygon_mask.sum(), square.sum()]))
    assert sample["targets"]["masks"][smaller].sum() == min(polygon_mask.sum(), square.sum())


def _edited(tree, tmp_path, name, edit):
    content = json.loads((tree / "annotations" / name).read_text())
    edit(content)
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return path


def test_panoptic_errors_name_the_file(tree, tmp_path):
    with pytest.raises(MissingFileError, match="panoptic JSON .*nowhere.json does not exist"):
        COCOPanoptic(tree / IMAGES, tree / PNGS, tmp_path / "nowhere.json")
    with pytest.raises(MissingFileError, match="panoptic PNG folder"):
        COCOPanoptic(tree / IMAGES, tmp_path / "none", tree / PANOPTIC_JSON)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read panoptic JSON"):
        COCOPanoptic(tree / IMAGES, tree / PNGS, tmp_path / "broken.json")

    def unknown_category(c):
        c["annotations"][2]["segments_info"][0]["category_id"] = 999

    with pytest.raises(DataError, match="image 2, segment .* has category_id 999"):
        COCOPanoptic(tree / IMAGES, tree / PNGS, _edited(tree, tmp_path, "panoptic_train2017.json", unknown_category))

    def unknown_image(c):
        c["annotations"][1]["image_id"] = 12345

    with pytest.raises(DataError, match="image_id 12345, which 'images' does not list"):
        COCOPanoptic(tree / IMAGES, tree / PNGS, _edited(tree, tmp_path, "panoptic_train2017.json", unknown_image))

    def unlisted_segment(c):
        c["annotations"][4]["segments_info"].pop()

    edited = _edited(tree, tmp_path, "panoptic_train2017.json", unlisted_segment)
    dataset = COCOPanoptic(tree / IMAGES, tree / PNGS, edited)
    dataset[3]  # the other images still load
    with pytest.raises(DataError, match="000004.png holds segment ids .* that the JSON's segments_info does not list"):
        dataset[4]

    def missing_files(c):
        c["images"][0]["file_name"] = "gone.png"
        c["annotations"][1]["file_name"] = "gone.png"

    edited = _edited(tree, tmp_path, "panoptic_train2017.json", missing_files)
    dataset = COCOPanoptic(tree / IMAGES, tree / PNGS, edited)
    with pytest.raises(MissingFileError, match="gone.png does not exist"):
        dataset[0]
    with pytest.raises(MissingFileError, match="panoptic PNG .*gone.png does not exist"):
        dataset[1]


def test_instance_errors_name_the_file(tree, tmp_path):
    with pytest.raises(MissingFileError, match="instance JSON"):
        COCOInstances(tree / IMAGES, tmp_path / "nowhere.json")

    def unknown_category(c):
        c["annotations"][0]["category_id"] = 999

    with pytest.raises(DataError, match="annotation 1 has category_id 999"):
        COCOInstances(tree / IMAGES, _edited(tree, tmp_path, "instances_train2017.json", unknown_category))

    def bad_segmentation(c):
        c["annotations"][0]["segmentation"] = {"size": [48, 48]}

    dataset = COCOInstances(tree / IMAGES, _edited(tree, tmp_path, "instances_train2017.json", bad_segmentation))
    with pytest.raises(DataError, match="annotation 1 has a segmentation that is not a polygon list or an RLE"):
        dataset[0]  # image 0 holds annotation 1

    def wrong_size(c):
        c["images"][0]["height"] = 50

    with pytest.raises(DataError, match="is 48x48 but instances_train2017.json says 50x48"):
        COCOInstances(tree / IMAGES, _edited(tree, tmp_path, "instances_train2017.json", wrong_size))[0]


def test_detr_panoptic_augmentation_moves_the_masks_with_the_image():
    from torchvision import tv_tensors

    from maskformer.data.coco_transforms import detr_panoptic_transforms

    H, W = 480, 640
    ids = torch.arange(H * W).view(H, W)  # every pixel its own id: the masks must follow the image pixel for pixel
    image = torch.stack([ids % 256, ids // 256 % 256, ids // 65536]).to(torch.uint8)
    transform = detr_panoptic_transforms()
    torch.manual_seed(0)
    sizes = set()
    for _ in range(12):
        out_image, out_semantic, out_ids = transform(tv_tensors.Image(image), tv_tensors.Mask(ids.clone()),
                                                     tv_tensors.Mask(ids.clone()))
        assert out_image.shape[-2:] == out_semantic.shape == out_ids.shape
        assert torch.equal(out_semantic, out_ids)
        short, long = min(out_ids.shape), max(out_ids.shape)
        assert short in range(480, 801, 32) or long == 1333
        sizes.add(tuple(out_ids.shape))
    assert len(sizes) > 3


def test_coco_panoptic_configs_mirror_the_original():
    from maskformer.recipes import load_config

    r50 = load_config("coco-panoptic/maskformer_panoptic_R50_bs64_554k")
    solver = r50.solver
    assert (solver.batch_size, solver.max_iters, solver.lr, solver.warmup_iters) == (64, 554400, 1e-4, 10)
    assert (r50.data.dataset, r50.data.task, r50.data.augmentation, r50.model.num_classes) == \
        ("coco_panoptic", "panoptic", "detr_panoptic", 133)
    assert r50.data.train_short_edges == tuple(range(480, 801, 32)) and r50.data.crop_range == (384, 600)
    large = load_config("coco-panoptic/swin/maskformer_panoptic_swin_large_IN21k_384_bs64_554k")
    assert (large.model.swin_embed_dim, large.model.swin_window_size, large.data.max_size) == (192, 12, 1000)
    assert (large.solver.lr, large.solver.weight_decay, large.solver.backbone_multiplier) == (6e-5, 0.01, 1.0)


def test_coco_datasets_by_name(tree):
    from maskformer.data.build import build_dataset

    assert len(build_dataset("coco_panoptic", "train", root=tree)) == 8
    assert build_dataset("coco_instances", "val", root=tree, num_samples=1).num_classes == 6
    with pytest.raises(ValueError, match="coco_panoptic needs --data-root"):
        build_dataset("coco_panoptic", "val")


def test_ade20k_panoptic_layout_by_name(tree, tmp_path):
    """ADEChallengeData2016 after the original's datasets/prepare_ade20k_pan_seg.py: images/validation/,
    ade20k_panoptic_val/ and ade20k_panoptic_val.json."""
    import shutil

    from maskformer.data.build import build_dataset

    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(tree / "val2017", root / "images" / "validation")
    shutil.copytree(tree / "panoptic_val2017", root / "ade20k_panoptic_val")
    shutil.copy(tree / "annotations" / "panoptic_val2017.json", root / "ade20k_panoptic_val.json")
    dataset = build_dataset("ade20k_panoptic", "validation", root=root)
    assert len(dataset) == 2 and dataset.num_classes == 7 and dataset[1]["targets"]["masks"].shape[-2:] == (48, 48)


def test_hf_panoptic_rows_give_the_same_samples(tree):
    datasets = pytest.importorskip("datasets")
    from maskformer.data import HFPanoptic

    content = json.loads((tree / PANOPTIC_JSON).read_text())
    rows = datasets.Dataset.from_dict({
        "image": [Image.open(tree / IMAGES / im["file_name"]) for im in content["images"][:3]],
        "label": [Image.open(tree / PNGS / a["file_name"]) for a in content["annotations"][:3]],
        "segments_info": [a["segments_info"] for a in content["annotations"][:3]],
    }, features=datasets.Features({
        "image": datasets.Image(), "label": datasets.Image(),
        "segments_info": [{"id": datasets.Value("int64"), "category_id": datasets.Value("int64"),
                           "iscrowd": datasets.Value("int64"), "area": datasets.Value("int64"),
                           "bbox": datasets.Sequence(datasets.Value("int64"))}]}))
    hub, files = HFPanoptic(rows, content["categories"]), panoptic(tree)
    assert len(hub) == 3 and hub.class_names == files.class_names and hub.thing_ids == files.thing_ids
    for i in range(3):
        a, b = hub[i], files[i]
        for key in ("image", "semantic", "instance", "original_instance"):
            assert torch.equal(a[key], b[key]), key
        assert torch.equal(a["targets"]["masks"], b["targets"]["masks"])
        assert a["segments_info"] == b["segments_info"]
    with pytest.raises(DataError, match="no column 'panoptic'"):
        HFPanoptic(rows, content["categories"], panoptic_column="panoptic")
    broken = rows.map(lambda row: {"segments_info": row["segments_info"][1:]})
    with pytest.raises(DataError, match="row 0 'label' holds segment ids"):
        HFPanoptic(broken, content["categories"])[0]


def test_hf_panoptic_trains_from_a_saved_dataset_and_reports_pq(tree, tmp_path, capsys):
    # --dataset hf_panoptic: rows saved with save_to_disk (what the Hub's panoptic datasets give), the categories
    # from the panoptic JSON; a few steps of panoptic training, evaluated by the COCO rules (PQ)
    datasets = pytest.importorskip("datasets")
    from maskformer.cli import main

    content = json.loads((tree / PANOPTIC_JSON).read_text())

    def rows(annotations):
        return datasets.Dataset.from_dict({
            "image": [Image.open(tree / IMAGES / a["file_name"]).convert("RGB") for a in annotations],
            "label": [Image.open(tree / PNGS / a["file_name"]).convert("RGB") for a in annotations],
            "segments_info": [[{k: s[k] for k in ("id", "category_id", "iscrowd")} for s in a["segments_info"]]
                              for a in annotations]})

    datasets.DatasetDict(train=rows(content["annotations"][:6]), validation=rows(content["annotations"][6:])
                         ).save_to_disk(str(tmp_path / "saved"))
    main(["train", "--config", "shapes/maskformer_panoptic_tiny", "--dataset", "hf_panoptic",
          "--hf-name", str(tmp_path / "saved"), "--categories", str(tree / PANOPTIC_JSON), "--output-dir",
          str(tmp_path / "run"), "--max-iters", "2", "--batch-size", "2", "--progress", "lines", "data.num_workers=0",
          "data.augmentation=detr_panoptic", "data.train_short_edges=[48]", "data.crop_range=[32,48]",
          "data.max_size=64", "data.test_short_edge=48", "data.test_max_size=64", "eval_period=0", "checkpoint_period=0"])
    out = capsys.readouterr().out
    assert "on 6 images" in out and "PQ" in out and "on 2 validation images" in out
    record = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert 0 <= record["PQ"] <= 1 and "PQ_st" in record
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["extra"]["training"]["stuff_ids"] == [6]  # the JSON's one stuff category, contiguous id 6


def test_hf_panoptic_needs_its_categories(tmp_path):
    from maskformer.recipes import load_config

    with pytest.raises(ValueError, match="data.categories") as info:
        load_config("shapes/maskformer_panoptic_tiny", ["data.dataset=hf_panoptic", "data.hf_name=x"])
    assert "\n" not in str(info.value)
    from maskformer.data.build import read_categories

    (tmp_path / "bad.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="holds no category list"):
        read_categories(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_categories(str(tmp_path / "missing.json"))
