"""cache_draws / ``sweep --cache-samples``: Shapes keeps every drawn image; the same samples and the same training,
only less time drawing."""

import json

import pytest
import torch
from safetensors.torch import load_file

from maskformer.cli import main
from maskformer.data.cached import cache_draws
from maskformer.data.shapes import Shapes
from maskformer.recipes import load_config
from maskformer.sweep import train_one


def same(a, b) -> bool:
    """Equal samples: tensors equal in value and type, dicts, lists and other values alike, all the way down."""
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_cached_samples_equal_drawn_ones_and_cannot_be_changed_through_a_sample():
    for cue, targets in [("shape_colour", "semantic"), ("marker", "panoptic")]:
        make = lambda: Shapes(num_samples=4, image_size=32, num_classes=19, seed=2, class_cue=cue, targets=targets)
        plain, cached = make(), cache_draws(make())
        assert cache_draws(cached) is cached  # once is enough
        for index in (0, 3, 0):  # index 0 the second time comes from the cache
            sample = cached[index]
            assert same(sample, plain[index])
            assert sample["original_semantic"].dtype == torch.int64
            sample["image"].zero_()
            sample["original_semantic"].zero_()
            sample["id_to_class"][99] = 1
            image, semantic, instance, id_to_class = cached.draw(index)
            image.zero_(), semantic.zero_(), instance.zero_(), id_to_class.clear()
        assert sorted(cached.draw.kept) == [0, 3]
        assert same(cached[0], plain[0]) and same(cached.draw(3), plain.draw(3))
    with pytest.raises(TypeError, match="has no draw"):
        cache_draws([1, 2])


def test_a_sweep_run_with_the_cache_trains_exactly_as_one_without(tmp_path, monkeypatch):
    cached_sets = []
    spy = lambda dataset: cached_sets.append(cache_draws(dataset)) or dataset
    monkeypatch.setattr("maskformer.data.cached.cache_draws", spy)
    # 4 training images, 6 steps of 2: each image is seen 3 times, with a random flip each time
    tiny = ["solver.max_iters=6", "solver.batch_size=2", "solver.warmup_iters=0", "data.num_train=4",
            "data.num_val=2", "data.image_size=32", "data.test_short_edge=32", "data.test_max_size=32",
            "eval_period=0", "checkpoint_period=100", "log_period=1"]
    results = {}
    for cache in (False, True):
        cfg = load_config("shapes/per_pixel_tiny", tiny + [f"output_dir={tmp_path / str(cache)}"])
        results[cache] = train_one(cfg, cache_samples=cache)
        history = [json.loads(line) for line in (tmp_path / str(cache) / "metrics.jsonl").read_text().splitlines()]
        results[cache]["losses"] = [r["loss"] for r in history if "loss" in r]
    assert len(results[True]["losses"]) == 6 and results[True]["losses"] == results[False]["losses"]
    assert results[True]["mIoU"] == results[False]["mIoU"]
    assert [len(d.draw.kept) for d in cached_sets] == [4, 2]  # the cached run drew each image once (train, val)
    without, cached = (load_file(tmp_path / str(c) / "model" / "model.safetensors") for c in (False, True))
    assert without.keys() == cached.keys() and all(torch.equal(without[k], cached[k]) for k in without)


def test_the_sweep_command_takes_cache_samples(tmp_path, capsys):
    tiny = ["solver.max_iters=2", "solver.batch_size=2", "solver.warmup_iters=0", "data.num_train=2",
            "data.num_val=2", "data.image_size=32", "data.test_short_edge=32", "data.test_max_size=32",
            "eval_period=0", "checkpoint_period=100"]
    main(["sweep", "shapes/per_pixel_tiny", "--grid", "model.num_queries=7", "--output", str(tmp_path),
          "--cache-samples", *tiny])
    assert "1 runs (1 cells x 1 seed), 0 finished already, 1 to train" in capsys.readouterr().out
    with open(tmp_path / "results.csv") as f:
        assert len(f.read().splitlines()) == 2  # the header and the run
