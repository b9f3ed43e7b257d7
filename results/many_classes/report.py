"""Collect the many-class study's runs into small committed files.

    python results/many_classes/report.py [--runs output/many_classes]

reads every finished run under ``output/many_classes/BUDGET/CUE/MODEL/runs/`` (made by ``results/many_classes/run.sh``;
BUDGET is ``equal_steps``, ``equal_time`` or ``equal_steps_1200``, the equal-steps grid with twice the steps), merges
them into the committed files and writes, next to this file:

- ``results.csv``: one row per run: cue, model, budget, num_classes, seed, mIoU (percent), steps, train_minutes.
  PerPixelBaseline's equal-time runs are its equal-steps runs (the time budget is its 600 steps), so each of them
  appears under both budgets;
- ``curves.csv``: mIoU (percent) at every evaluation of every equal-steps run (both lengths): cue, model, budget,
  num_classes, seed, step, mIoU;
- ``summary.md``: mean +- std over seeds per cue, class count and model, the gain of MaskFormer over
  PerPixelBaseline+, each curve's rise over its last evaluation interval, and the doubling test of
  ``HYPOTHESIS.md`` (has a cell flattened at 600 steps: does 1200 add less than 1 point?);
- ``mIoU_vs_classes.png`` and ``curves.png``.

A run found under ``--runs`` replaces the committed row of the same cue, model, budget, class count and seed; the
committed rows of runs not found there are kept, so the study can be run in parts (a working session's output
folder does not outlive it) and collected after each.
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
COLOURS = {"per_pixel": "tab:blue", "per_pixel_plus": "tab:orange", "maskformer": "tab:green"}  # as notebook 08
CUES = {"shape_colour": "Shapes (class = shape and colour)", "marker": "marker probe (class = a marker's hue)"}


KEY = ("cue", "model", "budget", "num_classes", "seed")
ORDER = lambda r: (list(CUES).index(r["cue"]), MODELS.index(r["model"]), r.get("budget", ""), r["num_classes"],
                   r["seed"], r.get("step", 0))


def collect(root: Path) -> tuple[list[dict], list[dict]]:
    """The finished runs under ``root``: results.csv rows and curves.csv rows."""
    rows, curves = [], []
    for result_file in sorted(root.glob("*/*/*/runs/*/result.json")):
        run = result_file.parent
        model_dir = run.parent.parent
        budget, cue, model = model_dir.parent.parent.name, model_dir.parent.name, model_dir.name
        result = json.loads(result_file.read_text())
        cfg = result["config"]
        k, seed = cfg["data"]["num_classes"], cfg["seed"]
        row = {"cue": cue, "model": model, "budget": budget, "num_classes": k, "seed": seed,
               "mIoU": round(100 * result["mIoU"], 3), "steps": result["steps"],
               "train_minutes": round(result["train_seconds"] / 60, 3)}
        rows.append(row)
        if budget.startswith("equal_steps"):
            for line in (run / "metrics.jsonl").read_text().splitlines():
                record = json.loads(line)
                if "mIoU" in record:
                    curves.append({"cue": cue, "model": model, "budget": budget, "num_classes": k, "seed": seed,
                                   "step": record["step"], "mIoU": round(100 * record["mIoU"], 3)})
    return rows, curves


def read_committed(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: int(v) if k in ("num_classes", "seed", "steps", "step") else
                 float(v) if k in ("mIoU", "train_minutes") else v for k, v in r.items()} for r in csv.DictReader(f)]


def merge(rows: list[dict], curves: list[dict]) -> tuple[list[dict], list[dict]]:
    """The new runs, plus the committed rows of every run they do not replace."""
    new_runs = {tuple(r[k] for k in KEY) for r in rows}
    curve_key = lambda c: (c["cue"], c["model"], c["budget"], c["num_classes"], c["seed"])
    new_curves = {curve_key(c) for c in curves}
    kept = [r for r in read_committed(HERE / "results.csv") if tuple(r[k] for k in KEY) not in new_runs]
    kept_curves = [c for c in read_committed(HERE / "curves.csv") if curve_key(c) not in new_curves]
    merged = rows + kept
    present = {tuple(r[k] for k in KEY) for r in merged}
    merged += [{**r, "budget": "equal_time"} for r in merged  # PerPixelBaseline's time budget is its equal steps
               if r["model"] == "per_pixel" and r["budget"] == "equal_steps"
               and (r["cue"], r["model"], "equal_time", r["num_classes"], r["seed"]) not in present]
    return sorted(merged, key=ORDER), sorted(curves + kept_curves, key=ORDER)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


BUDGETS = {"equal_steps": "equal steps (600 each)",
           "equal_time": "equal time (the time PerPixelBaseline takes for 600 steps)",
           "equal_steps_1200": "equal steps, twice as long (1200 each)"}
FLAT_GAIN, FLOOR = 1.0, 5.0  # HYPOTHESIS.md's doubling test: flattened if 1200 steps add < 1 point; < 5 mIoU: not learning


def verdict(mean_600: float, mean_1200: float) -> str:
    """The doubling test of HYPOTHESIS.md for one cell, from its mean mIoU at 600 and at 1200 steps."""
    if mean_1200 < FLOOR:
        return "not learning"
    return "flattened" if mean_1200 - mean_600 < FLAT_GAIN else "still rising"


def summary(rows: list[dict], curves: list[dict]) -> str:
    cells = defaultdict(list)
    for r in rows:
        cells[r["budget"], r["cue"], r["model"], r["num_classes"]].append(r)
    rise = defaultdict(list)  # the last evaluation interval's gain of each equal-steps run
    by_run = defaultdict(list)
    for c in curves:
        by_run[c["budget"], c["cue"], c["model"], c["num_classes"], c["seed"]].append((c["step"], c["mIoU"]))
    for (budget, cue, model, k, _), points in by_run.items():
        points.sort()
        if len(points) >= 2:
            rise[budget, cue, model, k].append(points[-1][1] - points[-2][1])
    lines = ["# The many-class study: mIoU (%), mean ± std over seeds", "",
             "Written by `python results/many_classes/report.py` from the runs of `results/many_classes/run.sh`.", ""]
    mean = lambda runs: statistics.mean(r["mIoU"] for r in runs)
    for budget, budget_title in BUDGETS.items():
        for cue, title in CUES.items():
            ks = sorted({k for b, c, _, k in cells if (b, c) == (budget, cue)})
            if not ks:
                continue
            steps_budget = budget.startswith("equal_steps")
            last = "seconds per step" if steps_budget else "steps"
            lines += [f"## {title}: {budget_title}", "", "| classes | " + " | ".join(LABELS[m] for m in MODELS) +
                      f" | MaskFormer − PerPixelBaseline+ | MaskFormer − PerPixelBaseline | {last} (pp / pp+ / MF) |",
                      "|---" * 7 + "|"]
            for k in ks:
                row, extra = [str(k)], []
                for m in MODELS:
                    runs = cells.get((budget, cue, m, k), [])
                    if runs:
                        mu, sd = mean_std([r["mIoU"] for r in runs])
                        text = f"{mu:.2f} ± {sd:.2f} (n={len(runs)}"
                        if rise[budget, cue, m, k]:
                            text += f", last rise {statistics.mean(rise[budget, cue, m, k]):+.2f}"
                        row.append(text + ")")
                        extra.append(f"{statistics.mean(60 * r['train_minutes'] / r['steps'] for r in runs):.3f}"
                                     if steps_budget else "/".join(sorted({str(r["steps"]) for r in runs})))
                    else:
                        row.append("–")
                        extra.append("–")
                mf = cells.get((budget, cue, "maskformer", k))
                for base in ("per_pixel_plus", "per_pixel"):
                    other = cells.get((budget, cue, base, k))
                    row.append(f"{mean(mf) - mean(other):+.2f}" if mf and other else "–")
                row.append(" / ".join(extra))
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
    lines += doubling_test(cells)
    lines += ["\"last rise\": the mean gain in mIoU over the last evaluation interval (150 steps) of the equal-steps "
              "runs; a curve has flattened when it is near 0 (the poly schedule's learning rate is then near 0, which "
              "also slows it down). \"seconds per step\": the training steps' own time in the sweep, two runs sharing "
              "the 2 cores; the equal-time step counts come from `timing.py`, which times every model alone "
              "(`timing.csv`).", ""]
    return "\n".join(lines)


def doubling_test(cells: dict) -> list[str]:
    """summary.md's table of the doubling test: each cell's mean at 600 and 1200 steps, where both have runs."""
    pairs = sorted({(cue, m, k) for b, cue, m, k in cells if b == "equal_steps_1200" and (("equal_steps", cue, m, k) in cells)},
                   key=lambda c: (list(CUES).index(c[0]), c[2], MODELS.index(c[1])))
    if not pairs:
        return []
    lines = ["## Has each cell flattened at 600 steps? The doubling test", "",
             f"Mean mIoU at 600 and at 1200 steps. As set in `HYPOTHESIS.md` before the 1200-step runs: flattened if "
             f"doubling the steps adds less than {FLAT_GAIN:g} point; not learning if the 1200-step mean stays under "
             f"{FLOOR:g} mIoU.", "", "| task | classes | model | 600 steps | 1200 steps | gain | verdict |", "|---" * 7 + "|"]
    for cue, m, k in pairs:
        short, long = cells["equal_steps", cue, m, k], cells["equal_steps_1200", cue, m, k]
        mu_s, mu_l = statistics.mean(r["mIoU"] for r in short), statistics.mean(r["mIoU"] for r in long)
        lines.append(f"| {CUES[cue].split(' (')[0]} | {k} | {LABELS[m]} | {mu_s:.2f} (n={len(short)}) | "
                     f"{mu_l:.2f} (n={len(long)}) | {mu_l - mu_s:+.2f} | {verdict(mu_s, mu_l)} |")
    return lines + [""]


def plot(rows: list[dict], curves: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(b, c) for b in BUDGETS for c in CUES if any((r["budget"], r["cue"]) == (b, c) for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), dpi=100, squeeze=False, sharey=True)
    for ax, (budget, cue) in zip(axes[0], panels):
        for m in MODELS:
            mine = [r for r in rows if (r["budget"], r["cue"], r["model"]) == (budget, cue, m)]
            ks = sorted({r["num_classes"] for r in mine})
            if not ks:
                continue
            stats = [mean_std([r["mIoU"] for r in mine if r["num_classes"] == k]) for k in ks]
            ax.errorbar(ks, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=LABELS[m],
                        color=COLOURS[m])
        ax.set_xscale("log")
        ax.set_xlabel("number of classes K (log scale)")
        ax.set_title(f"{CUES[cue]}\n{budget.replace('_', ' ')}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mIoU (%), mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(HERE / "mIoU_vs_classes.png")
    plt.close(fig)

    panels = sorted({(c["cue"], c["num_classes"]) for c in curves}, key=lambda p: (list(CUES).index(p[0]), p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), dpi=100, squeeze=False, sharey=False)
    for ax, (cue, k) in zip(axes[0], panels):
        for m in MODELS:
            for budget, style in (("equal_steps", "--"), ("equal_steps_1200", "-")):  # 600 steps dashed, 1200 solid
                points = defaultdict(list)
                for c in curves:
                    if (c["cue"], c["model"], c["budget"], c["num_classes"]) == (cue, m, budget, k):
                        points[c["step"]].append(c["mIoU"])
                if points:
                    steps = sorted(points)
                    ax.plot(steps, [statistics.mean(points[s]) for s in steps], style, marker=".", color=COLOURS[m],
                            label=f"{LABELS[m]}, {max(steps)} steps")
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
    rows, curves = merge(*collect(Path(args.runs)))
    if not rows:
        raise SystemExit(f"no finished runs under {args.runs} and none committed: run results/many_classes/run.sh first")
    write_csv(HERE / "results.csv", rows)
    write_csv(HERE / "curves.csv", curves)
    (HERE / "summary.md").write_text(summary(rows, curves))
    plot(rows, curves)
    print((HERE / "summary.md").read_text())


if __name__ == "__main__":
    main()
