"""Data: datasets (ADE20K, COCO panoptic and instances, your own folders, `datasets.Dataset`, synthetic
Shapes), the original augmentation, label maps -> matcher targets, and batching. Sample and batch formats:
:mod:`maskformer.data.collate`."""

from .ade20k import ADE20K, ADE20K_CLASSES, ADE20K_PALETTE, colorize
from .build import DATASETS, build_dataset
from .coco import COCOInstances, COCOPanoptic, HFPanoptic
from .collate import IMAGENET_MEAN, IMAGENET_STD, collate, make_sample
from .folder import HFSegmentationDataset, SegmentationFolder
from .io import DataError, MissingFileError, read_image, read_label
from .palette import distinct_palette
from .sample import write_ade20k_sample
from .shapes import Shapes
from .targets import instance_to_targets, reduce_labels, semantic_to_targets
from .transforms import (
    ColorJitterSSD,
    PadTo,
    RandomCropCategoryArea,
    ResizeShortestEdge,
    eval_transforms,
    shortest_edge_size,
    train_transforms,
)

__all__ = [
    "ADE20K", "ADE20K_CLASSES", "ADE20K_PALETTE", "colorize", "distinct_palette", "DATASETS", "build_dataset",
    "COCOInstances", "COCOPanoptic", "HFPanoptic",
    "IMAGENET_MEAN", "IMAGENET_STD", "collate", "make_sample",
    "HFSegmentationDataset", "SegmentationFolder", "read_image", "read_label", "DataError", "MissingFileError", "Shapes", "write_ade20k_sample",
    "instance_to_targets", "reduce_labels", "semantic_to_targets",
    "ColorJitterSSD", "PadTo", "RandomCropCategoryArea", "ResizeShortestEdge", "eval_transforms", "train_transforms",
    "shortest_edge_size",
]
