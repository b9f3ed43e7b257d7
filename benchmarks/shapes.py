"""The paper's claim in miniature: train from scratch on the built-in Shapes data on 2 CPU cores.

Three runs, each with the same wall-clock training budget (default 10 minutes; evaluation time is
not counted) and the recipe of a shipped config:

    maskformer        shapes/maskformer_tiny   on Shapes with 7 classes (the target: mIoU >= 0.8)
    maskformer-many   shapes/maskformer_tiny   on Shapes with many classes (default 19)
    per-pixel-many    shapes/per_pixel_tiny    on the same many-class Shapes

With many classes, a class is a (shape, colour) pair and colours are close: the per-pixel baseline
must tell the classes apart pixel by pixel, MaskFormer once per segment. Each run evaluates the
validation mIoU (100 images never seen in training) every ``--eval-every`` seconds of training and
prints a table of mIoU against training time; the summary gives each run's mIoU at the end of the
budget. Every run gets the same poly schedule of ``--max-iters`` steps (default 3000, longer than
10 minutes here), cut when the budget is spent: a faster model or machine gets further along it;
if the schedule ends first, the run stops there.

Run: python benchmarks/shapes.py [--minutes 10] [--runs maskformer,maskformer-many,per-pixel-many]
     (3 x 10 minutes plus evaluation). --threads 2 by default; on a machine shared with other
     jobs, --threads 1 avoids OpenMP threads waiting for a descheduled sibling.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from maskformer.evaluation import evaluate_semantic
from maskformer.recipes import load_config
from maskformer.trainer import Trainer

RUNS = {
    "maskformer": ("shapes/maskformer_tiny", []),
    "maskformer-many": ("shapes/maskformer_tiny", ["data.num_classes={k}", "model.num_classes={k}"]),
    "per-pixel-many": ("shapes/per_pixel_tiny", ["data.num_classes={k}", "model.num_classes={k}"]),
}


class OutOfTime(Exception):
    pass


def run(name: str, minutes: float, eval_every: float, many_classes: int, max_iters: int,
        output_root: Path) -> list[dict]:
    config_name, overrides = RUNS[name]
    overrides = [o.format(k=many_classes) for o in overrides] + [f"solver.max_iters={max_iters}"]
    cfg = load_config(config_name, [*overrides, f"output_dir={output_root / name}", "eval_period=0",
                                    "checkpoint_period=0", "device=cpu"])
    torch.manual_seed(cfg.seed)
    trainer = Trainer(cfg, progress=False)
    rows: list[dict] = []
    clock = {"train": 0.0, "last": time.perf_counter(), "next_eval": eval_every}

    def evaluate(step: int) -> None:
        d = cfg.data
        res = evaluate_semantic(trainer.model, trainer.val_dataset, short_edges=(d.test_short_edge,),
                                max_size=d.test_max_size, progress=False)
        rows.append({"run": name, "step": step, "train_s": round(clock["train"], 1), "mIoU": res["mIoU"]})
        print(f"  {name:16s} {clock['train'] / 60:6.2f} min  step {step:5d}  mIoU {res['mIoU']:.3f}", flush=True)

    def on_step(t: Trainer, step: int, record: dict) -> None:
        now = time.perf_counter()
        clock["train"] += now - clock["last"]
        if clock["train"] >= clock["next_eval"] or clock["train"] >= minutes * 60:
            evaluate(step)
            clock["next_eval"] += eval_every
        if clock["train"] >= minutes * 60:
            raise OutOfTime
        clock["last"] = time.perf_counter()  # evaluation time is not training time

    trainer.callbacks.append(on_step)
    print(f"{name}: {config_name} {' '.join(overrides)}, {trainer.model.num_parameters / 1e6:.2f}M parameters, "
          f"{cfg.model.num_classes} classes, budget {minutes:g} min", flush=True)
    try:
        trainer.train(evaluate=False)
        evaluate(trainer.step)  # the schedule ended inside the budget
    except OutOfTime:
        pass
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    parser.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between evaluations")
    parser.add_argument("--many-classes", type=int, default=19,
                        help="K for the many-class runs (19: 18 shapes, six in each of three hues)")
    parser.add_argument("--max-iters", type=int, default=3000, help="the schedule's length, cut by the budget")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {list(RUNS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="output/benchmarks/shapes", help="where the runs write their files")
    parser.add_argument("--json", help="also write every evaluation row to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"unknown runs {unknown}; choose from {list(RUNS)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for name in names:
        rows += run(name, args.minutes, args.eval_every, args.many_classes, args.max_iters, Path(args.output))
    print(f"\nsummary: mIoU after {args.minutes:g} min of training on {torch.get_num_threads()} threads")
    print(f"{'run':16s} {'classes':>7s} {'steps':>6s} {'train min':>9s} {'mIoU':>6s}")
    for name in names:
        last = [r for r in rows if r["run"] == name][-1]
        classes = 7 if name == "maskformer" else args.many_classes
        print(f"{name:16s} {classes:7d} {last['step']:6d} {last['train_s'] / 60:9.2f} {last['mIoU']:6.3f}")
    if "maskformer" in names:
        best = [r for r in rows if r["run"] == "maskformer"][-1]["mIoU"]
        print(f"target mIoU >= 0.8 within {args.minutes:g} min: {'met' if best >= 0.8 else 'NOT met'} ({best:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
