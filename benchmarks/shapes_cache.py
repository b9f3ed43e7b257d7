"""What `sweep --cache-samples` (`maskformer.data.cached.cache_draws`) saves: the time per training step on Shapes
with each drawn image kept in memory, against drawing it again every epoch, for the many-class study's three models
and both of its tasks.

    python benchmarks/shapes_cache.py                         # 19 classes, 1 thread, 2 rounds
    python benchmarks/shapes_cache.py --classes 50 --rounds 3

Shapes draws every sample from its index (numpy, a few milliseconds at 64 px; the marker probe also places its shapes
without overlap and measures room for the marker), so a run of several epochs draws each image again and again.
With the cache only the first epoch draws. This script trains each model a few epochs of a small training set
(10 steps an epoch), once with the cache and once without, alternating round by round so that load on a shared
machine hits both alike, and prints the mean ``time_per_step`` (the trainer's own: data and step, evaluation left
out) after the first epoch, and the ratio. The two runs train exactly alike (`tests/test_shapes_cache.py`).

On the 2-core development machine, nothing else running (torch 2.14, 19 classes): drawn / cached 1.32x, 1.23x, 1.14x
for PerPixelBaseline, PerPixelBaseline+ and MaskFormer on Shapes, 1.74x, 1.37x, 1.27x on the marker probe.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile

import torch

from maskformer.data.build import build_datasets
from maskformer.data.cached import cache_draws
from maskformer.recipes import load_config
from maskformer.trainer import Trainer

MODELS = ("per_pixel", "per_pixel_plus", "maskformer")


def seconds_per_step(model: str, cue: str, classes: int, cache: bool, epochs: int, directory: str) -> float:
    keys = "data.num_classes+model.num_classes" + ("+model.num_queries" if model == "per_pixel_plus" else "")
    overrides = [f"{key}={classes}" for key in keys.split("+")] + [
        f"data.class_cue={cue}", "data.num_train=160", "data.num_val=2", f"solver.max_iters={10 * epochs}",
        "eval_period=0", "checkpoint_period=100000", "log_period=10", "device=cpu", f"output_dir={directory}"]
    cfg = load_config(f"shapes/{model}_tiny", overrides)
    train, val = build_datasets(cfg.data, cfg.seed)
    trainer = Trainer(cfg, progress=False, train_dataset=cache_draws(train) if cache else train, val_dataset=val)
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer's log lines
        trainer.train(evaluate=False)
    after_first_epoch = [r["time_per_step"] for r in trainer.history if "time_per_step" in r and r["step"] > 10]
    return statistics.mean(after_first_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (the study's runs use 1)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of 10 steps; the first one is not timed")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Shapes at 64 px, {args.classes} classes, batch 16, {args.threads} thread(s), torch {torch.__version__}; "
          f"seconds per step after the first epoch, mean of {args.rounds} rounds")
    print(f"{'task':<13} {'model':<15} {'drawn':>8} {'cached':>8} {'drawn / cached':>15}")
    for cue in ("shape_colour", "marker"):
        for model in MODELS:
            times = {False: [], True: []}
            for _ in range(args.rounds):
                for cache in (False, True):
                    with tempfile.TemporaryDirectory() as directory:
                        times[cache].append(seconds_per_step(model, cue, args.classes, cache, args.epochs, directory))
            drawn, cached = statistics.mean(times[False]), statistics.mean(times[True])
            print(f"{cue:<13} {model:<15} {drawn:8.3f} {cached:8.3f} {drawn / cached:14.2f}x", flush=True)


if __name__ == "__main__":
    main()
