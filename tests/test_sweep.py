"""The sweep runner: a tiny grid end to end, skipping finished runs, resuming an interrupted one, running only
what a changed grid adds, refusing to mix experiments, parallel jobs, and the command line."""

import csv
import json
from pathlib import Path

import pytest

from maskformer.cli import main
from maskformer.sweep import config_differences, parse_grid, plan_sweep, run_sweep, summarise, train_seconds
from maskformer.trainer import Trainer

BASE = "shapes/maskformer_tiny"
# A few seconds a run: 32 px images, 4 steps, a checkpoint every 2.
TINY = ["solver.max_iters=4", "solver.batch_size=2", "solver.warmup_iters=0", "data.num_train=8", "data.num_val=2",
        "data.image_size=32", "data.test_short_edge=32", "data.test_max_size=32", "eval_period=0",
        "checkpoint_period=2"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_parse_grid():
    assert parse_grid(["model.num_queries=7,20", "solver.lr=1e-4"]) == [
        ("model.num_queries", ["7", "20"]), ("solver.lr", ["1e-4"])]
    assert parse_grid(["data.test_aug_short_edges=[256,512],[512]"]) == [
        ("data.test_aug_short_edges", ["[256,512]", "[512]"])]
    for bad, message in [("model.num_queries", "KEY=V1,V2"), ("model.num_queries=7,,8", "empty value"),
                         ("model.num_queries=7,7", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_grid([bad])
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["model.dec_layers=1", "model.dec_layers=2"])
    with pytest.raises(ValueError, match="sets seed itself"):
        parse_grid(["seed=1,2"])


def test_plan_checks_every_config_first(tmp_path):
    grid = parse_grid(["data.num_classes+model.num_classes+model.num_queries=3,4", "model.dec_layers=1,2"])
    planned = plan_sweep(BASE, grid, 2, tmp_path, TINY)
    assert len(planned) == 8
    run, cfg = planned[-1]
    assert (cfg.data.num_classes, cfg.model.num_classes, cfg.model.num_queries, cfg.model.dec_layers) == (4, 4, 4, 2)
    assert cfg.seed == 1 and cfg.output_dir == str(run.directory)
    assert run.directory.parent == tmp_path / "runs"
    with pytest.raises(ValueError, match=r"model.dec_layers=0 seed=0: .*model.dec_layers=0: must be >= 1"):
        plan_sweep(BASE, parse_grid(["model.dec_layers=1,0"]), 1, tmp_path, TINY)
    # the paper's Table 4 variants side by side: the grid varies the base config itself
    variants = parse_grid(["config=shapes/per_pixel_tiny,shapes/per_pixel_plus_tiny,shapes/maskformer_fixed_tiny"])
    models = [cfg.model for _, cfg in plan_sweep(BASE, variants, 1, tmp_path, TINY)]
    assert [(m.architecture, m.matching) for m in models] == [
        ("per_pixel", "bipartite"), ("per_pixel_plus", "bipartite"), ("maskformer", "fixed")]
    with pytest.raises(ValueError, match="cannot be joined"):
        parse_grid(["config+model.dec_layers=1"])


def test_summary_statistics():
    rows = [{"k": "a", "seed": s, "mIoU": m, "steps": 4, "train_minutes": 1.0} for s, m in enumerate([50.0, 54.0])]
    rows.append({"k": "b", "seed": 0, "mIoU": 60.0, "steps": 4, "train_minutes": 2.0})
    a, b = summarise(rows, ["k"])
    assert (a["n"], a["mean"], a["std"]) == (2, 52.0, pytest.approx(2.8284271))
    assert b["n"] == 1 and b["std"] != b["std"]  # NaN: one seed has no spread


def test_train_seconds_leaves_evaluation_out():
    history = [{"step": 2, "time_per_step": 0.5}, {"step": 2, "mIoU": 0.1}, {"step": 5, "time_per_step": 1.0}]
    assert train_seconds(history) == 2 * 0.5 + 3 * 1.0


def test_tiny_sweep_then_rerun_skips_and_a_new_value_runs_alone(tmp_path):
    out = tmp_path / "sweep"
    lines = []
    rows = run_sweep(BASE, parse_grid(["model.num_queries=4,6"]), 2, out, TINY, print_fn=lines.append)
    assert len(rows) == 4 and "0 finished already, 4 to train" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["[1/4] model.num_queries=4 seed=0",
                                                         "[2/4] model.num_queries=4 seed=1",
                                                         "[3/4] model.num_queries=6 seed=0",
                                                         "[4/4] model.num_queries=6 seed=1"]
    assert "left" in lines[1] and "left" not in lines[-1]  # an estimate of the time left, until the last
    table = read_csv(out / "results.csv")
    assert list(table[0]) == ["model.num_queries", "seed", "mIoU", "steps", "train_minutes", "run_dir"]
    assert [(r["model.num_queries"], r["seed"], r["steps"]) for r in table] == [
        ("4", "0", "4"), ("4", "1", "4"), ("6", "0", "4"), ("6", "1", "4")]
    for row in table:  # one standard run directory each
        run_dir = Path(row["run_dir"])
        result = json.loads((run_dir / "result.json").read_text())
        assert float(row["mIoU"]) == round(100 * result["mIoU"], 3)
        assert {"metrics.jsonl", "model", "checkpoints", "config.json"} <= {p.name for p in run_dir.iterdir()}
    summary = (out / "summary.md").read_text()
    assert "| model.num_queries | seeds | mIoU |" in summary and "| 4 | 2 |" in summary and "+-" in summary
    assert (out / "mIoU.png").stat().st_size > 0

    stamps = {r["run_dir"]: (Path(r["run_dir"]) / "metrics.jsonl").stat().st_mtime_ns for r in table}
    lines.clear()
    again = run_sweep(BASE, parse_grid(["model.num_queries=4,6"]), 2, out, TINY, print_fn=lines.append)
    assert lines == [lines[0]] and "4 finished already, 0 to train" in lines[0]
    assert again == rows
    assert stamps == {r["run_dir"]: (Path(r["run_dir"]) / "metrics.jsonl").stat().st_mtime_ns
                      for r in table}  # nothing retrained

    lines.clear()
    grown = run_sweep(BASE, parse_grid(["model.num_queries=4,6,8"]), 1, out, TINY, print_fn=lines.append)
    assert "2 finished already, 1 to train" in lines[0] and lines[1].startswith("[1/1] model.num_queries=8 seed=0")
    assert [r["model.num_queries"] for r in grown] == ["4", "6", "8"]  # this grid's runs only, seed 0


def test_an_interrupted_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    grid = parse_grid(["model.dec_layers=2"])
    [(run, cfg)] = plan_sweep(BASE, grid, 1, tmp_path / "interrupted", TINY)

    def stop_after_step_3(trainer, step, record):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # as Ctrl-C would, after the step-2 checkpoint
        Trainer(cfg, progress=False, callbacks=[stop_after_step_3]).train()
    assert not (run.directory / "result.json").exists()
    lines = []
    [resumed] = run_sweep(BASE, grid, 1, tmp_path / "interrupted", TINY, print_fn=lines.append)
    assert "resumed from" in (run.directory / "train.log").read_text() and "at step 2" in (
        run.directory / "train.log").read_text()
    [straight] = run_sweep(BASE, grid, 1, tmp_path / "straight", TINY, print_fn=lambda line: None)
    assert resumed["steps"] == straight["steps"] == 4
    assert resumed["mIoU"] == straight["mIoU"]  # exact resumption on CPU


def test_a_run_with_another_config_is_never_mixed_in(tmp_path):
    grid = parse_grid(["model.num_queries=4"])
    run_sweep(BASE, grid, 1, tmp_path, TINY, print_fn=lambda line: None)
    with pytest.raises(ValueError, match=r"another config \(solver.max_iters: run 4, sweep 5\)"):
        run_sweep(BASE, grid, 1, tmp_path, TINY + ["solver.max_iters=5"], print_fn=lambda line: None)
    assert config_differences({"solver": {"lr": 1.0}, "output_dir": "a"},
                              {"solver": {"lr": 1.0, "new_field": 2}, "output_dir": "b"}) == []


def test_parallel_jobs_give_the_same_results(tmp_path):
    grid = parse_grid(["model.num_queries=4,6"])
    serial = run_sweep(BASE, grid, 1, tmp_path / "serial", TINY, threads=1, print_fn=lambda line: None)
    lines = []
    parallel = run_sweep(BASE, grid, 1, tmp_path / "parallel", TINY, jobs=2, threads=2, print_fn=lines.append)
    assert "2 at a time" in lines[0] and len([line for line in lines if line.startswith("[")]) == 2
    assert [r["mIoU"] for r in parallel] == [r["mIoU"] for r in serial]


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    # options and KEY=VALUE fields in any order after BASE_CONFIG
    main(["sweep", BASE, "--grid", "model.num_queries=4", *TINY[:3], "--seeds", "1", "--output", str(out), *TINY[3:]])
    printed = capsys.readouterr().out
    assert "[1/1] model.num_queries=4 seed=0: mIoU" in printed
    assert len(read_csv(out / "results.csv")) == 1
    with pytest.raises(SystemExit, match="sweep: --output DIR is required"):
        main(["sweep", BASE, "--grid", "model.num_queries=4"])
    with pytest.raises(SystemExit, match="model.num_queries='abc': expected int"):
        main(["sweep", BASE, "--grid", "model.num_queries=abc", "--output", str(out)])
    with pytest.raises(SystemExit, match="must look like KEY=VALUE"):
        main(["sweep", BASE, "--output", str(out), "stray"])
