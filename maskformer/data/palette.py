"""Colours for class maps when a dataset has no official palette."""

from __future__ import annotations

import colorsys

__all__ = ["distinct_palette"]


def distinct_palette(num_colors: int) -> tuple[tuple[int, int, int], ...]:
    """`num_colors` RGB triples (0..255), deterministic, neighbours far apart in hue.

    Hues step by the golden ratio (0.618 of a turn), which spreads any number of them evenly
    without knowing the count in advance; saturation and value alternate so that hues that do
    come close still differ in brightness.
    """
    colors = []
    for i in range(num_colors):
        hue = (i * 0.6180339887) % 1.0
        saturation = (0.65, 0.95)[i % 2]
        value = (0.95, 0.75, 0.85)[i % 3]
        colors.append(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value)))
    return tuple(colors)
