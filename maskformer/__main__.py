"""Command line: ``python -m maskformer [demo] [--image PATH] [--checkpoint DIR_OR_HUB_ID] [--out FILE]``.

``demo`` (the default) runs a MaskFormer on one photograph and writes a PNG with the image, the
per-pixel semantic map and the masks of the most confident queries. With no checkpoint it uses a
randomly initialised Swin-T MaskFormer (no download needed), so the masks show untrained structure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def load_image(path: str | None) -> tuple[np.ndarray, str]:
    """RGB uint8 ``[H, W, 3]``; without a path, a photograph that ships with matplotlib."""
    from PIL import Image

    if path is None:
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB")), str(path)
    except (FileNotFoundError, OSError) as err:
        raise SystemExit(f"cannot read image {path}: {err}") from None


def demo(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import MaskFormer, MaskFormerConfig

    torch.manual_seed(args.seed)
    if args.checkpoint:
        try:
            model = MaskFormer.from_pretrained(args.checkpoint)
        except (RuntimeError, FileNotFoundError, ValueError) as err:
            raise SystemExit(str(err)) from None
        source = args.checkpoint
    else:
        model = MaskFormer(getattr(MaskFormerConfig, args.preset)()).eval()
        source = f"random {args.preset} weights (pass --checkpoint for a trained model)"
    rgb, image_path = load_image(args.image)
    scale = args.size / min(rgb.shape[:2])
    image = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255  # [1, 3, H, W]
    image = torch.nn.functional.interpolate(image, scale_factor=scale, mode="bilinear", antialias=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.config.pixel_mean, model.config.pixel_std))
    with torch.no_grad():
        out = model((image - mean) / std, return_aux=False)
    probs = out.pred_logits[0].softmax(-1)  # [Q, K+1]
    masks = out.pred_masks[0].sigmoid()  # [Q, h, w]
    semantic = torch.einsum("qk,qhw->khw", probs[:, :-1], masks).argmax(0)  # REFERENCE §3, at stride 4
    score, label = probs[:, :-1].max(-1)
    top = score.argsort(descending=True)[:6]
    names = model.config.id2label or {}

    fig, axes = plt.subplots(2, 4, figsize=(13, 6.5))
    axes[0, 0].imshow(image[0].permute(1, 2, 0).clamp(0, 1))
    axes[0, 0].set_title("input")
    axes[1, 0].imshow(semantic, cmap="tab20", interpolation="nearest")
    axes[1, 0].set_title("semantic map (argmax)")
    for ax, q in zip(axes[:, 1:].flat, top.tolist()):
        ax.imshow(masks[q], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"query {q}: {names.get(label[q].item(), label[q].item())} ({score[q]:.2f})", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"MaskFormer on {Path(image_path).name}: {source}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}: image {tuple(rgb.shape[:2])} resized to {tuple(image.shape[-2:])}, "
          f"{model.config.num_queries} queries, masks {tuple(out.pred_masks.shape[-2:])}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m maskformer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="run a model on one image and draw its masks (default)")
    for p in (parser, d):
        p.add_argument("--image", help="an RGB image (default: a sample photograph shipped with matplotlib)")
        p.add_argument("--checkpoint", help="a checkpoint directory or a Hub id such as facebook/maskformer-swin-tiny-ade")
        p.add_argument("--preset", default="swin_tiny", help="MaskFormerConfig preset used without --checkpoint",
                       choices=["resnet50", "resnet101", "swin_tiny", "swin_small", "swin_base", "swin_large", "tiny"])
        p.add_argument("--out", default="maskformer_demo.png", help="the PNG to write")
        p.add_argument("--size", type=int, default=384, help="shortest edge fed to the model")
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    demo(args)


if __name__ == "__main__":
    main(sys.argv[1:])
