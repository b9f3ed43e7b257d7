"""The paper's per-pixel classification baseline (§4.1, "PerPixelBaseline").

Paper §4.1: to isolate what mask classification brings, the baseline keeps MaskFormer's backbone
and pixel decoder and replaces the transformer decoder and the mask head by a 1x1 convolution
that predicts K class logits at every pixel of the stride-4 embeddings, trained with a per-pixel
cross-entropy. The gap between the two (ADE20K-150, R50: 39.2 vs 44.5 mIoU) is the paper's case
for mask classification.

- :class:`PerPixelBaseline`: images ``[B, 3, H, W]`` -> ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]``.
- :class:`PerPixelLoss`: logits upsampled by the output stride to the label size, cross-entropy
  over the labelled pixels (``loss_sem_seg``), as the original's ``PerPixelBaselineHead``. With
  gradient accumulation, :meth:`PerPixelLoss.normalisers` counts the labelled pixels of all
  micro-batches once, so that the micro-batch losses sum to the full batch's mean.

Both expose the same entry points as :class:`~maskformer.MaskFormer` and
:class:`~maskformer.MaskFormerLoss`; :func:`maskformer.builders.build_model` and
:func:`maskformer.builders.build_criterion` pick one pair from ``config.architecture``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import build_backbone, load_timm_weights
from .config import MaskFormerConfig
from .loss import mean_over_processes
from .outputs import MaskFormerOutput
from .pretrained import PretrainedMixin
from .pixel_decoder import PixelDecoder

__all__ = ["PerPixelBaseline", "PerPixelLoss", "OUTPUT_STRIDE"]

OUTPUT_STRIDE = 4  # the pixel decoder's mask features are at stride 4 of the input


class PerPixelBaseline(PretrainedMixin, nn.Module):
    """Backbone -> pixel decoder -> 1x1 conv to K class logits per pixel.

    ``PerPixelBaseline(config)(images)`` with ``images [B, 3, H, W]`` (ImageNet-normalised) returns a
    :class:`~maskformer.MaskFormerOutput` holding only ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]``
    (K real classes; there is no "no object" class in per-pixel classification).

    Args:
        config: the architecture (backbone, ``fpn_dim``, ``mask_dim``, ``num_classes``); the
            transformer-decoder and mask-loss fields are unused.
        pretrained_backbone: initialise the backbone from timm's ImageNet weights (needs internet).
    """

    architecture = "per_pixel"

    def __init__(self, config: MaskFormerConfig, pretrained_backbone: bool = False):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        if pretrained_backbone:
            load_timm_weights(self.backbone, config)
        self.pixel_decoder = PixelDecoder(self.backbone.channels, config.fpn_dim, config.mask_dim)
        self.predictor = nn.Conv2d(config.mask_dim, config.num_classes, kernel_size=1)
        # The original's PerPixelBaselineHead initialises its predictor with caffe2's "MSRA fill".
        nn.init.kaiming_normal_(self.predictor.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.predictor.bias)
        # Same reason as MaskFormer: oneDNN's CPU convolutions are fastest with NHWC weights and activations.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor, return_aux: bool | None = None) -> MaskFormerOutput:
        """images ``[B, 3, H, W]`` -> ``MaskFormerOutput(semantic_logits=[B, K, ceil(H/4), ceil(W/4)])``.

        ``return_aux`` is accepted so that callers can run either model the same way; the
        baseline has no auxiliary outputs.
        """
        features = self.backbone(images)  # [res2, res3, res4, res5]
        mask_features, _ = self.pixel_decoder(features)  # [B, mask_dim, H/4, W/4]
        # As in the original, no nonlinearity between the pixel decoder's last conv and the predictor.
        return MaskFormerOutput(semantic_logits=self.predictor(mask_features))  # [B, K, H/4, W/4]


class PerPixelLoss(nn.Module):
    """Per-pixel cross-entropy of the baseline, averaged over the labelled pixels.

    The stride-4 logits are upsampled bilinearly (align_corners=False) by the output stride, as
    detectron2's semantic FPN head and the original ``PerPixelBaselineHead`` do, and cropped to the
    label size when the labels are not a multiple of 4 (collate pads to 32, so usually they are).

    Args:
        num_classes: K, the number of classes (ids ``0..K-1``).
        ignore_index: the label value of unlabelled pixels (255), left out of the mean.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.weight_dict = {"loss_sem_seg": 1.0}  # the original's SEM_SEG_HEAD.LOSS_WEIGHT

    @classmethod
    def from_config(cls, config: MaskFormerConfig) -> "PerPixelLoss":
        return cls(config.num_classes)

    def forward(self, outputs: Mapping[str, Tensor], semantic: Tensor,
                normalisers: Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """Cross-entropy of every labelled pixel.

        Args:
            outputs: ``semantic_logits`` ``[B, K, h, w]`` (stride 4).
            semantic: int64 ``[B, H, W]`` class ids, ``ignore_index`` for unlabelled pixels, with
                ``H <= 4h`` and ``W <= 4w`` (the padded batch's ``batch["semantic"]``).
            normalisers: ``{"num_pixels": ...}`` from :meth:`normalisers`, the labelled pixels of the
                whole optimiser step, which divides the summed cross-entropy; None divides by this
                batch's labelled pixels (the mean over them, on this process).

        Returns:
            ``{"loss_sem_seg": scalar}``; 0 (with a zero gradient) when every pixel is ignored.
        """
        logits = outputs["semantic_logits"].float()  # fp32 softmax, also under autocast
        B, K, h, w = logits.shape
        H, W = semantic.shape[-2:]
        if H > OUTPUT_STRIDE * h or W > OUTPUT_STRIDE * w:
            raise ValueError(
                f"maskformer/baseline.py: labels of size {(H, W)} are larger than {OUTPUT_STRIDE}x the logits "
                f"{(h, w)}; pass the labels of the batch the model ran on (batch['semantic'])")
        logits = F.interpolate(logits, size=(OUTPUT_STRIDE * h, OUTPUT_STRIDE * w), mode="bilinear",
                               align_corners=False)  # [B, K, 4h, 4w]
        logits = logits[..., :H, :W]  # [B, K, H, W], only when the labels are not a multiple of 4
        semantic = semantic.to(logits.device, non_blocking=True)
        total = F.cross_entropy(logits, semantic, ignore_index=self.ignore_index, reduction="sum")
        if normalisers is not None:
            return {"loss_sem_seg": total / normalisers["num_pixels"]}
        # A mean over zero labelled pixels is 0/0 = NaN in F.cross_entropy; dividing by at least 1
        # gives 0 with a zero gradient, so an all-ignore crop cannot poison training.
        labelled = (semantic != self.ignore_index).sum().clamp(min=1)
        return {"loss_sem_seg": total / labelled}

    def batch_losses(self, outputs: Mapping[str, Any], batch: Mapping[str, Any],
                     normalisers: Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """The losses of a collate batch: the baseline reads ``batch["semantic"]`` ``[B, Hp, Wp]``.
        ``normalisers``: see :meth:`forward`."""
        return self(outputs, batch["semantic"], normalisers)

    def normalisers(self, batches: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """The divisor of one optimiser step: ``num_pixels``, the labelled pixels per process.

        Summed over ``batches`` (this process's collate batches of the step, its micro-batches),
        then over processes and divided by the world size; at least 1, so that a step whose every
        pixel is ignored gives 0, not NaN. With it every micro-batch's loss is its share of the
        full batch's mean, and the micro-batch losses sum to that mean.
        """
        labelled = sum(int((batch["semantic"] != self.ignore_index).sum()) for batch in batches)
        (num_pixels,) = mean_over_processes([float(labelled)])
        return {"num_pixels": max(num_pixels, 1.0)}

    def total_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the terms (just ``loss_sem_seg``, weight 1)."""
        unknown = sorted(set(losses) - set(self.weight_dict))
        if unknown:
            raise KeyError(f"maskformer/baseline.py: no weight for loss terms {unknown}: weight_dict has "
                           f"{sorted(self.weight_dict)}")
        return sum(self.weight_dict[name] * value for name, value in losses.items())
