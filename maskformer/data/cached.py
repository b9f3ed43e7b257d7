"""Keep a generated dataset's drawn samples in memory: :func:`cache_draws`.

:class:`~maskformer.data.shapes.Shapes` draws every sample from its index and the seed (numpy, a few milliseconds at
64 px; the marker probe also places its shapes without overlap). A run of several epochs draws each image again
every epoch; with the cache only the first epoch draws. The random augmentation is applied after the draw, to a fresh
copy, so a cached run trains exactly as one without (``tests/test_shapes_cache.py``), only faster past its first
epoch: ``python benchmarks/shapes_cache.py`` measures how much. ``python -m maskformer sweep ... --cache-samples``
turns it on for every run of a sweep.
"""

from __future__ import annotations

from typing import Any

import torch


def _compact(labels: torch.Tensor) -> torch.Tensor:
    """A label map in the smallest integer type that holds it (uint8 for Shapes' class and instance ids)."""
    return labels.to(torch.uint8 if labels.numel() == 0 or int(labels.max()) < 256 else torch.int32)


class CachedDraw:
    """``dataset.draw`` remembered: each index is drawn once, kept compact and handed out as fresh tensors
    (int64 labels, as ``draw`` makes them), so nothing a transform or a caller does changes what is kept."""

    def __init__(self, draw):
        self.draw = draw
        self.kept: dict[int, tuple[Any, ...]] = {}

    def __call__(self, index: int):
        if index not in self.kept:
            image, semantic, instance, id_to_class = self.draw(index)
            self.kept[index] = image, _compact(semantic), _compact(instance), dict(id_to_class)
        image, semantic, instance, id_to_class = self.kept[index]
        return image.clone(), semantic.long(), instance.long(), dict(id_to_class)


def cache_draws(dataset):
    """Make ``dataset`` (a :class:`~maskformer.data.shapes.Shapes`, or any dataset whose ``__getitem__`` calls
    ``self.draw(index)``) keep every sample it draws, about 20 kB each at 64 px; returns the dataset.

    The cache lives in the process that draws: DataLoader workers that restart every epoch start empty each time,
    so it pays with ``num_workers=0`` (the Shapes configs) or persistent workers."""
    if isinstance(getattr(dataset, "draw", None), CachedDraw):
        return dataset
    if not callable(getattr(dataset, "draw", None)):
        raise TypeError(f"maskformer/data/cached.py: {type(dataset).__name__} has no draw(index) to cache; only "
                        f"generated datasets such as Shapes have one")
    dataset.draw = CachedDraw(dataset.draw)
    return dataset
