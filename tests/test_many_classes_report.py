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
    return {(budget, "shape_colour", model, 7): [{"mIoU": v} for v in values]
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
