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


class TwoSegments(torch.utils.data.Dataset):
    """Tiny images with exactly two segments each: background (class 0) and one square of class
    1 or 2, so every image has the same number of targets. Random per index, fixed by ``seed``;
    ``nan_at`` makes that sample's image NaN (to test the trainer's non-finite check)."""

    num_classes = 3
    class_names = ["background", "red square", "blue square"]

    def __init__(self, n=16, size=32, seed=0, transforms=None, nan_at=None):
        self.n, self.size, self.seed, self.transforms, self.nan_at = n, size, seed, transforms, nan_at

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        from maskformer.data import make_sample

        g = torch.Generator().manual_seed(self.seed * 1000 + index)
        S = self.size
        cls = int(torch.randint(1, 3, (), generator=g))
        side = int(torch.randint(S // 4, S // 2, (), generator=g))
        y, x = (int(v) for v in torch.randint(0, S - side, (2,), generator=g))
        semantic = torch.zeros(S, S, dtype=torch.long)
        semantic[y:y + side, x:x + side] = cls
        image = (torch.rand(3, S, S, generator=g) * 60 + 60).to(torch.uint8)
        colour = torch.tensor([200, 40, 40] if cls == 1 else [40, 40, 200], dtype=torch.uint8)
        image[:, semantic == cls] = colour[:, None]
        sample = make_sample(image, semantic, self.transforms, name=f"two-segments-{index}")
        if index == self.nan_at:
            sample["image"] = torch.full_like(sample["image"], float("nan"))
        return sample
