"""Sweeps: one config, a grid of choices, several seeds; every run an ordinary training run.

``python -m maskformer sweep shapes/maskformer_tiny --grid model.num_queries=7,20,50 --seeds 3 --output DIR``
trains every combination of the grid's values with seeds 0..N-1 (:class:`~maskformer.trainer.Trainer`, one
run directory each under ``DIR/runs/``) and writes

- ``DIR/results.csv``: one row per finished run: each grid key, ``seed``, ``mIoU`` (percent), ``steps``,
  ``train_minutes`` (the training steps' own time, evaluation left out) and ``run_dir``;
- ``DIR/summary.md``: mean +- standard deviation over the seeds of every cell of the grid;
- ``DIR/mIoU.png``: the score against the first grid key (one line per value of the other keys).

Running the same command again skips the finished runs (each has ``result.json``) and resumes the
unfinished ones from their latest checkpoint, so an interrupted sweep loses at most the steps since the
last checkpoint; a grid with new values runs only the new cells. A run directory that holds a run
made with a different config (another ``solver.max_iters``, say) stops the sweep with the fields that
differ, instead of mixing two experiments in one table.

A grid key may join several keys with ``+`` that take the same value, e.g.
``--grid data.num_classes+model.num_classes+model.num_queries=7,19``; the key ``config`` varies the base
config itself, e.g. the paper's Table 4 variants side by side: ``--grid config=shapes/per_pixel_tiny,
shapes/per_pixel_plus_tiny,shapes/maskformer_fixed_tiny,shapes/maskformer_tiny``. ``jobs`` runs several trainings at
once in separate processes, each with ``threads // jobs`` intra-op threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import itertools
import json
import math
import multiprocessing
import os
import re
import statistics
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["parse_grid", "plan_sweep", "run_sweep", "SweepRun", "summarise"]

CONFIG_KEY = "config"  # the grid key that varies the base config (a shipped name or a YAML file)
RESULT_FILE = "result.json"  # written into a run directory when its training has finished
# Fields that cannot change a run's outcome: a finished run is reused whatever they say.
IGNORED_FIELDS = ("output_dir", "device", "log_period", "tensorboard", "data.num_workers", "model.id2label",
                  "model.extra")


@dataclass
class SweepRun:
    """One training of a sweep: a cell of the grid (``{key: value text}``) and a seed."""

    cell: dict[str, str]
    seed: int
    directory: Path
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE, as on the command line

    @property
    def label(self) -> str:
        return " ".join([*(f"{k}={v}" for k, v in self.cell.items()), f"seed={self.seed}"])


def _split_values(text: str) -> list[str]:
    """``"7,20,[1,2]"`` -> ``["7", "20", "[1,2]"]``: commas inside brackets belong to a YAML list."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["model.num_queries=7,20", "solver.lr=1e-4,3e-4"]`` -> ``[(key, [values...]), ...]``, in order.

    Values stay text (read as YAML by :func:`maskformer.recipes.load_config`, as on the command line).
    """
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        owned = sorted({"seed", "output_dir"} & set(key.split("+")))
        if owned:
            raise ValueError(f"--grid {item!r}: the sweep sets {', '.join(owned)} itself (--seeds, --output)")
        if CONFIG_KEY in key.split("+") and key != CONFIG_KEY:
            raise ValueError(f"--grid {item!r}: {CONFIG_KEY} (the base config) cannot be joined to other keys")
        if not sep or not key or not values.strip():
            raise ValueError(f"--grid {item!r} must look like KEY=V1,V2[,...], e.g. model.num_queries=20,50,100")
        parsed = _split_values(values)
        if "" in parsed:
            raise ValueError(f"--grid {item!r}: an empty value; separate values by single commas")
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"--grid {item!r}: a value is given twice")
        if key in (k for k, _ in grid):
            raise ValueError(f"--grid {key}: given twice; put all its values in one --grid {key}=V1,V2")
        grid.append((key, parsed))
    return grid


def _directory_name(cell: dict[str, str], seed: int) -> str:
    parts = [f"{key}={value}" for key, value in cell.items()] + [f"seed={seed}"]
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "__".join(parts))


def plan_sweep(base: str, grid: list[tuple[str, list[str]]], seeds: int, output: str | os.PathLike,
               overrides: list[str] | None = None) -> list[tuple[SweepRun, Any]]:
    """Every (cell, seed) of the sweep with its checked :class:`~maskformer.recipes.TrainConfig`.

    All configs are built before anything runs, so a bad grid value stops the sweep at once with the
    config's one-line message.
    """
    from .recipes import load_config

    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: must be >= 1")
    output = Path(output)
    keys = [key for key, _ in grid]
    planned = []
    for values in itertools.product(*(v for _, v in grid)):
        cell = dict(zip(keys, values))
        for seed in range(seeds):
            directory = output / "runs" / _directory_name(cell, seed)
            settings = [f"{sub}={value}" for key, value in cell.items() if key != CONFIG_KEY
                        for sub in key.split("+")]
            run = SweepRun(cell, seed, directory, [*(overrides or []), *settings])
            try:
                cfg = load_config(cell.get(CONFIG_KEY, base), run.overrides,
                                  {"seed": seed, "output_dir": str(directory)})
            except (TypeError, ValueError) as err:
                raise ValueError(f"{run.label}: {err}") from None
            planned.append((run, cfg))
    return planned


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in IGNORED_FIELDS:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(stored: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """``["solver.max_iters: run 20, sweep 30", ...]``: the fields (outcome-changing ones) that differ.

    Only fields both configs have count: a field added to the code after the run was made is not in its
    ``config.json``, and the run used what is now that field's default.
    """
    old, new = _flatten(stored), _flatten(json.loads(json.dumps(planned)))  # JSON turns tuples into lists
    names = sorted((set(old) & set(new)) - set(IGNORED_FIELDS))
    return [f"{n}: run {old.get(n)!r}, sweep {new.get(n)!r}" for n in names if old.get(n) != new.get(n)]


def read_result(directory: Path) -> dict[str, Any] | None:
    path = directory / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a damaged marker: the run is treated as unfinished and resumed


def train_seconds(history: list[dict[str, Any]]) -> float:
    """The time of the training steps alone, from a run's logged records (evaluation left out): each
    logged record holds the mean ``time_per_step`` since the previous one."""
    total, previous = 0.0, 0
    for record in history:
        if "time_per_step" in record:
            total += record["time_per_step"] * (record["step"] - previous)
            previous = record["step"]
    return total


def train_one(cfg, threads: int | None = None, cache_samples: bool = False) -> dict[str, Any]:
    """Train (or resume, or finish) one run of a sweep; its printed lines go to ``train.log`` in its directory.
    ``cache_samples``: Shapes keeps every image it draws (:func:`maskformer.data.cached.cache_draws`): the same
    run, faster past its first epoch.

    Returns the run's result (``mIoU`` fraction, ``steps``, ``train_seconds``), also written to ``result.json``.
    """
    import torch

    from .checkpoint import atomic_write
    from .trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    directory = Path(cfg.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "train.log", "a") as log, contextlib.redirect_stdout(log):
        try:
            datasets = (None, None)
            if cache_samples and cfg.data.dataset == "shapes":
                from .data.build import build_datasets
                from .data.cached import cache_draws

                datasets = tuple(cache_draws(d) for d in build_datasets(cfg.data, cfg.seed))
            trainer = Trainer(cfg, progress=False, train_dataset=datasets[0], val_dataset=datasets[1])
            trainer.resume()  # False (a fresh start) when there is no checkpoint yet
            results = trainer.train()
        except Exception:
            traceback.print_exc(file=log)
            raise
    result = {"mIoU": results["mIoU"], "steps": trainer.step, "train_seconds": train_seconds(trainer.history),
              "config": cfg.to_dict()}
    text = json.dumps(result, indent=2, default=str)
    atomic_write(directory / RESULT_FILE, lambda f: f.write(text.encode()))
    return result


def _train_in_worker(config_dict: dict[str, Any], threads: int, cache_samples: bool = False) -> dict[str, Any]:
    """:func:`train_one` in a worker process (configs travel as plain dicts)."""
    from .recipes import TrainConfig

    return train_one(TrainConfig.from_dict(config_dict), threads, cache_samples)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_sweep(base: str, grid: list[tuple[str, list[str]]], seeds: int, output: str | os.PathLike,
              overrides: list[str] | None = None, jobs: int = 1, threads: int | None = None,
              print_fn=print, cache_samples: bool = False) -> list[dict[str, Any]]:
    """Plan the sweep, train what is not finished, and write ``results.csv``, ``summary.md`` and ``mIoU.png``.

    Args:
        base: a config name or YAML file (as ``train --config``).
        grid: from :func:`parse_grid`.
        seeds: seeds 0..seeds-1 for every cell.
        output: the sweep's directory.
        overrides: KEY=VALUE settings of every run.
        jobs: trainings at once (separate processes); 1 trains in this process.
        threads: intra-op threads in all (default: ``torch.get_num_threads()``), split between the jobs;
            with ``jobs=1`` None leaves this process's setting as it is.
        cache_samples: Shapes runs keep every image they draw (:func:`maskformer.data.cached.cache_draws`); the
            same runs, faster past their first epoch.

    Returns the rows of ``results.csv`` (finished runs). Raises ``ValueError`` for a bad grid or a run
    directory holding another experiment, ``RuntimeError`` after the other runs when some run failed.
    """
    import torch

    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be >= 1")
    output = Path(output)
    planned = plan_sweep(base, grid, seeds, output, overrides)
    for run, cfg in planned:
        stored = run.directory / "config.json"
        if stored.exists():
            differ = config_differences(json.loads(stored.read_text()), cfg.to_dict())
            if differ:
                raise ValueError(f"{run.directory} holds a run with another config ({'; '.join(differ)}); use "
                                 f"another --output for a different experiment, or delete that run to redo it")
    output.mkdir(parents=True, exist_ok=True)
    (output / "sweep.json").write_text(json.dumps({"base": str(base), "grid": grid, "seeds": seeds,
                                                   "overrides": list(overrides or [])}, indent=2))
    results: dict[Path, dict[str, Any]] = {}
    todo = []
    for run, cfg in planned:
        done = read_result(run.directory)
        if done is not None:
            results[run.directory] = done
        else:
            todo.append((run, cfg))
    keys = [key for key, _ in grid]
    seeds_text = f"{seeds} seed{'s' if seeds > 1 else ''}"
    print_fn(f"sweep: {len(planned)} runs ({len(planned) // seeds} cells x {seeds_text}), {len(results)} finished "
             f"already, {len(todo)} to train, {jobs} at a time; results in {output}")
    per_job = max(1, (threads or torch.get_num_threads()) // jobs)
    cores = os.cpu_count() or 1
    if jobs > cores:
        print_fn(f"note: --jobs {jobs} on {cores} cores: the runs will share cores, each one slower")
    started, failures = time.perf_counter(), []

    def finished(n: int, run: SweepRun, result: dict[str, Any] | None, error: BaseException | None) -> None:
        if result is not None:
            results[run.directory] = result
            write_outputs(output, keys, planned, results)
        remaining = len(todo) - n
        per_run = (time.perf_counter() - started) / n  # wall time per run with `jobs` at once
        eta = f", about {_minutes(per_run * remaining)} left" if remaining else ""
        what = (f"mIoU {100 * result['mIoU']:.2f}, {result['steps']} steps, {_minutes(result['train_seconds'])} "
                f"of training" if result is not None else f"FAILED: {' '.join(str(error).split())}")
        print_fn(f"[{n}/{len(todo)}] {run.label}: {what}{eta}")

    try:
        if jobs == 1:
            for n, (run, cfg) in enumerate(todo, 1):
                try:  # this process's thread count is left alone unless `threads` was given
                    result, error = train_one(cfg, threads, cache_samples), None
                except Exception as err:  # a run's failure is that run's, not the sweep's
                    result, error = None, err
                    failures.append(run)
                finished(n, run, result, error)
        elif todo:
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
            with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = {pool.submit(_train_in_worker, cfg.to_dict(), per_job, cache_samples): run
                           for run, cfg in todo}
                for n, future in enumerate(concurrent.futures.as_completed(futures), 1):
                    run = futures[future]
                    try:
                        result, error = future.result(), None
                    except Exception as err:  # a worker's failure is that run's, not the sweep's
                        result, error = None, err
                        failures.append(run)
                    finished(n, run, result, error)
    finally:
        rows = write_outputs(output, keys, planned, results)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(planned)} runs failed ({', '.join(r.label for r in failures)}); "
                           f"their train.log says why; run the same command again to retry them")
    return rows


def write_outputs(output: Path, keys: list[str], planned: list[tuple[SweepRun, Any]],
                  results: dict[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    """``results.csv``, ``summary.md`` and ``mIoU.png`` from the finished runs of this sweep's plan."""
    rows = []
    for run, _ in planned:
        result = results.get(run.directory)
        if result is None:
            continue
        rows.append({**run.cell, "seed": run.seed, "mIoU": round(100 * result["mIoU"], 3), "steps": result["steps"],
                     "train_minutes": round(result["train_seconds"] / 60, 3), "run_dir": str(run.directory)})
    columns = [*keys, "seed", "mIoU", "steps", "train_minutes", "run_dir"]
    with open(output / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    cells = summarise(rows, keys)
    (output / "summary.md").write_text(summary_markdown(cells, keys, len(planned), len(rows)))
    if rows:
        plot_sweep(cells, keys, output / "mIoU.png")
    return rows


def summarise(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """One entry per cell of the grid (in the grid's order): its values, ``n`` seeds, the seeds' ``scores``,
    mIoU mean and std (sample standard deviation; NaN for one seed), mean steps and training minutes."""
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(tuple(row[k] for k in keys), []).append(row)
    summary = []
    for values, group in cells.items():
        scores = [r["mIoU"] for r in group]
        summary.append({**dict(zip(keys, values)), "n": len(group), "scores": scores, "mean": statistics.fmean(scores),
                        "std": statistics.stdev(scores) if len(scores) > 1 else math.nan,
                        "steps": statistics.fmean(r["steps"] for r in group),
                        "train_minutes": statistics.fmean(r["train_minutes"] for r in group)})
    return summary


def summary_markdown(cells: list[dict[str, Any]], keys: list[str], planned: int, finished: int) -> str:
    lines = [f"mIoU (percent) over seeds, mean +- sample std; {finished} of {planned} runs finished.", ""]
    header = [*keys, "seeds", "mIoU", "steps", "train min"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        spread = f" +- {cell['std']:.2f}" if not math.isnan(cell["std"]) else ""
        lines.append("| " + " | ".join([*(str(cell[k]) for k in keys), str(cell["n"]), f"{cell['mean']:.2f}{spread}",
                                         f"{cell['steps']:.0f}", f"{cell['train_minutes']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def plot_sweep(cells: list[dict[str, Any]], keys: list[str], path: Path) -> None:
    """mIoU (mean +- std over seeds, and each seed faint) against the first grid key; one line per value of
    the other keys."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure of its own, not pyplot: the caller's backend (a notebook's inline one) is left as it is
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x_key = keys[0] if keys else None
    x_values = list(dict.fromkeys(str(c[x_key]) for c in cells)) if x_key else [""]
    numeric = x_key is not None and all(_number(v) is not None for v in x_values)
    position = {v: (_number(v) if numeric else i) for i, v in enumerate(x_values)}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault(tuple(str(cell[k]) for k in keys[1:]), []).append(cell)
    for rest, group in groups.items():
        xs = [position[str(c[x_key])] if x_key else 0 for c in group]
        ys = [c["mean"] for c in group]
        errors = [0.0 if math.isnan(c["std"]) else c["std"] for c in group]
        label = ", ".join(f"{k}={v}" for k, v in zip(keys[1:], rest)) or None
        line = ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
        seeds = [(x, score) for x, c in zip(xs, group) for score in c["scores"]]  # each seed, faint
        ax.scatter(*zip(*seeds), s=12, alpha=0.35, color=line[0].get_color())
    if not numeric:  # names (configs, losses): one tick each, slanted so that long ones fit
        ax.set_xticks(range(len(x_values)), x_values, rotation=15, ha="right", fontsize=8)
    ax.set_xlabel(x_key or "")
    ax.set_ylabel("mIoU (%), mean +- std over seeds")
    ax.grid(alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
