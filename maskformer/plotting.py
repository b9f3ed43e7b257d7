"""Figures of a training run: the loss and mIoU curves written next to ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_metrics", "plot_training_curves", "smooth"]


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (one JSON object per line)."""
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {n}: not JSON ({err}): {line[:80]!r}") from None
    return records


def smooth(values: Sequence[float], window: int | None = None) -> list[float]:
    """A centred moving average, in log space (the loss axis is logarithmic).

    Each point averages the ``window`` points around it (shrinking at the ends), so the curve
    follows the data instead of trailing it: an exponential moving average, even bias-corrected,
    lags behind a falling loss and sits above every point. ``window`` defaults to about a tenth of
    the points (odd, at least 1). Non-positive values are averaged as they are.
    """
    n = len(values)
    if n == 0:
        return []
    if window is None:
        window = max(1, n // 10) | 1
    half = window // 2
    positive = all(v > 0 for v in values)
    xs = [math.log(v) for v in values] if positive else list(values)
    prefix = [0.0]
    for x in xs:
        prefix.append(prefix[-1] + x)
    out = []
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        mean = (prefix[hi] - prefix[lo]) / (hi - lo)
        out.append(math.exp(mean) if positive else mean)
    return out


# The validation scores the right panel draws when a record has them: (line style, colour).
SCORE_STYLES = {"mIoU": ("o-", "tab:green"), "PQ": ("s-", "tab:purple"), "PQ_th": ("s--", "tab:red"),
                "PQ_st": ("s:", "tab:brown"), "AP": ("^-", "tab:orange"), "AP50": ("^--", "tab:olive")}


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike | None = None,
                         title: str = "", axes=None):
    """Loss (per logged step, and smoothed) and the validation scores against the step.

    ``history`` is a list of records as in ``metrics.jsonl``: training records have ``loss``
    (or ``loss_avg``), evaluation records ``mIoU`` and, for panoptic or instance runs, COCO ``PQ``
    (with ``PQ_th``, ``PQ_st``) or mask ``AP`` (with ``AP50``), all drawn in % on the right panel. Writes a PNG to ``path`` when given; draws
    into ``axes`` (two matplotlib axes) when given, otherwise a new figure. Returns the figure.
    """
    train = [r for r in history if "loss" in r or "loss_avg" in r]
    evals = [r for r in history if r.get("mIoU") is not None]
    own_figure = axes is None
    if own_figure and path is not None:
        # A figure outside pyplot: it needs no display and leaves pyplot's backend alone (switching
        # it to Agg would stop a notebook that trains from showing any later figure).
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.6))
        axes = fig.subplots(1, 2)
    elif own_figure:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    else:
        fig = axes[0].figure
    ax_loss, ax_iou = axes
    if train:
        steps = [r["step"] for r in train]
        loss = [r.get("loss_avg", r.get("loss")) for r in train]
        ax_loss.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="logged")
        ax_loss.plot(steps, smooth(loss), color="tab:blue", lw=2, label="centred average")
        ax_loss.set_yscale("log")
        ax_loss.legend()
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    drawn = []
    for key, style in SCORE_STYLES.items():
        points = [(r["step"], 100 * r[key]) for r in evals if r.get(key) is not None]
        if points:
            ax_iou.plot(*zip(*points), style[0], color=style[1], label=key)
            drawn.append(key)
    if drawn:
        ax_iou.set_ylim(0, 100)
    if len(drawn) > 1:
        ax_iou.legend(fontsize=8)
    ax_iou.set(xlabel="step", ylabel=f"{drawn[0] if len(drawn) == 1 else 'score'} (%)",
               title="validation " + ("mIoU" if len(drawn) <= 1 else ", ".join(k for k in drawn if "_" not in k)))
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
