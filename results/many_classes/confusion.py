"""Which mistakes a trained Shapes model makes: is it the square / diamond pairs?

    python results/many_classes/confusion.py RUN_DIR [RUN_DIR ...]

In Shapes a diamond is a square turned by 45 degrees (|u| + |v| <= r against max(|u|, |v|) <= 0.8 r), and every
shape is drawn at a random angle, so a square and a diamond of the same hue differ only in size, and their size
ranges overlap. With more than 6 shape classes (K > 7) hues are shared and each hue has such a pair, which no model
can tell apart reliably. This prints, for each run, the share of the misclassified shape pixels that went to the
other member of their pair, and the mean IoU of the pair classes beside that of the other shape classes; then
where all the misclassified shape pixels went: to background, to a class of the same hue but another kind of shape
(the model saw the colour, not the shape), or to another hue. With ``class_cue="marker"`` the pair line is left out
and "hue" is the marker's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from maskformer.data import collate
from maskformer.data.build import build_split
from maskformer.evaluation import semantic_probabilities
from maskformer.hub import from_pretrained
from maskformer.recipes import TrainConfig


def hue_of(dataset) -> dict[int, str]:
    """class -> its hue's name (Shapes: the class name without its kind; the probe: the marker's hue)."""
    return {c: dataset.class_names[c].rsplit(" ", 1)[0] for c in range(1, dataset.num_classes)}


def pair_of(dataset) -> dict[int, int]:
    """class -> the class of the same hue whose kind is the other of (square, diamond)."""
    pairs = {}
    for c in range(1, dataset.num_classes):
        if dataset.class_kinds[c] in ("square", "diamond"):
            other = "diamond" if dataset.class_kinds[c] == "square" else "square"
            hue = dataset.class_names[c].rsplit(" ", 1)[0]
            for d in range(1, dataset.num_classes):
                if dataset.class_kinds[d] == other and dataset.class_names[d].rsplit(" ", 1)[0] == hue:
                    pairs[c] = d
    return pairs


@torch.inference_mode()
def confusion(run: Path) -> tuple[torch.Tensor, dict[int, int], dict[int, str]]:
    import json

    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    dataset = build_split(cfg.data, "val", seed=cfg.seed)
    model = from_pretrained(run / "model").eval()
    K = cfg.data.num_classes
    matrix = torch.zeros(K, K, dtype=torch.long)
    for index in range(len(dataset)):
        batch = collate([dataset[index]])  # Shapes images are 64 px, a multiple of 32: no resizing
        scores = semantic_probabilities(model, batch["images"], batch["image_sizes"], batch["original_sizes"])[0]
        truth = batch["original_semantic"][0]
        matrix += torch.bincount(truth.flatten() * K + scores.argmax(0).flatten(), minlength=K * K).view(K, K)
    return matrix, pair_of(dataset), hue_of(dataset)


def main() -> None:
    for run in map(Path, sys.argv[1:]):
        if not (run / "model").is_dir():
            print(f"{run}: no trained model in it (model/ is missing: not a finished run); skipped")
            continue
        matrix, pairs, hues = confusion(run)
        K = matrix.shape[0]
        wrong_shape = sum(int(matrix[c].sum() - matrix[c, c]) for c in range(1, K))
        to_pair = sum(int(matrix[c, d]) for c, d in pairs.items())
        iou = matrix.diag() / (matrix.sum(0) + matrix.sum(1) - matrix.diag()).clamp(min=1)
        paired = [c for c in range(1, K) if c in pairs]
        others = [c for c in range(1, K) if c not in pairs]
        print(f"{run}: mIoU {100 * iou.mean():.2f}")
        if pairs:
            print(f"  {len(pairs)} of {K - 1} shape classes are in square/diamond pairs; "
                  f"{100 * to_pair / max(wrong_shape, 1):.1f}% of misclassified shape pixels went to the pair's other class; "
                  f"IoU pairs {100 * iou[paired].mean():.1f} vs other shapes {100 * iou[others].mean():.1f}")
        same_hue = sum(int(matrix[c, d]) for c in range(1, K) for d in range(1, K) if d != c and hues[d] == hues[c])
        to_background = int(matrix[1:, 0].sum())
        other_hue = wrong_shape - same_hue - to_background
        print(f"  misclassified shape pixels ({100 * wrong_shape / max(int(matrix[1:].sum()), 1):.1f}% of all shape pixels): "
              + ", ".join(f"{100 * n / max(wrong_shape, 1):.1f}% {what}" for n, what in
                          ((to_background, "to background"), (same_hue, "to the same hue, another kind"),
                           (other_hue, "to another hue"))))


if __name__ == "__main__":
    main()
