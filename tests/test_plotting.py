"""The loss curve's average follows the data instead of trailing above a falling loss."""

import math
import random

from maskformer.plotting import plot_training_curves, smooth


def falling_loss(n=200, seed=0):
    rng = random.Random(seed)
    true = [5 * math.exp(-i / 40) + 0.2 for i in range(n)]
    return true, [t * math.exp(rng.gauss(0, 0.3)) for t in true]


def test_centred_average_does_not_lag_above_a_falling_loss():
    true, noisy = falling_loss()
    smoothed = smooth(noisy)
    bias = sum(math.log(s / t) for s, t in zip(smoothed, true)) / len(true)
    assert abs(bias) < 0.05  # the average of log-ratios: centred on the true curve
    # an exponential moving average (bias-corrected, weight 0.9) sits clearly above it
    ema, avg = [], 0.0
    for i, v in enumerate(noisy, 1):
        avg = 0.9 * avg + 0.1 * v
        ema.append(avg / (1 - 0.9**i))
    ema_bias = sum(math.log(e / t) for e, t in zip(ema, true)) / len(true)
    assert ema_bias > 3 * abs(bias) and ema_bias > 0.05


def test_smooth_keeps_length_constants_and_short_series():
    assert smooth([]) == []
    assert smooth([2.0]) == [2.0]
    assert all(abs(v - 3.0) < 1e-12 for v in smooth([3.0] * 50))
    assert smooth([1.0, -1.0, 1.0], window=3) == [0.0, 1 / 3, 0.0]  # non-positive values: a plain mean


def test_curves_png(tmp_path):
    _, noisy = falling_loss(40)
    history = [{"step": i + 1, "loss": v} for i, v in enumerate(noisy)] + [{"step": 40, "mIoU": 0.5}]
    plot_training_curves(history, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_panoptic_and_instance_scores_are_drawn_next_to_miou():
    history = [{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0},
               {"step": 10, "mIoU": 0.4, "PQ": 0.3, "PQ_th": 0.2, "PQ_st": 0.5},
               {"step": 20, "mIoU": 0.6, "PQ": 0.45, "PQ_th": 0.4, "PQ_st": 0.6}]
    fig = plot_training_curves(history)
    scores = fig.axes[1]
    lines = {line.get_label(): list(line.get_ydata()) for line in scores.get_lines()}
    assert lines == {"mIoU": [40.0, 60.0], "PQ": [30.0, 45.0], "PQ_th": [20.0, 40.0], "PQ_st": [50.0, 60.0]}
    assert scores.get_title() == "validation mIoU, PQ" and scores.get_legend() is not None
    instance = plot_training_curves([{"step": 5, "mIoU": 0.5, "AP": 0.25, "AP50": 0.5}]).axes[1]
    assert {line.get_label() for line in instance.get_lines()} == {"mIoU", "AP", "AP50"}
    semantic = plot_training_curves([{"step": 5, "mIoU": 0.5}]).axes[1]
    assert semantic.get_title() == "validation mIoU" and semantic.get_ylabel() == "mIoU (%)"


def test_tensorboard_puts_the_coco_scores_with_the_validation_scores():
    from maskformer.trainer import _tensorboard_tag

    assert [_tensorboard_tag(k) for k in ("loss_ce", "mIoU", "PQ", "PQ_st", "AP50", "lr")] == [
        "train/loss_ce", "val/mIoU", "val/PQ", "val/PQ_st", "val/AP50", "misc/lr"]
