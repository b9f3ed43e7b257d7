"""Shapes(cache=True) / data.cache_samples: the same samples and the same training, only less time drawing."""

import json

import torch

from maskformer.data.build import build_split
from maskformer.data.shapes import Shapes
from maskformer.recipes import load_config
from maskformer.sweep import config_differences
from maskformer.trainer import Trainer


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
        plain = Shapes(num_samples=4, image_size=32, num_classes=19, seed=2, class_cue=cue, targets=targets)
        cached = Shapes(num_samples=4, image_size=32, num_classes=19, seed=2, class_cue=cue, targets=targets,
                        cache=True)
        for index in (0, 3, 0):  # index 0 the second time comes from the cache
            sample = cached[index]
            assert same(sample, plain[index])
            assert sample["semantic"].dtype == torch.int64 and sample["instance"].dtype == torch.int64
            sample["image"].zero_()
            sample["original_semantic"].zero_()
            sample["id_to_class"][99] = 1
        assert sorted(cached._cache) == [0, 3]
        assert same(cached[0], plain[0])
    assert Shapes(num_samples=2, image_size=32)._cache is None  # off by default


def test_a_run_with_the_cache_trains_exactly_as_one_without(tmp_path):
    # 4 training images, 6 steps of 2: each image is seen 3 times, with a random flip each time
    tiny = ["solver.max_iters=6", "solver.batch_size=2", "solver.warmup_iters=0", "data.num_train=4",
            "data.num_val=2", "data.image_size=32", "data.test_short_edge=32", "data.test_max_size=32",
            "eval_period=0", "checkpoint_period=100", "log_period=1"]
    losses = {}
    for cache in (False, True):
        cfg = load_config("shapes/per_pixel_tiny", tiny + [f"data.cache_samples={cache}",
                                                           f"output_dir={tmp_path / str(cache)}"])
        trainer = Trainer(cfg, progress=False)
        assert (trainer.train_dataset._cache is not None) == cache
        trainer.train(evaluate=False)
        losses[cache] = [r["loss"] for r in trainer.history if "loss" in r]
        weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if cache:
            assert all(torch.equal(weights[k], reference[k]) for k in weights)
        reference = weights
    assert len(losses[True]) == 6 and losses[True] == losses[False]
    assert build_split(load_config("shapes/per_pixel_tiny").data, "val")._cache is None


def test_a_sweep_reuses_runs_made_without_the_cache():
    without, cached = (load_config("shapes/per_pixel_tiny", [f"data.cache_samples={c}"]).to_dict() for c in (False, True))
    assert config_differences(json.loads(json.dumps(without)), cached) == []  # as read from a run's config.json
    assert config_differences(json.loads(json.dumps(without)), {**cached, "seed": 5}) == ["seed: run 0, sweep 5"]
