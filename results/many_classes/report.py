"""Collect the many-class study's runs into small committed files.

    python results/many_classes/report.py [--runs output/many_classes]

reads every finished run under ``output/many_classes/CUE/MODEL/runs/`` (made by ``results/many_classes/run.sh``)
and writes, next to this file:

- ``results.csv``: one row per run: cue, model, budget, num_classes, seed, mIoU (percent), steps, train_minutes;
- ``curves.csv``: mIoU (percent) at every evaluation of every run: cue, model, num_classes, seed, step, mIoU;
- ``summary.md``: mean +- std over seeds per cue, class count and model, the gain of MaskFormer over
  PerPixelBaseline+, and each curve's rise over its last evaluation interval (has it flattened?);
- ``mIoU_vs_classes.png`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("per_pixel", "per_pixel_plus", "maskformer")
LABELS = {"per_pixel": "PerPixelBaseline", "per_pixel_plus": "PerPixelBaseline+", "maskformer": "MaskFormer"}
CUES = {"shape_colour": "Shapes (class = shape and colour)", "marker": "marker probe (class = a marker's hue)"}


def collect(root: Path) -> tuple[list[dict], list[dict]]:
    rows, curves = [], []
    for result_file in sorted(root.glob("*/*/runs/*/result.json")):
        run = result_file.parent
        cue, model = run.parent.parent.parent.name, run.parent.parent.name
        result = json.loads(result_file.read_text())
        cfg = result["config"]
        k, seed = cfg["data"]["num_classes"], cfg["seed"]
        rows.append({"cue": cue, "model": model, "budget": "equal_steps", "num_classes": k, "seed": seed,
                     "mIoU": round(100 * result["mIoU"], 3), "steps": result["steps"],
                     "train_minutes": round(result["train_seconds"] / 60, 3)})
        for line in (run / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "mIoU" in record:
                curves.append({"cue": cue, "model": model, "num_classes": k, "seed": seed, "step": record["step"],
                               "mIoU": round(100 * record["mIoU"], 3)})
    key = lambda r: (list(CUES).index(r["cue"]), MODELS.index(r["model"]), r["num_classes"], r["seed"], r.get("step", 0))
    return sorted(rows, key=key), sorted(curves, key=key)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary(rows: list[dict], curves: list[dict]) -> str:
    cells = defaultdict(list)
    for r in rows:
        cells[r["cue"], r["model"], r["num_classes"]].append(r)
    rise = defaultdict(list)  # the last evaluation interval's gain of each run
    by_run = defaultdict(list)
    for c in curves:
        by_run[c["cue"], c["model"], c["num_classes"], c["seed"]].append((c["step"], c["mIoU"]))
    for (cue, model, k, _), points in by_run.items():
        points.sort()
        if len(points) >= 2:
            rise[cue, model, k].append(points[-1][1] - points[-2][1])
    lines = ["# The many-class study: mIoU (%) at equal steps, mean ± std over seeds", "",
             "Written by `python results/many_classes/report.py` from the runs of `results/many_classes/run.sh`.", ""]
    for cue, title in CUES.items():
        ks = sorted({k for c, _, k in cells if c == cue})
        if not ks:
            continue
        lines += [f"## {title}", "", "| classes | " + " | ".join(LABELS[m] for m in MODELS) +
                  " | MaskFormer − PerPixelBaseline+ | seconds per step (pp / pp+ / MF) |", "|---" * 6 + "|"]
        for k in ks:
            row, seconds = [str(k)], []
            for m in MODELS:
                runs = cells.get((cue, m, k), [])
                if runs:
                    mu, sd = mean_std([r["mIoU"] for r in runs])
                    last = statistics.mean(rise[cue, m, k]) if rise[cue, m, k] else float("nan")
                    row.append(f"{mu:.2f} ± {sd:.2f} (n={len(runs)}, last rise {last:+.2f})")
                    seconds.append(f"{statistics.mean(60 * r['train_minutes'] / r['steps'] for r in runs):.3f}")
                else:
                    row.append("–")
                    seconds.append("–")
            plus, mf = cells.get((cue, "per_pixel_plus", k)), cells.get((cue, "maskformer", k))
            if plus and mf:
                row.append(f"{statistics.mean(r['mIoU'] for r in mf) - statistics.mean(r['mIoU'] for r in plus):+.2f}")
            else:
                row.append("–")
            row.append(" / ".join(seconds))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["\"last rise\": the mean gain in mIoU over the last 150 steps of the runs; a curve has flattened when "
              "it is near 0 (the poly schedule's learning rate is then near 0, which also slows it down).", ""]
    return "\n".join(lines)


def plot(rows: list[dict], curves: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cues = [c for c in CUES if any(r["cue"] == c for r in rows)]
    fig, axes = plt.subplots(1, len(cues), figsize=(5.5 * len(cues), 4), dpi=100, squeeze=False)
    for ax, cue in zip(axes[0], cues):
        for m in MODELS:
            ks = sorted({r["num_classes"] for r in rows if r["cue"] == cue and r["model"] == m})
            if not ks:
                continue
            stats = [mean_std([r["mIoU"] for r in rows if (r["cue"], r["model"], r["num_classes"]) == (cue, m, k)])
                     for k in ks]
            ax.errorbar(ks, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=LABELS[m])
        ax.set_xscale("log")
        ax.set_xlabel("number of classes K (log scale)")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(CUES[cue], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "mIoU_vs_classes.png")
    plt.close(fig)

    panels = sorted({(c["cue"], c["num_classes"]) for c in curves}, key=lambda p: (list(CUES).index(p[0]), p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), dpi=100, squeeze=False, sharey=False)
    for ax, (cue, k) in zip(axes[0], panels):
        for m in MODELS:
            points = defaultdict(list)
            for c in curves:
                if (c["cue"], c["model"], c["num_classes"]) == (cue, m, k):
                    points[c["step"]].append(c["mIoU"])
            if points:
                steps = sorted(points)
                ax.plot(steps, [statistics.mean(points[s]) for s in steps], marker=".", label=LABELS[m])
        ax.set_title(f"{'Shapes' if cue == 'shape_colour' else 'marker'}, K={k}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%), mean over seeds")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "curves.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--runs", default="output/many_classes", help="the run.sh output directory")
    args = parser.parse_args()
    rows, curves = collect(Path(args.runs))
    if not rows:
        raise SystemExit(f"no finished runs under {args.runs}: run results/many_classes/run.sh first")
    write_csv(HERE / "results.csv", rows)
    write_csv(HERE / "curves.csv", curves)
    (HERE / "summary.md").write_text(summary(rows, curves))
    plot(rows, curves)
    print((HERE / "summary.md").read_text())


if __name__ == "__main__":
    main()
