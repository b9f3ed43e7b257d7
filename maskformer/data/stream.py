"""The deterministic training stream: which image, with which augmentation seed, at each position.

Sample ``p`` of a run is image ``perm_e[p % N]`` of a permutation seeded by ``(seed, epoch)``, and its
augmentation draws from a generator seeded by ``(seed, p)``. Step ``t`` reads positions
``t*B .. (t+1)*B - 1``, whichever process and micro-batch reads them. Resuming at step ``t``
therefore replays exactly what an uninterrupted run would have done, and ``N`` processes with
batch ``B/N`` see the very same images and augmentations as one process with batch ``B``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["mix_seed", "StepBatchSampler", "SeededSamples"]


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence hashing: nearby inputs give unrelated seeds)."""
    state = np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)
    return int(state[0]) >> 1  # a Python int: numpy < 2 cannot shift a uint64 by a Python int


class StepBatchSampler(Sampler):
    """Yields, for steps ``start_step, start_step+1, ...``, this process's micro-batches of
    ``(dataset index, augmentation seed)`` keys.

    Global batch ``B`` = ``batch_size``; each of ``world_size`` processes does ``accum_steps``
    micro-batches of ``B / (world_size * accum_steps)`` per step. Micro-batch ``m`` of process
    ``r`` reads the stream positions ``t*B + (m*world_size + r)*b + [0, b)``.
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int = 0, start_step: int = 0,
                 max_steps: int | None = None, rank: int = 0, world_size: int = 1, accum_steps: int = 1):
        chunks = world_size * accum_steps
        if batch_size % chunks:
            raise ValueError(f"solver.batch_size={batch_size} must be divisible by processes x accumulation steps "
                             f"= {world_size} x {accum_steps}")
        if dataset_size < 1:
            raise ValueError("the training dataset is empty")
        self.n, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start_step, self.max_steps = start_step, max_steps
        self.rank, self.world_size, self.accum_steps = rank, world_size, accum_steps
        self.micro = batch_size // chunks
        self._perm: tuple[int, torch.Tensor] | None = None

    def key(self, position: int) -> tuple[int, int]:
        epoch, i = divmod(position, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return int(self._perm[1][i]), mix_seed(self.seed, 1 << 20, position)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            for m in range(self.accum_steps):
                first = step * self.batch_size + (m * self.world_size + self.rank) * self.micro
                yield [self.key(p) for p in range(first, first + self.micro)]
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return (self.max_steps - self.start_step) * self.accum_steps


class SeededSamples(Dataset):
    """``dataset[(index, seed)]``: the sample with its random augmentation drawn from ``seed``.

    The global random state is saved and restored around the call, so loading data in the main
    process (``num_workers=0``) never shifts the model's dropout.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            py_state, np_state = random.getstate(), np.random.get_state()
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
