"""Random targets shared by the matcher and loss tests."""

import torch


def random_targets(counts=(3, 5, 1), height=64, width=80, seed=1, num_classes=7):
    """One target dict per image, ``counts[i]`` random 0/1 masks each (4x the tests' prediction size)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "labels": torch.randint(0, num_classes, (n,), generator=generator),
            "masks": (torch.rand(n, height, width, generator=generator) > 0.5).float(),
        }
        for n in counts
    ]
