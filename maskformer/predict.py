"""Run a trained model on your own photos and draw the result: one PNG per image.

Semantic: every pixel takes its class colour, blended over the photo, with the classes present
(largest first) named in a legend. Panoptic (MaskFormer only, paper §3.4): every segment takes its
class colour jittered a little per instance, so that touching objects of one class stay apart,
and segment outlines are drawn in white; void pixels show the photo alone. Beside the overlays, panoptic
results are also written in the COCO panoptic format: ``<stem>_panoptic_ids.png`` (segment ids as RGB,
``R + 256 G + 256^2 B``, 0 = void) and one ``panoptic.json`` with every image's ``segments_info`` and the
``categories`` (the model's class ids and names, ``isthing``), which ``maskformer.metrics.coco_panoptic_pq``
and the official ``panopticapi`` read.

Images are resized as in evaluation (short side ``short_edge``, long side at most ``max_size``),
padded to 32, and the prediction is resized back to the photo's size.

>>> predict(MaskFormer.from_pretrained("ckpt"), ["street.jpg"], "out/")  # doctest: +SKIP
[PosixPath('out/street_semantic.png')]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .data.ade20k import ADE20K_CLASSES, ADE20K_PALETTE
from .data.io import read_image
from .data.palette import distinct_palette
from .evaluation import pad_images, resize_shortest_edge, tta_probabilities
from .panoptic_eval import write_panoptic_json, write_panoptic_png
from .postprocess import panoptic_segmentation

__all__ = ["predict", "default_class_names", "default_palette"]

TASKS = ("semantic", "panoptic")
MAX_LEGEND_ENTRIES = 30  # beyond this a legend is unreadable; the rest are counted in one line
DISPLAY_LONG_SIDE = 1024  # pixels of the drawn photo; larger photos are shown downscaled
INSTANCE_JITTER = 48  # max change of each RGB channel between instances of one class


def default_class_names(model: nn.Module) -> list[str]:
    """``config.id2label`` when it names every class, ADE20K's names for 150 classes, else the ids."""
    num_classes = model.config.num_classes
    id2label = model.config.id2label or {}
    if sorted(id2label) == list(range(num_classes)):
        return [id2label[i] for i in range(num_classes)]
    if num_classes == len(ADE20K_CLASSES):
        return list(ADE20K_CLASSES)
    return [str(i) for i in range(num_classes)]


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """ADE20K's benchmark colours for 150 classes, otherwise generated distinct colours."""
    if num_classes == len(ADE20K_PALETTE):
        return list(ADE20K_PALETTE)
    return list(distinct_palette(num_classes))


def _read(path: Path) -> Tensor:
    """uint8 ``[3, H, W]``; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"maskformer/predict.py: image {path} does not exist (or is not a file); "
                                f"check the path")
    try:
        return read_image(path)
    except ValueError as error:
        raise ValueError(f"maskformer/predict.py: cannot read image {path}: {error}") from None


@torch.no_grad()
def _panoptic(model: nn.Module, image: Tensor, short_edge: int, max_size: int, stuff_ids: Sequence[int] = (),
              object_threshold: float = 0.8, overlap_threshold: float = 0.8) -> dict:
    """``panoptic_segmentation`` of one normalised image ``[3, H0, W0]`` at its original size."""
    resized = resize_shortest_edge(image, short_edge, max_size)  # [3, H, W]
    batch = pad_images([resized])  # [1, 3, Hp, Wp]
    outputs = model(batch, return_aux=False)
    if "pred_logits" not in outputs:
        raise ValueError(f"maskformer/predict.py: task='panoptic' needs a MaskFormer (mask classification); "
                         f"a {type(model).__name__} predicts only per-pixel classes: use task='semantic'")
    outputs = {"pred_logits": outputs["pred_logits"].float(), "pred_masks": outputs["pred_masks"].float()}
    return panoptic_segmentation(outputs, [tuple(resized.shape[-2:])], [tuple(image.shape[-2:])],
                                 padded_size=tuple(batch.shape[-2:]), label_ids_to_fuse=stuff_ids,
                                 object_threshold=object_threshold, overlap_threshold=overlap_threshold)[0]


def _semantic_layer(segmentation: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Class map ``[H, W]`` -> colours ``[H, W, 3]``, where to blend ``[H, W]`` (everywhere), and
    ``(class id, area)`` of the classes present, largest first."""
    ids, counts = np.unique(segmentation, return_counts=True)
    legend = [(int(ids[i]), int(counts[i])) for i in np.argsort(-counts, kind="stable")]
    return palette[segmentation], np.ones(segmentation.shape, dtype=bool), legend


def _panoptic_layer(result: dict, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Panoptic result -> colours ``[H, W, 3]`` (class colour jittered per segment, white outlines),
    where to blend ``[H, W]`` (not on void), legend class ids with their total area, largest first."""
    segmentation = result["segmentation"].cpu().numpy()  # [H, W], 0 = void
    colours = np.zeros((*segmentation.shape, 3), dtype=np.uint8)
    area: dict[int, int] = {}
    for info in result["segments_info"]:
        label = int(info["label_id"])
        # Seeded by the segment id, so the same result always gets the same colours.
        jitter = np.random.default_rng(int(info["id"])).integers(-INSTANCE_JITTER, INSTANCE_JITTER + 1, size=3)
        colours[segmentation == info["id"]] = np.clip(palette[label].astype(int) + jitter, 0, 255)
        area[label] = area.get(label, 0) + int(info["area"])
    outline = np.zeros(segmentation.shape, dtype=bool)
    outline[:, 1:] |= segmentation[:, 1:] != segmentation[:, :-1]
    outline[1:, :] |= segmentation[1:, :] != segmentation[:-1, :]
    colours[outline] = 255
    blend = (segmentation > 0) | outline
    return colours, blend, sorted(area.items(), key=lambda item: -item[1])


def _draw(rgb: np.ndarray, colours: np.ndarray, blend: np.ndarray, legend: list, class_names: Sequence[str],
          palette: np.ndarray, alpha: float, title: str, path: Path) -> None:
    """Blend ``colours`` over the photo where ``blend`` is set, add the legend, save a PNG (Agg, no pyplot)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    H, W = rgb.shape[:2]
    overlay = rgb.astype(np.float32)
    overlay[blend] = (1 - alpha) * overlay[blend] + alpha * colours[blend]
    scale = min(1.0, DISPLAY_LONG_SIDE / max(H, W))
    dpi = 100
    fig = Figure(figsize=(W * scale / dpi, H * scale / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(overlay.round().astype(np.uint8), interpolation="antialiased")
    ax.set_axis_off()
    total = blend.size
    handles = [Patch(facecolor=palette[c] / 255, edgecolor="black", linewidth=0.5,
                     label=f"{class_names[c]} ({100 * n / total:.0f}%)") for c, n in legend[:MAX_LEGEND_ENTRIES]]
    if len(legend) > MAX_LEGEND_ENTRIES:
        handles.append(Patch(facecolor="none", edgecolor="none", label=f"+{len(legend) - MAX_LEGEND_ENTRIES} more"))
    if not handles:  # e.g. panoptic with no query above the score threshold
        handles.append(Patch(facecolor="none", edgecolor="none", label="no segment found"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title=title, title_fontsize=8, alignment="left")
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)


def predict(
    model: nn.Module,
    image_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    task: str = "semantic",
    short_edge: int = 512,
    max_size: int = 2048,
    class_names: Sequence[str] | None = None,
    palette: Sequence[tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
    device: str | torch.device | None = None,
    stuff_ids: Sequence[int] = (),
    object_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
) -> list[Path]:
    """Segment each image and write ``out_dir/<stem>_<task>.png``: the photo with the result blended over it.

    Args:
        model: a MaskFormer (semantic or panoptic) or a PerPixelBaseline (semantic only).
        image_paths: photos (anything PIL reads); all are read before any is drawn, so a
            missing or unreadable file fails at once, naming it.
        out_dir: created if needed.
        task: "semantic" or "panoptic".
        short_edge, max_size: the test resize (the model's training scale: 512 / 2048 for ADE20K).
        class_names: legend names; default :func:`default_class_names`.
        palette: one RGB triple per class; default :func:`default_palette`.
        alpha: opacity of the colours over the photo.
        device: where to run; default the model's device (the model is moved to ``device``).
        stuff_ids: panoptic: the stuff classes, whose segments are merged into one per class (the others are
            things, one segment per query).
        object_threshold, overlap_threshold: panoptic: as :func:`~maskformer.postprocess.panoptic_segmentation`
            (orig ``MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD`` / ``OVERLAP_THRESHOLD``).

    Returns:
        The written overlay PNG paths, in the order of ``image_paths``; panoptic also writes the COCO-format
        files (module docstring) beside them.
    """
    if task not in TASKS:
        raise ValueError(f"maskformer/predict.py: task={task!r}; choose one of {TASKS}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"maskformer/predict.py: alpha={alpha} must be in [0, 1]")
    num_classes = model.config.num_classes
    class_names = list(class_names) if class_names is not None else default_class_names(model)
    palette_array = np.array(palette if palette is not None else default_palette(num_classes), dtype=np.uint8)
    for name, values in (("class_names", class_names), ("palette", palette_array)):
        if len(values) != num_classes:
            raise ValueError(f"maskformer/predict.py: {len(values)} entries in {name} for a model with "
                             f"{num_classes} classes; pass one per class")
    paths = [Path(p) for p in image_paths]
    images = [_read(p) for p in paths]  # uint8 [3, H0, W0] each
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if device is not None:
        model.to(device)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    mean = torch.tensor(model.config.pixel_mean, device=device).view(3, 1, 1)
    std = torch.tensor(model.config.pixel_std, device=device).view(3, 1, 1)
    written, used, annotations = [], set(), []
    was_training = model.training
    model.eval()
    try:
        for path, image in zip(paths, images):
            normalised = (image.to(device).float() / 255 - mean) / std  # [3, H0, W0]
            if task == "semantic":
                scores = tta_probabilities(model, [normalised], short_edges=(short_edge,), max_size=max_size)[0]
                colours, blend, legend = _semantic_layer(scores.argmax(0).cpu().numpy(), palette_array)
            else:
                result = _panoptic(model, normalised, short_edge, max_size, stuff_ids, object_threshold,
                                   overlap_threshold)
                colours, blend, legend = _panoptic_layer(result, palette_array)
            stem = path.stem
            while stem in used:  # photos with the same name from different folders
                stem += "_"
            used.add(stem)
            if task == "panoptic":
                write_panoptic_png(result["segmentation"].cpu().numpy(), out_dir / f"{stem}_panoptic_ids.png")
                annotations.append({"image_id": stem, "file_name": f"{stem}_panoptic_ids.png", "segments_info": [
                    {"id": s["id"], "category_id": s["label_id"], "isthing": int(s["is_thing"]), "score": s["score"],
                     "area": s["area"]} for s in result["segments_info"]]})
            out = out_dir / f"{stem}_{task}.png"
            _draw(image.permute(1, 2, 0).numpy(), colours, blend, legend, class_names, palette_array, alpha,
                  f"{path.name}: {task}", out)
            written.append(out)
    finally:
        model.train(was_training)
    if task == "panoptic":
        stuff = set(stuff_ids)
        categories = [{"id": c, "name": class_names[c], "isthing": int(c not in stuff)} for c in range(num_classes)]
        write_panoptic_json(out_dir / "panoptic.json", annotations, categories)
    return written
