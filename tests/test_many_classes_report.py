"""The many-class study's doubling test (results/many_classes/report.py, as set in its HYPOTHESIS.md)."""

import importlib.util
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "results" / "many_classes" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("many_classes_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cells_from(means: dict) -> dict:
    """cells as summary() builds them, from {(budget, model): [mIoU per seed]} on Shapes at 7 classes."""
    return {(budget, "shape_colour", model, 7): [{"mIoU": v, "train_minutes": 1.0} for v in values]
            for (budget, model), values in means.items()}


def test_budget_lengths_and_order(report):
    assert report.budget_steps("equal_steps") == 600
    assert report.budget_steps("equal_steps_2400") == 2400
    assert report.budget_steps("equal_time") is None
    budgets = ["equal_steps_2400", "equal_time", "equal_steps_1200", "equal_steps", "equal_steps_9600"]
    assert sorted(budgets, key=report.budget_order) == [
        "equal_steps", "equal_time", "equal_steps_1200", "equal_steps_2400", "equal_steps_9600"]


@pytest.mark.parametrize("short, long, expected", [
    (80.0, 80.9, "flattened"), (80.0, 81.0, "still rising"), (2.0, 4.9, "not learning"), (2.0, 6.0, "still rising"),
])
def test_verdict(report, short, long, expected):
    assert report.verdict(short, long) == expected


def test_comparison_waits_for_the_last_model_to_pass(report):
    cells = cells_from({
        ("equal_steps", "per_pixel"): [80, 82], ("equal_steps_1200", "per_pixel"): [81, 81.5],  # flattened at 600
        ("equal_steps", "per_pixel_plus"): [3, 3], ("equal_steps_1200", "per_pixel_plus"): [4, 4],  # not learning
        ("equal_steps", "maskformer"): [50, 50], ("equal_steps_1200", "maskformer"): [70, 70],  # still rising at 600
        ("equal_steps_2400", "maskformer"): [70.5, 70.5],  # flattened at 1200
    })
    chain = report.doubling_chain(report.means_by_length(cells))
    assert [(n, v) for n, _, _, _, v in chain["shape_colour", "maskformer", 7]] == [
        (600, "still rising"), (1200, "flattened")]
    assert report.first_passing_length(chain, "shape_colour", 7) == 1200
    table = "\n".join(report.doubling_test(cells))
    assert "| Shapes | 7 | 1200 |" in table  # the comparison row, at the length where MaskFormer passed

    del cells["equal_steps_2400", "shape_colour", "maskformer", 7]
    chain = report.doubling_chain(report.means_by_length(cells))
    assert report.first_passing_length(chain, "shape_colour", 7) is None
    assert "MaskFormer (1200 steps)" in "\n".join(report.doubling_test(cells))


def test_a_model_that_passed_early_is_compared_at_equal_steps(report):
    cells = cells_from({
        ("equal_steps", "per_pixel"): [80], ("equal_steps_1200", "per_pixel"): [80.5],  # flattened at 600
        ("equal_steps", "per_pixel_plus"): [80], ("equal_steps_1200", "per_pixel_plus"): [80.2],
        ("equal_steps", "maskformer"): [50], ("equal_steps_1200", "maskformer"): [70],
        ("equal_steps_2400", "maskformer"): [75], ("equal_steps_4800", "maskformer"): [75.5],  # flattened at 2400
    })
    chain = report.doubling_chain(report.means_by_length(cells))
    assert report.first_passing_length(chain, "shape_colour", 7) == 2400
    table = "\n".join(report.doubling_test(cells))
    assert "PerPixelBaseline (to train at 2400 steps), PerPixelBaseline+ (to train at 2400 steps)" in table
    cells.update(cells_from({("equal_steps_2400", "per_pixel"): [81], ("equal_steps_2400", "per_pixel_plus"): [79]}))
    assert "| Shapes | 7 | 2400 | 81.00 | 79.00 | 75.00 | – |" in "\n".join(report.doubling_test(cells))


def test_equal_time_budgets(report):
    assert report.time_budget_steps("equal_time") == 600
    assert report.time_budget_steps("equal_time_5455") == 5455
    assert report.time_budget_steps("equal_steps_2400") is None and report.budget_steps("equal_time_5455") is None
    budgets = ["equal_time_5455", "equal_steps_4800", "equal_time", "equal_steps", "equal_steps_2400"]
    assert sorted(budgets, key=report.budget_order) == [
        "equal_steps", "equal_time", "equal_steps_2400", "equal_steps_4800", "equal_time_5455"]
    assert report.budget_title("equal_time_5455") == "equal time (the time PerPixelBaseline takes for 5455 steps)"
    # the slowest model (fewest steps in PerPixelBaseline's time) trains exactly the comparison length, the others more
    table = {("shape_colour", "per_pixel", 7): 600, ("shape_colour", "per_pixel_plus", 7): 386,
             ("shape_colour", "maskformer", 7): 264}
    n = report.comparison_time_budget(table, "shape_colour", 7, 2400)
    assert n == 5455
    assert [report.equal_time_steps(table["shape_colour", m, 7], n) for m in report.MODELS] == [5455, 3509, 2400]
    assert report.equal_time_steps(600, 600) == 600 and report.equal_time_steps(264, 600) == 264


def row(model, budget, seed, miou, steps):
    return {"cue": "shape_colour", "model": model, "budget": budget, "num_classes": 7, "seed": seed, "mIoU": miou,
            "steps": steps, "train_minutes": 1.0}


def test_equal_steps_runs_stand_in_for_the_equal_time_runs_of_the_same_length(report):
    table = {("shape_colour", "per_pixel", 7): 600, ("shape_colour", "per_pixel_plus", 7): 386,
             ("shape_colour", "maskformer", 7): 264}
    rows = [row("per_pixel", "equal_steps", s, 80 + s, 600) for s in range(2)]
    rows += [row("maskformer", "equal_steps_2400", s, 70 + s, 2400) for s in range(2)]
    rows += [row("maskformer", "equal_time", 0, 60, 264)]
    # PerPixelBaseline's 600-step runs are its equal-time runs; MaskFormer's 2400-step ones only once an
    # equal_time_5455 run of that task and class count exists
    assert [(r["model"], r["budget"], r["seed"]) for r in report.mirrored(rows, table)] == [
        ("per_pixel", "equal_time", 0), ("per_pixel", "equal_time", 1)]
    rows += [row("per_pixel_plus", "equal_time_5455", 0, 85, 3509)]
    extra = report.mirrored(rows, table)
    assert [(r["model"], r["budget"], r["seed"], r["mIoU"], r["steps"]) for r in extra[-2:]] == [
        ("maskformer", "equal_time_5455", 0, 70, 2400), ("maskformer", "equal_time_5455", 1, 71, 2400)]
    assert not report.mirrored(rows + extra, table)  # nothing twice


def test_equal_time_table_at_the_comparison_length(report):
    table = {("shape_colour", "per_pixel", 7): 600, ("shape_colour", "per_pixel_plus", 7): 386,
             ("shape_colour", "maskformer", 7): 264}
    cells = cells_from({**{("equal_steps_1200", m): [80] for m in report.MODELS},  # every model flattened at 1200
                        **{("equal_steps_2400", m): [80.5] for m in report.MODELS},
                        ("equal_time_2727", "maskformer"): [80]})  # its 1200-step runs, as mirrored() adds them
    text = "\n".join(report.doubling_test(cells, table))
    assert ("| Shapes | 7 | 1200 | 2727 | – (2727 steps) | – (1754 steps) | 80.00 (n=1, 1200 steps) | "
            "`equal_time shape_colour per_pixel 7 2727`, `equal_time shape_colour per_pixel_plus 7 2727` |") in text
    cells.update(cells_from({("equal_time_2727", "per_pixel"): [81], ("equal_time_2727", "per_pixel_plus"): [82]}))
    text = "\n".join(report.doubling_test(cells, table))
    assert "| 81.00 (n=1, 2727 steps) | 82.00 (n=1, 1754 steps) | 80.00 (n=1, 1200 steps) | – |" in text
    del cells["equal_steps_2400", "shape_colour", "maskformer", 7]  # no comparison length: no equal-time row
    assert "Equal time at the comparison length" not in "\n".join(report.doubling_test(cells, table))


def test_a_pass_that_a_later_doubling_contradicts_does_not_count(report):
    cells = cells_from({
        ("equal_steps", "per_pixel"): [80], ("equal_steps_1200", "per_pixel"): [80.5],  # flattened at 600
        ("equal_steps", "per_pixel_plus"): [80], ("equal_steps_1200", "per_pixel_plus"): [80.2],
        ("equal_steps", "maskformer"): [7], ("equal_steps_1200", "maskformer"): [7.5],  # "flattened" at 600 ...
        ("equal_steps_2400", "maskformer"): [12],  # ... but it rose again from 1200 to 2400: it had not started
    })
    chain = report.doubling_chain(report.means_by_length(cells))
    assert [v for *_, v in chain["shape_colour", "maskformer", 7]] == ["flattened", "still rising"]
    assert report.first_passing_length(chain, "shape_colour", 7) is None
    assert "MaskFormer (2400 steps)" in "\n".join(report.doubling_test(cells))
    cells.update(cells_from({("equal_steps_4800", "maskformer"): [12.5]}))  # flattened at 2400: passes there
    chain = report.doubling_chain(report.means_by_length(cells))
    assert report.first_passing_length(chain, "shape_colour", 7) == 2400


def test_what_runs_next_and_its_cost(report):
    minutes = {600: 2.0, 1200: 4.0, 2400: 8.0}
    cells = {(budget, "shape_colour", model, 7): [{"mIoU": v, "train_minutes": minutes[report.budget_steps(budget)]}
                                                  for v in values]
             for (budget, model), values in {
                 ("equal_steps", "per_pixel"): [80, 80, 80], ("equal_steps_1200", "per_pixel"): [80.5] * 3,  # passed
                 ("equal_steps", "per_pixel_plus"): [60] * 3, ("equal_steps_1200", "per_pixel_plus"): [70] * 3,
                 ("equal_steps", "maskformer"): [50] * 3, ("equal_steps_1200", "maskformer"): [60] * 3,
                 ("equal_steps_2400", "maskformer"): [60.5, 60.5],  # 2 of 3 seeds
             }.items()}
    means = report.means_by_length(cells)
    text = "\n".join(report.next_runs(cells, report.doubling_chain(means), means))
    assert "PerPixelBaseline |" not in text  # passed, and no comparison length yet
    assert ("| Shapes | 7 | PerPixelBaseline+ | still rising: +10.00 from 600 to 1200 | "
            "`sweep shape_colour per_pixel_plus 7 2400` | 3 | 24 |") in text  # 3 runs x 4 minutes x 2
    assert "| MaskFormer | 2 of 3 seeds at 2400 | `sweep shape_colour maskformer 7 2400` | 1 | 8 |" in text
    assert "In all 4 runs, about 0.5 hours of training" in text
    cells["equal_steps_2400", "shape_colour", "maskformer", 7].append({"mIoU": 60.5, "train_minutes": 8.0})
    cells["equal_steps_2400", "shape_colour", "per_pixel_plus", 7] = [{"mIoU": 70.5, "train_minutes": 8.0}] * 3
    means = report.means_by_length(cells)
    text = "\n".join(report.next_runs(cells, report.doubling_chain(means), means))
    # every model has passed by 1200: the comparison length is 1200, where each has its runs, so nothing is left
    assert report.first_passing_length(report.doubling_chain(means), "shape_colour", 7) == 1200 and not text
    # MaskFormer rises again from 1200 to 2400 and passes there: the comparison moves to 2400, where PerPixelBaseline,
    # which passed at 600, has no runs yet
    cells["equal_steps_2400", "shape_colour", "maskformer", 7] = [{"mIoU": 65, "train_minutes": 8.0}] * 3
    cells["equal_steps_4800", "shape_colour", "maskformer", 7] = [{"mIoU": 65.5, "train_minutes": 16.0}] * 3
    means = report.means_by_length(cells)
    text = "\n".join(report.next_runs(cells, report.doubling_chain(means), means))
    assert ("| PerPixelBaseline | passed; the comparison length of 7 classes | `sweep shape_colour per_pixel 7 2400` | "
            "3 | 24 |") in text
