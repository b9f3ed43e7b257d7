"""Collect the many-class study's runs into small committed files.

    python results/many_classes/report.py [--runs output/many_classes]

reads every finished run under ``output/many_classes/BUDGET/CUE/MODEL/runs/`` (made by ``results/many_classes/run.sh``;
BUDGET is ``equal_steps`` (600 steps), ``equal_time`` (the time PerPixelBaseline takes for 600 steps),
``equal_steps_N``, the equal-steps grid trained N steps (1200, 2400, ... for the doubling test), or
``equal_time_N``, the time PerPixelBaseline takes for N steps (equal time at a comparison length)), merges
them into the committed files and writes, next to this file:

- ``results.csv``: one row per run: cue, model, budget, num_classes, seed, mIoU (percent), steps, train_minutes.
  A model's equal-time runs are its equal-steps runs where the equal-time step count is an equal-steps length it has
  runs at (PerPixelBaseline's at 600; at a comparison length, the slowest model's, ``HYPOTHESIS.md``), so each of
  those runs appears under both budgets;
- ``curves.csv``: mIoU (percent) at every evaluation of every equal-steps run (every length): cue, model, budget,
  num_classes, seed, step, mIoU;
- ``summary.md``: mean +- std over seeds per cue, class count and model, the gain of MaskFormer over
  PerPixelBaseline+, each curve's rise over its last evaluation interval, and the doubling test of
  ``HYPOTHESIS.md`` (has a cell flattened: does doubling its steps add less than 1 point?) and the comparison of
  the models at the first length where every model of a class count has passed it, and the runs each cell needs
  next, with an estimate of their training time;
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
ORDER = lambda r: (list(CUES).index(r["cue"]), MODELS.index(r["model"]), budget_order(r.get("budget", "")),
                   r["num_classes"], r["seed"], r.get("step", 0))


def _length(budget: str, kind: str) -> int | None:
    """N of the budget ``KIND_N``, 600 of the plain ``KIND``; None for a budget of another kind."""
    if budget == kind:
        return 600
    tail = budget[len(kind) + 1:] if budget.startswith(kind + "_") else ""
    return int(tail) if tail.isdigit() else None


def budget_steps(budget: str) -> int | None:
    """The training length of an equal-steps budget (``equal_steps``: 600, ``equal_steps_N``: N); None otherwise."""
    return _length(budget, "equal_steps")


def time_budget_steps(budget: str) -> int | None:
    """PerPixelBaseline's steps in an equal-time budget (``equal_time``: 600, ``equal_time_N``: N); None otherwise."""
    return _length(budget, "equal_time")


def budget_order(budget: str) -> tuple:
    """600 steps, then equal time, then the longer budgets by length, each equal-steps one before its equal-time one."""
    steps, time = budget_steps(budget), time_budget_steps(budget)
    if steps == 600:
        return (0, 0, 0)
    if time == 600:
        return (1, 0, 0)
    return (2, steps, 0) if steps else (2, time or 0, 1)


def read_equal_time_steps(path: Path = HERE / "equal_time_steps.csv") -> dict:
    """(cue, model, K) -> the steps each model takes in the time PerPixelBaseline takes for 600 (timing.py)."""
    with open(path, newline="") as f:
        return {(r["cue"], r["model"], int(r["num_classes"])): int(r["steps"]) for r in csv.DictReader(f)}


def equal_time_steps(steps_600: int, n: int) -> int:
    """A model's steps in the time PerPixelBaseline takes for n steps, from its steps in PerPixelBaseline's 600
    (rounded half up, as run.sh's integer arithmetic does)."""
    return (steps_600 * n + 300) // 600


def comparison_time_budget(table: dict, cue: str, k: int, length: int) -> int:
    """HYPOTHESIS.md, "equal time at the comparison length": the N of the budget equal_time_N in which the model
    slowest per step trains exactly ``length`` steps (and every other model more)."""
    slowest = min(table[cue, m, k] for m in MODELS)
    return round(600 * length / slowest)


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
        if budget_steps(budget):
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
    return sorted(rows + kept + mirrored(rows + kept), key=ORDER), sorted(curves + kept_curves, key=ORDER)


def mirrored(rows: list[dict], table: dict | None = None) -> list[dict]:
    """The equal-time rows that are equal-steps runs: in each equal-time budget of a task and class count, a model
    whose equal-time step count is a length it has equal-steps runs at gets those runs (PerPixelBaseline at 600, whose
    time budget is its own 600 steps; the slowest model at a comparison length, HYPOTHESIS.md)."""
    table = read_equal_time_steps() if table is None else table
    present = {tuple(r[k] for k in KEY) for r in rows}
    by_length = defaultdict(list)  # (cue, model, K, steps) -> its equal-steps runs
    for r in rows:
        if budget_steps(r["budget"]):
            by_length[r["cue"], r["model"], r["num_classes"], budget_steps(r["budget"])].append(r)
    time_cells = {(r["budget"], r["cue"], r["num_classes"]) for r in rows if time_budget_steps(r["budget"])}
    time_cells |= {("equal_time", r["cue"], r["num_classes"]) for r in rows if r["budget"] == "equal_steps"}
    extra = []
    for budget, cue, k in sorted(time_cells):
        for m in MODELS:
            if (cue, m, k) not in table:
                continue
            steps = equal_time_steps(table[cue, m, k], time_budget_steps(budget))
            extra += [{**r, "budget": budget} for r in by_length[cue, m, k, steps]
                      if (cue, m, budget, k, r["seed"]) not in present]
    return extra


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def budget_title(budget: str) -> str:
    steps = budget_steps(budget)
    if time_budget_steps(budget):
        return f"equal time (the time PerPixelBaseline takes for {time_budget_steps(budget)} steps)"
    if steps == 600:
        return "equal steps (600 each)"
    return f"equal steps, {steps // 600 if steps % 600 == 0 else steps / 600:g} times as long ({steps} each)"


FLAT_GAIN, FLOOR = 1.0, 5.0  # HYPOTHESIS.md's doubling test: flattened if doubling adds < 1 point; < 5 mIoU: not learning
PASSED = ("flattened", "not learning")  # the verdicts that end a cell's doubling
SEEDS = 3  # run.sh's --seeds


def verdict(mean_short: float, mean_long: float) -> str:
    """The doubling test of HYPOTHESIS.md for one cell, from its mean mIoU at a length and at twice that length."""
    if mean_long < FLOOR:
        return "not learning"
    return "flattened" if mean_long - mean_short < FLAT_GAIN else "still rising"


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
    for budget in sorted({b for b, *_ in cells}, key=budget_order):
        for cue, title in CUES.items():
            ks = sorted({k for b, c, _, k in cells if (b, c) == (budget, cue)})
            if not ks:
                continue
            steps_budget = budget_steps(budget) is not None
            last = "seconds per step" if steps_budget else "steps"
            lines += [f"## {title}: {budget_title(budget)}", "", "| classes | " + " | ".join(LABELS[m] for m in MODELS) +
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


def means_by_length(cells: dict) -> dict:
    """(cue, model, K) -> {steps: (mean mIoU, number of runs)} over the equal-steps budgets."""
    lengths = defaultdict(dict)
    for (budget, cue, m, k), runs in cells.items():
        if budget_steps(budget):
            lengths[cue, m, k][budget_steps(budget)] = (statistics.mean(r["mIoU"] for r in runs), len(runs))
    return lengths


def doubling_chain(lengths: dict) -> dict:
    """Each cell's doubling test, step by step, from means_by_length():
    (cue, model, K) -> [(length, 2 x length, mean, mean, verdict), ...]."""
    chain = {}
    for cell, means in lengths.items():
        chain[cell] = [(n, 2 * n, means[n], means[2 * n], verdict(means[n][0], means[2 * n][0]))
                       for n in sorted(means) if 2 * n in means]
    return chain


def first_passing_length(chain: dict, cue: str, k: int) -> int | None:
    """The first length at which every model of this class count has passed the doubling test (None: not yet).

    A model passes at length L when doubling L adds less than FLAT_GAIN or leaves it under FLOOR; the comparison is
    made at the shortest L that every model has passed at or before, so that no model is still climbing there; a model
    that passed earlier is trained at L too (HYPOTHESIS.md), so the comparison stays one of equal steps. A pass that a
    later doubling contradicts (the curve rose again by a point or more) does not count: the model passes at L only
    when every doubling from L on passes."""
    passed_at = []
    for m in MODELS:
        tests = chain.get((cue, m, k), [])
        steps = [n for i, (n, _, _, _, _) in enumerate(tests) if all(t[4] in PASSED for t in tests[i:])]
        if not steps:
            return None
        passed_at.append(min(steps))
    return max(passed_at)


def doubling_test(cells: dict, table: dict | None = None) -> list[str]:
    """summary.md's tables of the doubling test, of the comparison at the first length every model has passed, and
    of equal time at that length (``table``: equal_time_steps.csv, read if not given)."""
    means = means_by_length(cells)
    chain = doubling_chain(means)
    order = sorted((c for c in chain if chain[c]), key=lambda c: (list(CUES).index(c[0]), c[2], MODELS.index(c[1])))
    if not order:
        return []
    lines = ["## Has each cell flattened? The doubling test", "",
             f"Mean mIoU at a length and at twice that length. As set in `HYPOTHESIS.md` before the longer runs: "
             f"flattened if doubling the steps adds less than {FLAT_GAIN:g} point; not learning if the longer run's mean "
             f"stays under {FLOOR:g} mIoU; a cell still rising is doubled again.", "",
             "| task | classes | model | steps | mean | twice the steps | mean | gain | verdict |", "|---" * 9 + "|"]
    for cue, m, k in order:
        for short, long, (mu_s, n_s), (mu_l, n_l), v in chain[cue, m, k]:
            lines.append(f"| {CUES[cue].split(' (')[0]} | {k} | {LABELS[m]} | {short} | {mu_s:.2f} (n={n_s}) | {long} | "
                         f"{mu_l:.2f} (n={n_l}) | {mu_l - mu_s:+.2f} | {v} |")
    lines += ["", "## The comparison at the first length every model has passed", "",
              "The mean mIoU of each model at the first length where all three have passed the doubling test "
              "(flattened or not learning), each trained that long; \"not yet\" where some model is still rising at its "
              "longest runs.", "",
              "| task | classes | length | " + " | ".join(LABELS[m] for m in MODELS) + " | not passed yet (longest runs) |",
              "|---" * 7 + "|"]
    for cue in CUES:
        for k in sorted({k for c, _, k in chain if c == cue}):
            n = first_passing_length(chain, cue, k)
            if n is not None and all(n in means[cue, m, k] for m in MODELS):
                lines.append(f"| {CUES[cue].split(' (')[0]} | {k} | {n} | " +
                             " | ".join(f"{means[cue, m, k][n][0]:.2f}" for m in MODELS) + " | – |")
                continue
            if n is not None:  # HYPOTHESIS.md: a model that passed earlier is trained at the comparison length too
                waiting = ", ".join(f"{LABELS[m]} (to train at {n} steps)" for m in MODELS if n not in means[cue, m, k])
                lines.append(f"| {CUES[cue].split(' (')[0]} | {k} | {n} | " + " | ".join("–" for _ in MODELS) +
                             f" | {waiting} |")
                continue
            rising = [f"{LABELS[m]} ({chain[cue, m, k][-1][1]} steps)" if chain.get((cue, m, k))
                      else f"{LABELS[m]} (not doubled yet)" for m in MODELS
                      if not chain.get((cue, m, k)) or chain[cue, m, k][-1][4] not in PASSED]
            lines.append(f"| {CUES[cue].split(' (')[0]} | {k} | not yet | " + " | ".join("–" for _ in MODELS) +
                         f" | {', '.join(rising)} |")
    return lines + [""] + equal_time_at_comparison(cells, chain, means,
                                                   read_equal_time_steps() if table is None else table) + \
        next_runs(cells, chain, means)


def next_runs(cells: dict, chain: dict, means: dict) -> list[str]:
    """summary.md's table of the equal-steps runs each cell needs next by the doubling test (HYPOTHESIS.md), with an
    estimate of their training time at the speed of the cell's longest runs (train minutes scale with the steps):
    the seeds missing at its longest length; twice that length for a cell still rising there (or not doubled yet);
    for a model that passed earlier, the comparison length of its class count once there is one."""
    rows, total_runs, total_minutes = [], 0, 0.0
    for cue in CUES:
        for k in sorted({k for c, _, k in means if c == cue}):
            comparison = first_passing_length(chain, cue, k)
            for m in MODELS:
                lengths = means.get((cue, m, k))
                if not lengths:
                    continue
                longest = max(lengths)
                runs = cells["equal_steps" if longest == 600 else f"equal_steps_{longest}", cue, m, k]
                per_run = statistics.mean(r["train_minutes"] for r in runs)
                tests = chain.get((cue, m, k), [])
                passed = bool(tests) and tests[-1][4] in PASSED and tests[-1][1] == longest
                if len(runs) < SEEDS:
                    steps, count, why = longest, SEEDS - len(runs), f"{len(runs)} of {SEEDS} seeds at {longest}"
                elif not passed:
                    steps, count = 2 * longest, SEEDS
                    why = (f"still rising: {tests[-1][3][0] - tests[-1][2][0]:+.2f} from {tests[-1][0]} to {longest}"
                           if tests and tests[-1][1] == longest else f"not doubled from {longest} yet")
                elif comparison is not None and comparison not in lengths:
                    steps, count, why = comparison, SEEDS, f"passed; the comparison length of {k} classes"
                else:
                    continue
                minutes = count * per_run * steps / longest
                total_runs, total_minutes = total_runs + count, total_minutes + minutes
                rows.append(f"| {CUES[cue].split(' (')[0]} | {k} | {LABELS[m]} | {why} | "
                            f"`sweep {cue} {m} {k} {steps}` | {count} | {minutes:.0f} |")
    if not rows:
        return []
    return ["## What runs next", "",
            "The equal-steps runs each cell needs next by the doubling test, as `run.sh` lines, and an estimate of "
            "their training time: the mean `train_minutes` of the cell's longest runs, scaled by the steps (two runs "
            "at a time on this machine's 2 cores, one thread each, unless noted in `run.sh`). The equal-time lines of "
            "a comparison length, once it is found, come on top (the table above).", "",
            "| task | classes | model | why | next | runs | minutes (estimate) |", "|---" * 7 + "|", *rows, "",
            f"In all {total_runs} runs, about {total_minutes / 60:.1f} hours of training "
            f"({total_minutes / 120:.1f} hours two at a time), before the doublings they lead to.", ""]


def equal_time_at_comparison(cells: dict, chain: dict, means: dict, table: dict) -> list[str]:
    """The table of equal time at each comparison length (HYPOTHESIS.md): every model trained for the time the
    slowest one takes for the comparison length; the run.sh lines still to run where a model has no runs yet."""
    rows = []
    for cue in CUES:
        for k in sorted({k for c, _, k in chain if c == cue}):
            n = first_passing_length(chain, cue, k)
            if (n is None or not all(n in means[cue, m, k] for m in MODELS)
                    or not all((cue, m, k) in table for m in MODELS)):
                continue
            budget_n = comparison_time_budget(table, cue, k, n)
            shown, todo = [], []
            for m in MODELS:
                steps = equal_time_steps(table[cue, m, k], budget_n)
                runs = cells.get((f"equal_time_{budget_n}", cue, m, k))
                shown.append(f"{statistics.mean(r['mIoU'] for r in runs):.2f} (n={len(runs)}, {steps} steps)" if runs
                             else f"– ({steps} steps)")
                if not runs:
                    todo.append(f"`equal_time {cue} {m} {k} {budget_n}`")
            rows.append(f"| {CUES[cue].split(' (')[0]} | {k} | {n} | {budget_n} | " + " | ".join(shown) +
                        f" | {', '.join(todo) or '–'} |")
    if not rows:
        return []
    return ["## Equal time at the comparison length", "",
            "Every model trained for the time the slowest of the three per step takes for the comparison length "
            "(`HYPOTHESIS.md`): the budget is named by PerPixelBaseline's steps in that time, N, and each model's steps "
            "come from `equal_time_steps.csv`; the slowest model's runs are its equal-steps runs at the comparison "
            "length.", "",
            "| task | classes | comparison length | N | " + " | ".join(LABELS[m] for m in MODELS) + " | still to run |",
            "|---" * 8 + "|", *rows, ""]


def plot(rows: list[dict], curves: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in rows}, key=budget_order)
    panels = [(b, c) for b in budgets for c in CUES if any((r["budget"], r["cue"]) == (b, c) for r in rows)]
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
        counts = sorted({r["num_classes"] for r in rows if r["cue"] == cue})  # the same axis in every panel of a cue
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(k) for k in counts])
        ax.minorticks_off()
        ax.set_xlim(counts[0] / 1.25, counts[-1] * 1.25)
        ax.set_xlabel("number of classes K (log scale)")
        ax.set_title(f"{CUES[cue]}\n{budget.replace('_', ' ')}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mIoU (%), mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(HERE / "mIoU_vs_classes.png")
    plt.close(fig)

    lengths = sorted({c["budget"] for c in curves}, key=budget_order, reverse=True)  # the longest runs solid,
    styles = {b: ("-", "--", ":", "-.")[min(i, 3)] for i, b in enumerate(lengths)}  # shorter ones dashed, dotted
    panels = sorted({(c["cue"], c["num_classes"]) for c in curves}, key=lambda p: (list(CUES).index(p[0]), p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), dpi=100, squeeze=False, sharey=False)
    for ax, (cue, k) in zip(axes[0], panels):
        for m in MODELS:
            for budget, style in styles.items():
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
