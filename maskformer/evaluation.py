"""Evaluation: semantic segmentation (single scale, and multi-scale + flip test-time augmentation), and
panoptic (PQ) and instance (mask AP) segmentation as COCO computes them (:func:`evaluate_panoptic`,
:func:`evaluate_instance`, at the end of this module).

The protocol of the paper's ADE20K numbers (paper §4, the original's ``INPUT.MIN_SIZE_TEST`` / ``TEST.AUG``): every validation image is resized so
that its short side is 512 (long side at most 2048), padded to a multiple of 32, and the
prediction, resized back to the original image size, is compared with the original labels
(:class:`~maskformer.metrics.SemanticMetrics`: mIoU, pixel accuracy).

Multi-scale + flip (the "m.s." column of the paper's tables) is detectron2's
``SemanticSegmentorWithTTA`` as MaskFormer configures it: the original image is resized to each
short edge of ``(256, 384, 512, 640, 768, 896)`` (long side at most 3584), each also flipped
horizontally; the per-class scores of all passes, each at the original size and flipped back,
are averaged, and the argmax of the average is the prediction.

Per-class scores are MaskFormer's ``sum_q p_q(c) * sigmoid(m_q)`` (``postprocess.semantic_segmentation``)
and the per-pixel baseline's softmax. (The original averages the baseline's *logits*; averaging
probabilities treats both models alike, and single-scale predictions are identical either way.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from .data.transforms import shortest_edge_size
from .metrics import SemanticMetrics
from .postprocess import _masks_to_original, semantic_segmentation

__all__ = [
    "ADE20K_TEST_SCALES", "ADE20K_TEST_MAX_SIZE", "ADE20K_640_TEST_SCALES", "ADE20K_640_TEST_MAX_SIZE",
    "multi_scale_sizes", "resize_shortest_edge", "pad_images", "semantic_probabilities", "tta_probabilities",
    "evaluate_semantic", "write_results", "format_results", "evaluate_panoptic", "evaluate_instance",
    "panoptic_ground_truth", "format_instance_results",
]

Size = tuple[int, int]

# orig: TEST.AUG.MIN_SIZES / TEST.AUG.MAX_SIZE of the ADE20K-150 configs (512-crop models)
ADE20K_TEST_SCALES = (256, 384, 512, 640, 768, 896)
ADE20K_TEST_MAX_SIZE = 3584
# the same scales x 640/512 for the Swin-B/L models trained on 640 crops
ADE20K_640_TEST_SCALES = (320, 480, 640, 800, 960, 1120)
ADE20K_640_TEST_MAX_SIZE = 4480
SIZE_DIVISIBILITY = 32  # the backbone's largest stride; the original pads test images to it


def multi_scale_sizes(short_edge: int = 512) -> tuple[tuple[int, ...], int]:
    """The original's multi-scale test sizes for a model tested at ``short_edge``: ``short_edge`` x
    (0.5, 0.75, ..., 1.75) and long side at most 7 x ``short_edge``. 512 gives
    (:data:`ADE20K_TEST_SCALES`, 3584), 640 gives (:data:`ADE20K_640_TEST_SCALES`, 4480)."""
    return tuple(int(short_edge * r) for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)), 7 * short_edge


def resize_shortest_edge(image: Tensor, short_edge: int, max_size: int) -> Tensor:
    """Resize a normalised image ``[3, H, W]`` as ``ResizeShortestEdge(short_edge, max_size)`` does.

    The output size is :func:`~maskformer.data.transforms.shortest_edge_size`'s; the image is resized
    bilinearly with antialiasing, like the transform, but in float after normalisation (the
    transform resizes uint8 before it), which differs only by the uint8 rounding.
    """
    size = shortest_edge_size(image.shape[-2], image.shape[-1], short_edge, max_size)
    if size == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def pad_images(images: Sequence[Tensor], size_divisibility: int = SIZE_DIVISIBILITY) -> Tensor:
    """Images ``[3, H_i, W_i]`` -> ``[B, 3, Hp, Wp]`` padded bottom/right with 0 (the mean colour after
    normalisation) to a common multiple of ``size_divisibility``, as :func:`~maskformer.data.collate` pads."""
    d = size_divisibility
    Hp = -(-max(x.shape[-2] for x in images) // d) * d
    Wp = -(-max(x.shape[-1] for x in images) // d) * d
    return torch.stack([F.pad(x, (0, Wp - x.shape[-1], 0, Hp - x.shape[-2])) for x in images])  # [B, 3, Hp, Wp]


@torch.no_grad()
def semantic_probabilities(model: nn.Module, images: Tensor, image_sizes: Sequence[Size],
                           original_sizes: Sequence[Size]) -> list[Tensor]:
    """Per-class scores of a padded batch, one ``[K, H0, W0]`` per image at its original size.

    Works for both models: outputs with ``pred_logits`` / ``pred_masks`` (MaskFormer) go through
    :func:`~maskformer.postprocess.semantic_segmentation`; outputs with ``semantic_logits``
    (:class:`~maskformer.baseline.PerPixelBaseline`) are upsampled to the padded size, cropped to
    ``image_sizes`` and resized to ``original_sizes`` (the same three steps), then softmaxed.

    Args:
        model: called as ``model(images, return_aux=False)`` as it is: put it in eval mode first
            (:func:`evaluate_semantic` does), or dropout stays on.
        images: ``[B, 3, Hp, Wp]``, normalised and padded (on the model's device).
        image_sizes: ``(H, W)`` of each image inside the padding.
        original_sizes: ``(H0, W0)`` to resize each result to.
    """
    padded = tuple(images.shape[-2:])
    outputs = model(images, return_aux=False)
    if "semantic_logits" in outputs:
        logits = outputs["semantic_logits"].float()  # [B, K, h, w]
        # Resize logits and softmax last, so that the argmax is the one of the resized logits (original code).
        return [_masks_to_original(logits[b], padded, tuple(image_sizes[b]), tuple(original_sizes[b])).softmax(0)
                for b in range(logits.shape[0])]  # B x [K, H0, W0]
    outputs = {"pred_logits": outputs["pred_logits"].float(), "pred_masks": outputs["pred_masks"].float()}
    results = semantic_segmentation(outputs, image_sizes, original_sizes, padded_size=padded, return_scores=True)
    return [r["scores"] for r in results]  # B x [K, H0, W0]


@torch.no_grad()
def tta_probabilities(model: nn.Module, images: Sequence[Tensor], *, short_edges: Sequence[int] = (512,),
                      max_size: int = 2048, flip: bool = False,
                      output_sizes: Sequence[Size] | None = None) -> list[Tensor]:
    """Scores averaged over scales (and horizontal flips), one ``[K, H0, W0]`` per image.

    Args:
        model: as in :func:`semantic_probabilities`.
        images: normalised images ``[3, H0, W0]`` at their original size, on the model's device.
        short_edges: the test scales; each image is resized from its original size to each one
            (long side at most ``max_size``), batched with padding to 32 and run.
        flip: also run the horizontally flipped image at every scale (its scores are flipped back).
        output_sizes: size of each result; default the images' sizes.
    """
    output_sizes = [tuple(s) for s in output_sizes] if output_sizes is not None else [tuple(x.shape[-2:]) for x in images]
    totals: list[Tensor | None] = [None] * len(images)
    flips = (False, True) if flip else (False,)
    for short_edge in short_edges:
        resized = [resize_shortest_edge(x, short_edge, max_size) for x in images]  # [3, H, W] each
        sizes = [tuple(x.shape[-2:]) for x in resized]
        for flipped in flips:
            batch = pad_images([x.flip(-1) if flipped else x for x in resized])  # [B, 3, Hp, Wp]
            scores = semantic_probabilities(model, batch, sizes, output_sizes)
            for i, s in enumerate(scores):
                s = s.flip(-1) if flipped else s  # back to the unflipped image
                totals[i] = s if totals[i] is None else totals[i].add_(s)
    passes = len(short_edges) * len(flips)
    return [t / passes for t in totals]


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _class_names(class_names, dataset, model, num_classes: int) -> list[str] | None:
    """Explicit names, else the dataset's, else the model's ``config.id2label``; checked against K."""
    if class_names is None:
        class_names = getattr(dataset, "class_names", None)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"maskformer/evaluation.py: the model predicts {num_classes} classes but the dataset "
                f"{type(dataset).__name__} has {len(class_names)}; evaluate a checkpoint trained on this dataset")
    if class_names is None:
        id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
        if sorted(id2label) == list(range(num_classes)):
            class_names = [id2label[i] for i in range(num_classes)]
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"maskformer/evaluation.py: {len(class_names)} class_names for a model with {num_classes} "
                         f"classes; pass one name per class")
    return list(class_names) if class_names is not None else None


def evaluate_semantic(
    model: nn.Module,
    dataset: Dataset,
    *,
    short_edges: Sequence[int] = (512,),
    max_size: int = 2048,
    flip: bool = False,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    progress: bool = True,
    limit: int | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on ``dataset``.

    Args:
        model: a MaskFormer or a PerPixelBaseline (anything :func:`semantic_probabilities` accepts).
            It runs in eval mode under ``torch.inference_mode()``; its training mode is restored.
        dataset: samples in the :mod:`~maskformer.data.collate` format built *without* transforms
            (``image`` normalised at the original size, ``original_semantic`` ``[H0, W0]``), e.g.
            ``build_dataset("ade20k", "val")``.
        short_edges: test scales; ``(512,)`` is the paper's single-scale protocol,
            :data:`ADE20K_TEST_SCALES` with ``max_size=ADE20K_TEST_MAX_SIZE`` and ``flip=True`` its
            multi-scale one.
        max_size: cap on the long side after resizing.
        flip: also average over horizontally flipped images.
        batch_size: images per forward pass (padded to a common size).
        device: where to run; default the model's device (the model is moved to ``device``).
        class_names: names for ``per_class``; default the dataset's ``class_names``.
        ignore_index: label value left out of the metrics.
        progress: show a tqdm progress bar.
        limit: evaluate only the first ``limit`` images.
        num_workers: DataLoader workers that read and decode images.

    Returns:
        :meth:`SemanticMetrics.compute`'s dict (``mIoU``, ``pixel_accuracy``, ``mean_accuracy``,
        ``IoU`` and ``accuracy`` ``[K]``, ``per_class`` when names are known), plus ``num_images``,
        ``short_edges``, ``max_size`` and ``flip``.
    """
    if progress:
        from tqdm.auto import tqdm
    else:  # no import at all: tqdm.auto warns in notebooks without ipywidgets even when disabled
        from tqdm import tqdm

    if not short_edges:
        raise ValueError("maskformer/evaluation.py: short_edges is empty; pass at least one test scale, e.g. (512,)")
    source = dataset  # for its class_names
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("maskformer/evaluation.py: the dataset is empty (or limit=0); nothing to evaluate")
    device = torch.device(device) if device is not None else _device_of(model)
    model.to(device)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    metrics = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(dataset), desc="evaluate", unit="img", disable=not progress) as bar:
            for samples in loader:
                images = [s["image"].to(device) for s in samples]  # [3, H0, W0] each
                labels = [s["original_semantic"] for s in samples]  # [H0, W0] each
                scores = tta_probabilities(model, images, short_edges=short_edges, max_size=max_size, flip=flip,
                                           output_sizes=[tuple(label.shape[-2:]) for label in labels])
                if metrics is None:  # K is known once the model has run
                    num_classes = scores[0].shape[0]
                    metrics = SemanticMetrics(num_classes, ignore_index,
                                              _class_names(class_names, source, model, num_classes))
                for s, label in zip(scores, labels):
                    metrics.update(s.argmax(0).cpu(), label)
                bar.update(len(samples))
    finally:
        model.train(was_training)
    results = metrics.compute()
    results.update(num_images=len(dataset), short_edges=list(short_edges), max_size=max_size, flip=flip)
    return results


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Tensors -> lists, NaN -> None (JSON has no NaN), recursively."""
    if isinstance(value, Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _per_class_rows(results: Mapping[str, Any]) -> list[tuple[int, str, float, float]]:
    """``(class id, name, IoU, accuracy)`` per class; names from ``per_class``, else the ids."""
    iou = [float(v) for v in torch.as_tensor(results["IoU"], dtype=torch.float64).tolist()]
    accuracy = results.get("accuracy")
    accuracy = [float(v) for v in torch.as_tensor(accuracy, dtype=torch.float64).tolist()] if accuracy is not None \
        else [float("nan")] * len(iou)
    names = list(results["per_class"]) if "per_class" in results else [str(i) for i in range(len(iou))]
    return list(zip(range(len(iou)), names, iou, accuracy))


def write_results(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write :func:`evaluate_semantic`'s results: ``.json`` (everything; NaN as null) or ``.csv`` (per class:
    ``class_id, class_name, IoU, accuracy``; empty cells for classes absent from labels and predictions)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ValueError(f"maskformer/evaluation.py: cannot write results to {path}: use a .json file (all numbers) "
                         f"or a .csv file (per-class IoU)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        path.write_text(json.dumps(_jsonable(dict(results)), indent=2) + "\n")
        return path
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class_id", "class_name", "IoU", "accuracy"])
        for class_id, name, iou, accuracy in _per_class_rows(results):
            writer.writerow([class_id, name, "" if math.isnan(iou) else f"{iou:.6f}",
                             "" if math.isnan(accuracy) else f"{accuracy:.6f}"])
    return path


def format_results(results: Mapping[str, Any]) -> str:
    """A readable table: mIoU, pixel accuracy, mean accuracy (percent), then the IoU of every class
    ("-" where a class appears neither in the labels nor in the predictions)."""
    percent = lambda v: "-" if v is None or math.isnan(v) else f"{100 * v:.2f}"  # noqa: E731
    lines = [
        f"mIoU            {percent(results['mIoU'])}",
        f"pixel accuracy  {percent(results['pixel_accuracy'])}",
        f"mean accuracy   {percent(results.get('mean_accuracy'))}",
    ]
    if "num_images" in results:
        scales = ", ".join(str(s) for s in results.get("short_edges", []))
        lines.append(f"{results['num_images']} images, short edge {scales}"
                     + (f" (max {results['max_size']})" if "max_size" in results else "")
                     + (", with flip" if results.get("flip") else ""))
    rows = _per_class_rows(results)
    width = max([len("class")] + [len(name) for _, name, _, _ in rows])
    lines += ["", f"{'id':>4}  {'class':<{width}}  {'IoU':>6}"]
    lines += [f"{class_id:>4}  {name:<{width}}  {percent(iou):>6}" for class_id, name, iou, _ in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Panoptic and instance evaluation, as COCO computes it
# ---------------------------------------------------------------------------------------------


def _base(dataset: Dataset) -> Dataset:
    """The dataset under any number of ``Subset`` wrappers (which keep the samples, not the attributes)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _coco_categories(dataset: Dataset, num_classes: int) -> tuple[list[int], list[int], list[str]]:
    """``(category id of each class, thing classes, names)``; COCO datasets keep their COCO ids, others 0..K-1."""
    base = _base(dataset)
    category = list(getattr(base, "contiguous_to_category", range(num_classes)))
    things = getattr(base, "thing_ids", None)
    if things is None:
        raise ValueError(f"maskformer/evaluation.py: {type(base).__name__} does not say which classes are things "
                         f"(thing_ids); panoptic and instance evaluation need a dataset with panoptic ground truth "
                         f"(Shapes, COCOPanoptic, COCOInstances)")
    names = list(getattr(base, "class_names", None) or [str(c) for c in range(num_classes)])
    if len(category) != num_classes or len(names) != num_classes:
        raise ValueError(f"maskformer/evaluation.py: the model predicts {num_classes} classes but the dataset "
                         f"{type(base).__name__} has {len(names)}; evaluate a checkpoint trained on this dataset")
    return category, list(things), names


def panoptic_ground_truth(sample: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """A sample's panoptic ground truth at the original size: ``[H0, W0]`` segment ids (0 = void) as numpy and its
    ``segments_info`` (``id``, ``category_id`` = class, ``iscrowd``).

    COCO samples carry ``original_instance`` and ``segments_info``; Shapes samples (built without transforms)
    carry ``instance`` and ``id_to_class``, whose background (instance 0) becomes segment 1.
    """
    if "segments_info" in sample and "original_instance" in sample:
        return sample["original_instance"].numpy(), [
            {"id": s["id"], "category_id": s["category_id"], "iscrowd": s.get("iscrowd", 0)}
            for s in sample["segments_info"]]
    if "instance" in sample and "id_to_class" in sample:
        ids = sample["instance"].numpy() + 1  # Shapes has no void: its background is segment 1
        return ids, [{"id": i + 1, "category_id": c, "iscrowd": 0} for i, c in sample["id_to_class"].items()]
    raise ValueError(f"maskformer/evaluation.py: sample {sample.get('name', '')!r} has no panoptic ground truth "
                     f"(original_instance + segments_info, or instance + id_to_class); use COCOPanoptic, "
                     f"COCOInstances or Shapes")


def _model_outputs(model: nn.Module, dataset: Dataset, *, short_edge: int, max_size: int, batch_size: int,
                   device: torch.device, limit: int | None, num_workers: int, progress: bool):
    """Run ``model`` on ``dataset`` at one scale; yields ``(samples, outputs, image_sizes, padded_size)``."""
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("maskformer/evaluation.py: the dataset is empty (or limit=0); nothing to evaluate")
    model.to(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    try:
        with torch.inference_mode(), tqdm(total=len(dataset), desc="evaluate", unit="img", disable=not progress) as bar:
            for samples in loader:
                resized = [resize_shortest_edge(s["image"].to(device), short_edge, max_size) for s in samples]
                batch = pad_images(resized)  # [B, 3, Hp, Wp]
                outputs = model(batch, return_aux=False)
                if "pred_logits" not in outputs:
                    raise ValueError("maskformer/evaluation.py: panoptic and instance results need a mask-"
                                     "classification model (MaskFormer); a per-pixel baseline gives semantic maps only")
                outputs = {"pred_logits": outputs["pred_logits"].float(), "pred_masks": outputs["pred_masks"].float()}
                yield samples, outputs, [tuple(x.shape[-2:]) for x in resized], tuple(batch.shape[-2:])
                bar.update(len(samples))
    finally:
        model.train(was_training)


def evaluate_panoptic(
    model: nn.Module,
    dataset: Dataset,
    out_dir: str | Path,
    *,
    short_edge: int = 800,
    max_size: int = 1333,
    object_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    limit: int | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """PQ, SQ and RQ of ``model`` on ``dataset`` by the COCO rules, with the predictions written in COCO format.

    Every image is resized (short side ``short_edge``, long side at most ``max_size``; orig:
    ``INPUT.MIN_SIZE_TEST`` 800 / ``INPUT.MAX_SIZE_TEST`` 1333 on COCO), run, and turned into segments by
    :func:`~maskformer.postprocess.panoptic_segmentation` (``object_threshold``: orig
    ``MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD``; stuff classes merged). ``out_dir`` receives

    - ``predictions/NAME.png`` and ``predictions.json``: the predictions in the COCO panoptic format
      (COCO category ids for COCO datasets, so the official ``panopticapi`` accepts them as they are);
    - ``ground_truth/NAME.png`` and ``ground_truth.json``: the evaluated images' ground truth, written from
      the samples (for COCO, the same segments as the original files).

    and :func:`~maskformer.metrics.coco_panoptic_pq` compares the two. Returns its dict (``All``, ``Things``,
    ``Stuff``, ``per_class`` keyed by category id) plus ``class_names`` (category id -> name), ``num_images``
    and ``out_dir``.
    """
    from .panoptic_eval import coco_panoptic_pq, write_panoptic_json, write_panoptic_png
    from .postprocess import panoptic_segmentation

    out_dir = Path(out_dir)
    device = torch.device(device) if device is not None else _device_of(model)
    gt_annotations, pred_annotations, images = [], [], []
    categories = None
    for samples, outputs, sizes, padded in _model_outputs(
            model, dataset, short_edge=short_edge, max_size=max_size, batch_size=batch_size, device=device,
            limit=limit, num_workers=num_workers, progress=progress):
        if categories is None:
            category, things, names = _coco_categories(dataset, outputs["pred_logits"].shape[-1] - 1)
            stuff = [c for c in range(len(category)) if c not in set(things)]
            categories = [{"id": category[c], "name": names[c], "isthing": int(c in things)}
                          for c in range(len(category))]
        results = panoptic_segmentation(outputs, sizes, [tuple(s["original_semantic"].shape[-2:]) for s in samples],
                                        object_threshold=object_threshold, overlap_threshold=overlap_threshold,
                                        label_ids_to_fuse=stuff, padded_size=padded)
        for sample, result in zip(samples, results):
            image_id = sample.get("image_id", len(images))
            file_name = f"{sample.get('name') or image_id}.png"
            gt_ids, gt_segments = panoptic_ground_truth(sample)
            write_panoptic_png(gt_ids, out_dir / "ground_truth" / file_name)
            gt_annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": [
                dict(s, category_id=category[s["category_id"]], area=int((gt_ids == s["id"]).sum()))
                for s in gt_segments if (gt_ids == s["id"]).any()]})
            write_panoptic_png(result["segmentation"].cpu().numpy(), out_dir / "predictions" / file_name)
            pred_annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": [
                {"id": s["id"], "category_id": category[s["label_id"]], "isthing": int(s["is_thing"]),
                 "score": s["score"]} for s in result["segments_info"]]})
            images.append({"id": image_id, "file_name": file_name, "height": gt_ids.shape[0], "width": gt_ids.shape[1]})
    write_panoptic_json(out_dir / "ground_truth.json", gt_annotations, categories, images)
    write_panoptic_json(out_dir / "predictions.json", pred_annotations, categories, images)
    results = coco_panoptic_pq(out_dir / "ground_truth.json", out_dir / "predictions.json")
    results.update(class_names={c["id"]: c["name"] for c in categories}, num_images=len(images), out_dir=str(out_dir))
    return results


AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval's first six statistics, in its order


def _coco_api(images: list[dict], annotations: list[dict], categories: list[dict]):
    """A pycocotools ``COCO`` object from in-memory ground truth."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _instance_ground_truth(dataset: Dataset, sample: Mapping[str, Any], category: Sequence[int],
                           things: Sequence[int]) -> list[dict[str, Any]]:
    """COCO annotations of one image: a COCO instance dataset's own (overlaps kept), else the thing segments."""
    from pycocotools import mask as mask_utils

    base = _base(dataset)
    if hasattr(base, "annotations") and hasattr(base, "decode"):  # COCOInstances: the JSON's annotations
        return [dict(a) for a in base.annotations[sample["image_id"]]]
    ids, segments = panoptic_ground_truth(sample)
    annotations = []
    for s in segments:
        if s["category_id"] not in things or not (ids == s["id"]).any():
            continue
        rle = mask_utils.encode(np.asfortranarray((ids == s["id"]).astype(np.uint8)))
        annotations.append({"segmentation": rle, "area": float(mask_utils.area(rle)),
                            "bbox": list(mask_utils.toBbox(rle)), "iscrowd": int(s["iscrowd"]),
                            "category_id": category[s["category_id"]]})
    return annotations


def evaluate_instance(
    model: nn.Module,
    dataset: Dataset,
    out_dir: str | Path | None = None,
    *,
    short_edge: int = 800,
    max_size: int = 1333,
    top_k: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    limit: int | None = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """COCO mask AP of ``model`` on ``dataset``, computed by pycocotools' ``COCOeval`` (``iouType="segm"``).

    Instances come from :func:`~maskformer.postprocess.instance_segmentation` (the top ``top_k`` query-class
    pairs, default the number of queries, as the original's ``TEST.DETECTIONS_PER_IMAGE`` = 100), thing classes
    only. The ground truth is a COCO instance dataset's own annotations, or the thing segments of a panoptic
    one (Shapes, COCOPanoptic). With ``out_dir``, ``instances_ground_truth.json`` and
    ``instances_predictions.json`` (the COCO results format) are written there.

    Returns ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (fractions; NaN where COCOeval has no
    data, its -1), ``per_class`` (category id -> AP), ``class_names`` and ``num_images``.
    """
    from pycocotools.cocoeval import COCOeval

    from .postprocess import instance_segmentation

    device = torch.device(device) if device is not None else _device_of(model)
    images, annotations, detections = [], [], []
    category = None
    for samples, outputs, sizes, padded in _model_outputs(
            model, dataset, short_edge=short_edge, max_size=max_size, batch_size=batch_size, device=device,
            limit=limit, num_workers=num_workers, progress=progress):
        if category is None:
            category, things, names = _coco_categories(dataset, outputs["pred_logits"].shape[-1] - 1)
        results = instance_segmentation(outputs, sizes, [tuple(s["original_semantic"].shape[-2:]) for s in samples],
                                        top_k=top_k, padded_size=padded, return_rle=True)
        for sample, result in zip(samples, results):
            image_id = sample.get("image_id", len(images))
            H0, W0 = sample["original_semantic"].shape[-2:]
            images.append({"id": image_id, "file_name": f"{sample.get('name') or image_id}", "height": H0, "width": W0})
            for a in _instance_ground_truth(dataset, sample, category, things):
                annotations.append(dict(a, id=len(annotations) + 1, image_id=image_id))
            for label, score, rle in zip(result["labels"].tolist(), result["scores"].tolist(), result["rle"]):
                if label in things:
                    detections.append({"image_id": image_id, "category_id": category[label], "segmentation": rle,
                                       "score": float(score)})
    thing_categories = [{"id": category[c], "name": names[c]} for c in things]
    for a in annotations:  # JSON-ready RLE (pycocotools gives bytes)
        if isinstance(a.get("segmentation"), dict) and isinstance(a["segmentation"].get("counts"), bytes):
            a["segmentation"] = dict(a["segmentation"], counts=a["segmentation"]["counts"].decode("ascii"))
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "instances_ground_truth.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": thing_categories}, default=float))
        (out_dir / "instances_predictions.json").write_text(json.dumps(detections))
    results: dict[str, Any] = {"class_names": {category[c]: names[c] for c in things}, "num_images": len(images)}
    if not detections:  # COCOeval cannot load an empty result list: nothing detected is AP 0
        results.update({name: 0.0 for name in AP_NAMES}, per_class={category[c]: 0.0 for c in things})
        return results
    gt = _coco_api(images, annotations, thing_categories)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        coco_eval = COCOeval(gt, dt, iouType="segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    results.update({name: float(v) if v >= 0 else math.nan for name, v in zip(AP_NAMES, coco_eval.stats[:6])})
    # per class: precision [IoU thresholds, recall points, classes, area ranges, max detections]; area "all", 100 dets
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]
    results["per_class"] = {}
    for k, category_id in enumerate(coco_eval.params.catIds):
        p = precision[:, :, k]
        results["per_class"][category_id] = float(p[p > -1].mean()) if (p > -1).any() else math.nan
    return results


def format_instance_results(results: Mapping[str, Any]) -> str:
    """COCO mask AP in percent: the six summary numbers, then the AP of every class."""
    percent = lambda v: "-" if v is None or math.isnan(v) else f"{100 * v:.2f}"  # noqa: E731
    lines = ["  ".join(f"{name} {percent(results[name])}" for name in AP_NAMES)]
    names = results.get("class_names", {})
    per_class = results.get("per_class", {})
    if per_class:
        width = max([5] + [len(str(names.get(c, c))) for c in per_class])
        lines += ["", f"{'id':>4}  {'class':<{width}}  {'AP':>6}"]
        lines += [f"{c:>4}  {str(names.get(c, c)):<{width}}  {percent(v):>6}" for c, v in per_class.items()]
    return "\n".join(lines)
