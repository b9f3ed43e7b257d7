"""Command line: ``python -m maskformer [demo | train | predict | evaluate] ...``.

``demo`` (the default) runs a MaskFormer on one photograph and writes a PNG with the image, the
per-pixel semantic map and the masks of the most confident queries. With no checkpoint it uses a
randomly initialised Swin-T MaskFormer (no download needed), so the masks show untrained structure.

``train [--config NAME_OR_FILE] [KEY=VALUE ...]`` trains a model (see :mod:`maskformer.trainer`); with no
arguments, a small MaskFormer on the built-in Shapes data in a few minutes on a CPU, printing mIoU.
``torchrun --nproc_per_node N -m maskformer train ...`` trains on N processes.

``predict IMAGE... --checkpoint CKPT`` writes one PNG per photo with the segmentation blended over
it (``--task semantic`` or ``panoptic``).

``evaluate --checkpoint CKPT [--dataset ade20k] [--multi-scale] [--flip]`` prints mIoU, pixel
accuracy and per-class IoU (the paper's protocol: short side 512) and writes them to ``--out``.
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


def load_checkpoint(checkpoint: str):
    """Any model :func:`maskformer.hub.from_pretrained` reads; a problem ends the program with its message."""
    from .hub import from_pretrained

    try:
        return from_pretrained(checkpoint)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos to segment")
    p.add_argument("--checkpoint", required=True,
                   help="a directory written by save_pretrained, a Hugging Face MaskFormer directory, or a Hub id")
    p.add_argument("--task", choices=["semantic", "panoptic"], default="semantic")
    p.add_argument("--out-dir", default="predictions", help="folder for the PNGs (<image stem>_<task>.png)")
    p.add_argument("--short-edge", type=int, default=512, help="test resize: short side (ADE20K models: 512 or 640)")
    p.add_argument("--max-size", type=int, help="test resize: cap on the long side (default 4 x --short-edge)")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the colours over the photo")
    p.add_argument("--device", help="e.g. cuda or cpu (default: cuda when available)")


def predict_main(args: argparse.Namespace) -> None:
    from .predict import predict

    model = load_checkpoint(args.checkpoint)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        written = predict(model, args.images, args.out_dir, task=args.task, short_edge=args.short_edge,
                          max_size=args.max_size or 4 * args.short_edge, alpha=args.alpha, device=device)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    for path in written:
        print(f"wrote {path}")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS

    p.add_argument("--checkpoint", required=True,
                   help="a directory written by save_pretrained, a Hugging Face MaskFormer directory, or a Hub id")
    p.add_argument("--dataset", choices=DATASETS, default="ade20k")
    p.add_argument("--split", default="val", help="val (default) or train")
    p.add_argument("--data-root", help="ADE20K: the ADEChallengeData2016 folder (default: scene_parse_150 from the Hub)")
    p.add_argument("--short-edge", type=int, default=512, help="test scale (512; 640 for the Swin-B/L 640 models)")
    p.add_argument("--max-size", type=int,
                   help="cap on the long side (default 4 x --short-edge; 7 x with --multi-scale, as the original)")
    p.add_argument("--multi-scale", action="store_true",
                   help="average over short edges --short-edge x 0.5, 0.75, ..., 1.75 (512: 256..896)")
    p.add_argument("--flip", action="store_true", help="also average over horizontally flipped images")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers that decode images")
    p.add_argument("--device", help="e.g. cuda or cpu (default: cuda when available)")
    p.add_argument("--out", default="results.json", help="results file: .json (everything) or .csv (per-class IoU)")


def evaluate_main(args: argparse.Namespace) -> None:
    from .data import build_dataset
    from .evaluation import evaluate_semantic, format_results, multi_scale_sizes, write_results

    model = load_checkpoint(args.checkpoint)
    num_classes = model.config.num_classes
    try:
        dataset = build_dataset(args.dataset, args.split, root=args.data_root,
                                num_classes=num_classes if args.dataset == "shapes" else None)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    if dataset.num_classes != num_classes:
        raise SystemExit(f"{args.checkpoint} predicts {num_classes} classes but {args.dataset} has "
                         f"{dataset.num_classes}; evaluate a checkpoint trained on {args.dataset}")
    if args.multi_scale:
        short_edges, max_size = multi_scale_sizes(args.short_edge)
    else:
        short_edges, max_size = (args.short_edge,), 4 * args.short_edge
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = evaluate_semantic(model, dataset, short_edges=short_edges, max_size=args.max_size or max_size,
                                flip=args.flip, batch_size=args.batch_size, device=device, limit=args.limit,
                                num_workers=args.workers)
    print(format_results(results))
    try:
        path = write_results(results, args.out)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    print(f"wrote {path}")


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="an RGB image (default: a sample photograph shipped with matplotlib)")
    p.add_argument("--checkpoint", help="a checkpoint directory or a Hub id such as facebook/maskformer-swin-tiny-ade")
    p.add_argument("--preset", default="swin_tiny", help="MaskFormerConfig preset used without --checkpoint",
                   choices=["resnet50", "resnet101", "swin_tiny", "swin_small", "swin_base", "swin_large", "tiny"])
    p.add_argument("--out", default="maskformer_demo.png", help="the PNG to write")
    p.add_argument("--size", type=int, default=384, help="shortest edge fed to the model")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskformer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_arguments(parser)  # `python -m maskformer --image ...` is the demo
    parser.set_defaults(run=demo)
    sub = parser.add_subparsers(dest="command")
    from .trainer import add_train_arguments, train_main

    # One line per command: name, help, the function that adds its options, the function that runs it.
    commands = [
        ("train", "train a model (default: a small MaskFormer on Shapes, a few minutes on a CPU)",
         add_train_arguments, train_main),
        ("demo", "run a model on one image and draw its masks (default)", add_demo_arguments, demo),
        ("predict", "segment photos and write one PNG each", add_predict_arguments, predict_main),
        ("evaluate", "mIoU of a checkpoint on a dataset (single- or multi-scale)", add_evaluate_arguments,
         evaluate_main),
    ]
    for name, help_text, add_arguments, run in commands:
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
