"""Measure each model's seconds per training step, alone, for the many-class study's equal-time budget.

    python results/many_classes/timing.py [--steps 60] [--budget-steps 600]

trains every (task, class count, model) of the study for ``--steps`` steps, one at a time on one thread (``run.sh``
trains two at a time, one thread each; timing them alone keeps one run's neighbour out of another's time), and
takes the median ``time_per_step`` of the logged windows after the first (which holds the start-up). It writes,
next to this file:

- ``timing.csv``: cue, model, num_classes, seconds_per_step;
- ``equal_time_steps.csv``: cue, model, num_classes, steps: the steps each model trains in the time
  PerPixelBaseline takes for ``--budget-steps`` steps, ``round(budget_steps * t_per_pixel / t_model)``.

``run.sh`` reads ``equal_time_steps.csv`` for its equal-time runs, so a re-run trains the same schedules; run
this script again to measure a different machine. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("per_pixel", "per_pixel_plus", "maskformer")
STUDY = {"shape_colour": (7, 19, 50, 100), "marker": (7, 19)}  # the class counts of run.sh


def overrides(cue: str, model: str, k: int, steps: int, directory: Path) -> list[str]:
    items = [f"data.num_classes={k}", f"model.num_classes={k}", f"data.class_cue={cue}", "data.num_train=10000",
             f"solver.max_iters={steps}", "eval_period=0", "checkpoint_period=0", "log_period=10",
             f"output_dir={directory}"]
    return items + ([f"model.num_queries={k}"] if model == "per_pixel_plus" else [])  # one query per class


def time_one(cue: str, model: str, k: int, steps: int, directory: str) -> float:
    import torch

    from maskformer.recipes import load_config
    from maskformer.trainer import Trainer

    torch.set_num_threads(1)
    cfg = load_config(f"shapes/{model}_tiny", overrides(cue, model, k, steps, Path(directory)))
    Trainer(cfg, progress=False).train(evaluate=False)
    windows = [json.loads(line)["time_per_step"] for line in (Path(directory) / "metrics.jsonl").read_text().splitlines()
               if "time_per_step" in line]
    return statistics.median(windows[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per timing run")
    parser.add_argument("--budget-steps", type=int, default=600, help="PerPixelBaseline's steps in the time budget")
    args = parser.parse_args()
    jobs = [(cue, model, k) for cue, ks in STUDY.items() for k in ks for model in MODELS]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (cue, model, k) in enumerate(jobs, 1):
            seconds[cue, model, k] = time_one(cue, model, k, args.steps, f"{tmp}/{cue}-{model}-{k}")
            print(f"[{n}/{len(jobs)}] {cue} {model} K={k}: {seconds[cue, model, k]:.3f} s/step", flush=True)
    timing = [{"cue": cue, "model": model, "num_classes": k, "seconds_per_step": round(seconds[cue, model, k], 4)}
              for cue, model, k in jobs]
    steps = [{"cue": cue, "model": model, "num_classes": k,
              "steps": round(args.budget_steps * seconds[cue, "per_pixel", k] / seconds[cue, model, k])}
             for cue, model, k in jobs]
    for name, rows in (("timing.csv", timing), ("equal_time_steps.csv", steps)):
        with open(HERE / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {HERE / 'timing.csv'} and {HERE / 'equal_time_steps.csv'}:")
    for row in steps:
        print(f"  {row['cue']:12s} {row['model']:15s} K={row['num_classes']:<4d} {row['steps']} steps")


if __name__ == "__main__":
    main()
