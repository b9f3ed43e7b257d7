"""The whole command line: ``python -m maskformer [demo | train | evaluate | predict] ...``.

``demo`` (the default) runs a MaskFormer on one photograph and writes a PNG with the image, the
per-pixel semantic map and the masks of the most confident queries. With no checkpoint it uses a
randomly initialised Swin-T MaskFormer (no download needed), so the masks show untrained structure.

``train [--config NAME_OR_FILE] [KEY=VALUE ...]`` trains a model (see :mod:`maskformer.trainer`); with no
arguments, a small MaskFormer on the built-in Shapes data in a few minutes on a CPU, printing mIoU.
``--dataset folder --images DIR --labels DIR --classes FILE`` trains on your own images.
``torchrun --nproc_per_node N -m maskformer train ...`` trains on N processes.

``evaluate --checkpoint RUN/model`` prints mIoU, pixel accuracy and per-class IoU on the data and at
the size the model was trained with (or ``--dataset``, ``--short-edge``, ``--multi-scale``, ``--flip``)
and writes them to ``--out``; ``--task panoptic`` prints COCO PQ / SQ / RQ (all, things, stuff, per
class) and writes COCO-format predictions, ``--task instance`` COCO mask AP (pycocotools' COCOeval).

``sweep BASE_CONFIG --grid KEY=V1,V2 --seeds N --output DIR`` trains every combination x seed and
tabulates mean +- std mIoU (see :mod:`maskformer.sweep`).

``predict IMAGE... --checkpoint CKPT`` writes one PNG per photo with the segmentation blended over
it (``--task semantic`` or ``panoptic``).

Every mistake in the input (a config value, a path, a damaged file) ends with one line that says
what is wrong and what to do, and a non-zero exit code; Ctrl-C during training saves a checkpoint
and exits with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_CONFIG = "shapes/maskformer_tiny"
# Errors that report a user's mistake (their messages name the file or the value): one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, OSError, RuntimeError)


class Fail(SystemExit):
    """Leave the program with ``command: message`` on stderr and exit code 1."""

    def __init__(self, command: str, message: Any):
        # one line even when a library's message has several (a YAML parser's, say)
        super().__init__(f"{command}: {' '.join(str(message).split())}")


# ----------------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------------


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
        raise Fail("demo", f"cannot read image {path}: {err}") from None


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="an RGB image (default: a sample photograph shipped with matplotlib)")
    p.add_argument("--checkpoint", help="a checkpoint directory or a Hub id such as facebook/maskformer-swin-tiny-ade")
    p.add_argument("--preset", default="swin_tiny", help="MaskFormerConfig preset used without --checkpoint",
                   choices=["resnet50", "resnet101", "swin_tiny", "swin_small", "swin_base", "swin_large", "tiny"])
    p.add_argument("--out", default="maskformer_demo.png", help="the PNG to write")
    p.add_argument("--size", type=int, default=384, help="shortest edge fed to the model")
    p.add_argument("--seed", type=int, default=0)


def demo(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import MaskFormer, MaskFormerConfig

    torch.manual_seed(args.seed)
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, "demo")
        source = args.checkpoint
    else:
        model = MaskFormer(getattr(MaskFormerConfig, args.preset)()).eval()
        source = f"random {args.preset} weights (pass --checkpoint for a trained model)"
    check_writable(args.out, "demo", "--out")
    rgb, image_path = load_image(args.image)
    scale = args.size / min(rgb.shape[:2])
    image = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255  # [1, 3, H, W]
    image = torch.nn.functional.interpolate(image, scale_factor=scale, mode="bilinear", antialias=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.config.pixel_mean, model.config.pixel_std))
    with torch.no_grad():
        out = model((image - mean) / std, return_aux=False)
    if "pred_logits" not in out:
        raise Fail("demo", f"{args.checkpoint} is a per-pixel baseline, which has no queries to draw; "
                           f"use `python -m maskformer predict IMAGE --checkpoint {args.checkpoint}`")
    probs = out.pred_logits[0].softmax(-1)  # [Q, K+1]
    masks = out.pred_masks[0].sigmoid()  # [Q, h, w]
    semantic = torch.einsum("qk,qhw->khw", probs[:, :-1], masks).argmax(0)  # paper §3.4, at stride 4
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
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}: image {tuple(rgb.shape[:2])} resized to {tuple(image.shape[-2:])}, "
          f"{model.config.num_queries} queries, masks {tuple(out.pred_masks.shape[-2:])}")


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------


def load_checkpoint(checkpoint: str, command: str):
    """Any model :func:`maskformer.hub.from_pretrained` reads; a problem ends the program with its message."""
    from .hub import from_pretrained

    try:
        return from_pretrained(checkpoint)
    except USER_ERRORS as err:
        raise Fail(command, err) from None


def check_writable(path: str | os.PathLike, command: str, flag: str, directory: bool = False) -> None:
    """Fail now, before any work, when ``path`` (a file, or with ``directory`` a folder) cannot be written."""
    path = Path(path)
    folder = path if directory else path.parent
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise Fail(command, f"cannot write to {folder}: {blocking} is a file, not a folder; choose another {flag}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise Fail(command, f"cannot write to {folder} ({err.strerror or err}); choose another {flag}") from None
    if not directory and path.is_dir():
        raise Fail(command, f"{flag} {path} is a directory; give a file name")


def training_record(model) -> dict[str, Any] | None:
    """What the trainer recorded in a saved model's config about the data it was trained on."""
    return (getattr(model, "config", None) and model.config.extra.get("training")) or None


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------

# Convenience flags: (flag dest, config field, type). Their values are assigned as typed values, never
# re-read as YAML (`--data-root on` is the folder "on", not True).
TRAIN_FLAGS = (
    ("dataset", "data.dataset", str), ("data_root", "data.root", str), ("images", "data.images", str),
    ("labels", "data.labels", str), ("classes", "data.classes", str), ("val_images", "data.val_images", str),
    ("val_labels", "data.val_labels", str), ("val_fraction", "data.val_fraction", float),
    ("hf_name", "data.hf_name", str), ("categories", "data.categories", str), ("output_dir", "output_dir", str), ("max_iters", "solver.max_iters", int),
    ("batch_size", "solver.batch_size", int), ("lr", "solver.lr", float), ("device", "device", str),
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .data.build import DATASET_NAMES

    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"a YAML file, or a shipped config such as ade20k-150/swin/maskformer_swin_tiny_bs16_160k "
                             f"(default: {DEFAULT_CONFIG}, a few minutes on a CPU)")
    data = parser.add_argument_group("data (each sets a data.* field)")
    data.add_argument("--dataset", choices=DATASET_NAMES, help="data.dataset: which dataset to train on")
    data.add_argument("--data-root", help="ADE20K: the ADEChallengeData2016 folder (default: the Hub)")
    data.add_argument("--images", help="--dataset folder: the folder of training images")
    data.add_argument("--labels", help="--dataset folder: the folder of label PNGs (same names as the images)")
    data.add_argument("--classes", help="--dataset folder/hf: a text file with one class name per line "
                                        "(or names separated by commas)")
    data.add_argument("--val-images", help="--dataset folder: a folder of validation images (default: hold out "
                                           "--val-fraction of --images)")
    data.add_argument("--val-labels", help="--dataset folder: the validation images' label PNGs")
    data.add_argument("--val-fraction", type=float, help="--dataset folder without --val-images: share held out")
    data.add_argument("--reduce-labels", action="store_true",
                      help="label 0 means unlabelled and classes start at 1 (ADE20K's convention)")
    data.add_argument("--hf-name", help="--dataset hf/hf_panoptic: a Hub dataset name, or a folder written by "
                                        "datasets' save_to_disk (works offline)")
    data.add_argument("--categories", help="--dataset hf_panoptic: a COCO panoptic JSON whose 'categories' "
                                           "(id, name, isthing) the rows' segments_info refer to")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--max-iters", type=int, help="override solver.max_iters")
    parser.add_argument("--batch-size", type=int, help="override solver.batch_size (all processes together)")
    parser.add_argument("--lr", type=float, help="override solver.lr")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true",
                     help="continue the run in the output directory from its latest good checkpoint")
    run.add_argument("--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint file (.pt)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in the output directory (its model, checkpoints and metrics)")
    parser.add_argument("--no-pretrained", action="store_true", help="random backbone instead of ImageNet weights")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files to OUTPUT_DIR/tensorboard (pip install tensorboard)")
    parser.add_argument("--progress", choices=["auto", "bar", "lines"], default="auto")
    parser.add_argument("opts", nargs="*", metavar="KEY=VALUE",
                        help="any other field, e.g. solver.warmup_iters=100 model.num_queries=50")


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of a ``train`` command line: the config file, its KEY=VALUE overrides, then the flags."""
    from .recipes import load_config

    values = {key: cast(getattr(args, dest)) for dest, key, cast in TRAIN_FLAGS if getattr(args, dest) is not None}
    if args.reduce_labels:
        values["data.reduce_labels"] = True
    if args.no_pretrained:
        values["pretrained_backbone"] = False
    if args.tensorboard:
        values["tensorboard"] = True
    return load_config(args.config, list(args.opts), values)


def train_main(args: argparse.Namespace) -> dict[str, Any]:
    """``python -m maskformer train``."""
    from .checkpoint import list_checkpoints
    from .trainer import Trainer, run_files

    try:
        cfg = config_from_args(args)
    except USER_ERRORS as err:
        raise Fail("train", err) from None
    output_dir = Path(cfg.output_dir)
    earlier = run_files(output_dir)
    resuming = args.resume or args.resume_from is not None
    if earlier and not (resuming or args.overwrite):
        raise Fail("train", f"{output_dir} already holds a run ({', '.join(earlier)}); continue it with --resume, "
                            f"start a new one with --output-dir DIR, or replace it with --overwrite")
    if args.resume and earlier and not list_checkpoints(output_dir / "checkpoints"):
        raise Fail("train", f"--resume: {output_dir} holds a run ({', '.join(earlier)}) but no checkpoint to resume "
                            f"from; start a new run with --output-dir DIR, or replace it with --overwrite")
    check_writable(output_dir, "train", "--output-dir", directory=True)
    progress = {"auto": None, "bar": True, "lines": False}[args.progress]
    try:
        trainer = Trainer(cfg, progress=progress)
        if args.resume_from is not None:
            trainer.resume(args.resume_from)
        elif args.resume and not trainer.resume():
            trainer._print(f"--resume: no checkpoint in {trainer.checkpoint_dir} yet; starting from step 0")
    except KeyboardInterrupt:
        raise SystemExit("train: interrupted before training started; nothing was written") from None
    except USER_ERRORS as err:
        raise Fail("train", err) from None
    try:
        results = trainer.train()
    except KeyboardInterrupt:
        if trainer.is_main and trainer.last_saved is None:
            print("train: interrupted; no checkpoint was written", file=sys.stderr)
        raise SystemExit(130) from None
    except USER_ERRORS as err:
        raise Fail("train", err) from None
    except FloatingPointError as err:  # NonFiniteLossError
        raise Fail("train", err) from None
    if trainer.is_main:
        from .evaluation import format_results

        if results:
            print(format_results(results))
        print(f"model saved to {trainer.output_dir / 'model'}; curves in {trainer.output_dir / 'curves.png'}")
    return results


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .data.build import TASKS

    p.add_argument("--checkpoint", required=True,
                   help="a directory written by save_pretrained (a run's model/), a Hugging Face MaskFormer "
                        "directory, or a Hub id")
    p.add_argument("--task", choices=TASKS,
                   help="semantic: mIoU; panoptic: COCO PQ (writes COCO-format PNGs + JSON); instance: COCO mask AP "
                        "(pycocotools' COCOeval). Default: the task the model was trained for, else semantic")
    p.add_argument("--dataset", choices=DATASETS,
                   help="default: the data the model was trained on (recorded in its config: also your own "
                        "folder or datasets data), else ade20k")
    p.add_argument("--split", default="val", help="val (default) or train")
    p.add_argument("--data-root", help="ADE20K: the ADEChallengeData2016 folder (default: scene_parse_150 from the "
                                       "Hub); COCO: the folder with val2017/, panoptic_val2017/ and annotations/")
    p.add_argument("--short-edge", type=int,
                   help="test scale (default: the model's training evaluation size, else 512, COCO 800; 640 for the "
                        "Swin-B/L 640 models)")
    p.add_argument("--max-size", type=int,
                   help="cap on the long side (default 4 x --short-edge, COCO 1333; 7 x with --multi-scale, as the "
                        "original)")
    p.add_argument("--multi-scale", action="store_true",
                   help="semantic: average over short edges --short-edge x 0.5, 0.75, ..., 1.75 (512: 256..896)")
    p.add_argument("--flip", action="store_true", help="semantic: also average over horizontally flipped images")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers that decode images")
    p.add_argument("--device", help="e.g. cuda or cpu (default: cuda when available)")
    p.add_argument("--out", default="results.json",
                   help="results file: .json (everything) or, for semantic, .csv (per-class IoU)")
    p.add_argument("--predictions-dir",
                   help="panoptic / instance: where the COCO-format predictions go (default: --out without .json)")


def evaluation_data(args: argparse.Namespace, model, task: str = "semantic"):
    """``(dataset, short_edge, max_size)`` of an ``evaluate`` command: the flags, else what the model was
    trained with (so the score equals the one printed at the end of training), else ADE20K at 512
    (COCO at 800, long side 1333: orig ``INPUT.MIN_SIZE_TEST`` / ``INPUT.MAX_SIZE_TEST``)."""
    import dataclasses

    from .data.build import build_dataset, build_split
    from .recipes import DataConfig

    record = training_record(model)
    if args.dataset is None and record is not None:
        known = {f.name for f in dataclasses.fields(DataConfig)}
        data = DataConfig(**{k: v for k, v in record["data"].items() if k in known})
        data.task = task
        if args.data_root is not None:
            data.root = args.data_root
        split = "val" if args.split in ("val", "validation") else "train"
        dataset = build_split(data, split, record.get("seed", 0), augment=False)
        return dataset, args.short_edge or data.test_short_edge, args.max_size or (
            data.test_max_size if args.short_edge is None else None)
    name = args.dataset or "ade20k"
    kw = {"num_classes": model.config.num_classes, "task": task} if name == "shapes" else {}
    dataset = build_dataset(name, args.split, root=args.data_root, **kw)
    if name.startswith("coco"):
        return dataset, args.short_edge or 800, args.max_size or (1333 if args.short_edge is None else None)
    return dataset, args.short_edge or 512, args.max_size


def evaluate_main(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_semantic, format_results, multi_scale_sizes, write_results

    if Path(args.out).suffix.lower() not in (".json", ".csv"):
        raise Fail("evaluate", f"--out {args.out}: use a .json file (all numbers) or a .csv file (per-class IoU)")
    check_writable(args.out, "evaluate", "--out")
    model = load_checkpoint(args.checkpoint, "evaluate")
    record = training_record(model)
    task = args.task or (record or {}).get("data", {}).get("task") or "semantic"
    if task != "semantic" and Path(args.out).suffix.lower() != ".json":
        raise Fail("evaluate", f"--out {args.out}: --task {task} writes its results to a .json file")
    num_classes = model.config.num_classes
    try:
        dataset, short_edge, max_size = evaluation_data(args, model, task)
    except USER_ERRORS as err:
        raise Fail("evaluate", err) from None
    if dataset.num_classes != num_classes:
        raise Fail("evaluate", f"{args.checkpoint} predicts {num_classes} classes but the dataset has "
                               f"{dataset.num_classes}; evaluate on the data the model was trained for")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if task != "semantic":
        return _evaluate_coco_task(args, task, model, dataset, short_edge, max_size or 4 * short_edge, device, record)
    if args.multi_scale:
        short_edges, default_max = multi_scale_sizes(short_edge)
    else:
        short_edges, default_max = (short_edge,), 4 * short_edge
    try:
        results = evaluate_semantic(model, dataset, short_edges=short_edges, max_size=max_size or default_max,
                                    flip=args.flip, batch_size=args.batch_size, device=device, limit=args.limit,
                                    num_workers=args.workers, progress=sys.stderr.isatty(),
                                    class_names=getattr(dataset, "class_names", None),
                                    ignore_index=(training_record(model) or {}).get("data", {}).get("ignore_index", 255))
    except USER_ERRORS as err:
        raise Fail("evaluate", err) from None
    print(format_results(results))
    path = write_results(results, args.out)
    print(f"wrote {path}")


def _evaluate_coco_task(args, task, model, dataset, short_edge, max_size, device, record) -> None:
    """``evaluate --task panoptic | instance``: COCO PQ or mask AP, with COCO-format predictions written."""
    from .evaluation import evaluate_instance, evaluate_panoptic, format_instance_results, write_results
    from .panoptic_eval import format_panoptic_results

    if args.multi_scale or args.flip:
        raise Fail("evaluate", f"--multi-scale and --flip apply to --task semantic only, not {task}")
    predictions = Path(args.predictions_dir) if args.predictions_dir else Path(args.out).with_suffix("")
    check_writable(predictions, "evaluate", "--predictions-dir", directory=True)
    data = (record or {}).get("data", {})
    kw = dict(short_edge=short_edge, max_size=max_size, batch_size=args.batch_size, device=device, limit=args.limit,
              num_workers=args.workers, progress=sys.stderr.isatty())
    try:
        if task == "panoptic":
            results = evaluate_panoptic(model, dataset, predictions, **kw,
                                        object_threshold=data.get("object_mask_threshold", 0.8),
                                        overlap_threshold=data.get("overlap_threshold", 0.8))
            print(format_panoptic_results(results, results["class_names"]))
            print(f"wrote the predictions in COCO panoptic format to {predictions}/predictions.json and "
                  f"{predictions}/predictions/")
        else:
            results = evaluate_instance(model, dataset, predictions, **kw)
            print(format_instance_results(results))
            print(f"wrote the predictions in COCO results format to {predictions}/instances_predictions.json")
    except ImportError as err:
        raise Fail("evaluate", f"{err}; --task {task} needs pycocotools: pip install pycocotools") from None
    except (*USER_ERRORS, KeyError) as err:
        raise Fail("evaluate", err) from None
    print(f"wrote {write_results(results, args.out)}")


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos to segment")
    p.add_argument("--checkpoint", required=True,
                   help="a directory written by save_pretrained, a Hugging Face MaskFormer directory, or a Hub id")
    p.add_argument("--task", choices=["semantic", "panoptic"], default="semantic")
    p.add_argument("--out-dir", default="predictions", help="folder for the PNGs (<image stem>_<task>.png)")
    p.add_argument("--short-edge", type=int,
                   help="test resize: short side (default: the model's training evaluation size, else 512)")
    p.add_argument("--max-size", type=int, help="test resize: cap on the long side (default 4 x --short-edge)")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the colours over the photo")
    p.add_argument("--device", help="e.g. cuda or cpu (default: cuda when available)")


def predict_main(args: argparse.Namespace) -> None:
    from .predict import predict

    check_writable(args.out_dir, "predict", "--out-dir", directory=True)
    model = load_checkpoint(args.checkpoint, "predict")
    record = training_record(model)
    short_edge = args.short_edge or (record["data"]["test_short_edge"] if record else 512)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = (record or {}).get("data", {})
    # Stuff classes, merged into one segment each: as the training data said (Shapes: the background)
    stuff_ids = (record or {}).get("stuff_ids", [0] if data.get("dataset") == "shapes" else [])
    try:
        written = predict(model, args.images, args.out_dir, task=args.task, short_edge=short_edge,
                          max_size=args.max_size or 4 * short_edge, alpha=args.alpha, device=device,
                          stuff_ids=stuff_ids, object_threshold=data.get("object_mask_threshold", 0.8),
                          overlap_threshold=data.get("overlap_threshold", 0.8))
    except USER_ERRORS as err:
        raise Fail("predict", err) from None
    for path in written:
        print(f"wrote {path}")
    if args.task == "panoptic":
        print(f"wrote the COCO panoptic format beside them: {Path(args.out_dir) / 'panoptic.json'} and "
              f"<image>_panoptic_ids.png")


# ----------------------------------------------------------------------------------------------
# sweep
# ----------------------------------------------------------------------------------------------


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="a field and its values, e.g. model.num_queries=7,20,50 (repeat for more fields; "
                        "KEY1+KEY2=... sets several fields to each value; config=NAME1,NAME2 varies BASE_CONFIG)")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 for every combination (default 1)")
    p.add_argument("--output", help="the sweep's directory: runs/, results.csv, summary.md, mIoU.png")
    p.add_argument("--jobs", type=int, help="trainings at once, in separate processes (default 1)")
    p.add_argument("--threads", type=int, help="intra-op threads in all, split between the jobs "
                                               "(default: torch's, the number of cores)")
    p.add_argument("--cache-samples", action="store_true", default=None,
                   help="Shapes: keep every drawn image in memory (the same runs, faster past the first epoch)")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="BASE_CONFIG", help="a YAML file or a shipped config, as train --config")
    _add_sweep_options(p)
    # Everything after BASE_CONFIG, options and KEY=VALUE in any order, is read again by sweep_main.
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="fields of every run, e.g. solver.max_iters=500")


def sweep_main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``python -m maskformer sweep BASE_CONFIG --grid KEY=V1,V2 --seeds N --output DIR [KEY=VALUE ...]``."""
    from .sweep import parse_grid, run_sweep

    later = argparse.ArgumentParser(prog="python -m maskformer sweep", add_help=False)
    _add_sweep_options(later)
    later.add_argument("opts", nargs="*")
    try:
        rest = later.parse_intermixed_args(args.rest)
    except SystemExit:
        raise Fail("sweep", f"cannot read {' '.join(args.rest)}; see python -m maskformer sweep --help") from None
    options = {name: getattr(rest, name) if getattr(rest, name) is not None else getattr(args, name)
               for name in ("seeds", "output", "jobs", "threads", "cache_samples")}
    bad = [o for o in rest.opts if "=" not in o or o.startswith("-")]
    if bad:
        raise Fail("sweep", f"{' '.join(bad)}: run fields must look like KEY=VALUE, e.g. solver.max_iters=500")
    if options["output"] is None:
        raise Fail("sweep", "--output DIR is required: the folder for the runs, results.csv and summary.md")
    check_writable(options["output"], "sweep", "--output", directory=True)
    try:
        grid = parse_grid([*(args.grid or []), *(rest.grid or [])])
        return run_sweep(args.config, grid, options["seeds"] or 1, options["output"], rest.opts,
                         jobs=options["jobs"] or 1, threads=options["threads"],
                         cache_samples=bool(options["cache_samples"]))
    except KeyboardInterrupt:
        print("sweep: interrupted; run the same command again to continue (finished runs are kept, "
              "unfinished ones resume from their last checkpoint)", file=sys.stderr)
        raise SystemExit(130) from None
    except USER_ERRORS as err:
        raise Fail("sweep", err) from None


# ----------------------------------------------------------------------------------------------
# the parser
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskformer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_arguments(parser)  # `python -m maskformer --image ...` is the demo
    parser.set_defaults(run=demo)
    sub = parser.add_subparsers(dest="command")
    # One line per command: name, help, the function that adds its options, the function that runs it.
    commands = [
        ("train", "train a model (default: a small MaskFormer on Shapes, a few minutes on a CPU)",
         add_train_arguments, train_main),
        ("demo", "run a model on one image and draw its masks (default)", add_demo_arguments, demo),
        ("predict", "segment photos and write one PNG each", add_predict_arguments, predict_main),
        ("evaluate", "mIoU, PQ or mask AP of a checkpoint on a dataset", add_evaluate_arguments,
         evaluate_main),
        ("sweep", "train a grid of configs x seeds, tabulate mean +- std mIoU", add_sweep_arguments, sweep_main),
    ]
    for name, help_text, add_arguments, run in commands:
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    # KEY=VALUE overrides may stand anywhere on a train command line, also after options
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) == "train" and all("=" in e and not e.startswith("-") for e in extra):
            args.opts = [*args.opts, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.run(args)
