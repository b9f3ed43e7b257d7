"""The paper's per-pixel classification baseline (§4.1, "PerPixelBaseline").

Paper §4.1: to isolate what mask classification brings, the baseline keeps MaskFormer's backbone
and pixel decoder and replaces the transformer decoder and the mask head by a 1x1 convolution
that predicts K class logits at every pixel of the stride-4 embeddings, trained with a per-pixel
cross-entropy. The gap between the two (ADE20K-150, R50: 39.2 vs 44.5 mIoU) is the paper's case
for mask classification.

Paper Table 4 adds a stronger baseline, PerPixelBaseline+ (41.9 mIoU): the per-pixel class scores come
from MaskFormer's transformer module and mask-embedding MLP, with one query per class, so that the only
difference left to MaskFormer is the formulation (per-pixel softmax vs sets of masks with their classes).

- :class:`PerPixelBaseline`: images ``[B, 3, H, W]`` -> ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]``.
- :class:`PerPixelBaselinePlus`: the same output, the K maps made as MaskFormer makes its masks (plus
  ``aux_outputs`` of the earlier decoder layers for deep supervision).
- :class:`PerPixelLoss`: logits upsampled by the output stride to the label size, cross-entropy
  over the labelled pixels (``loss_sem_seg``), as the original's ``PerPixelBaselineHead``; or, with
  ``loss="focal_dice"``, each class's map trained as a binary mask with MaskFormer's focal + dice terms
  (the paper's check that MaskFormer's gain does not come from its loss). With gradient accumulation,
  :meth:`PerPixelLoss.normalisers` counts the labelled pixels (or masks) of all micro-batches once, so
  that the micro-batch losses sum to the full batch's.

Both expose the same entry points as :class:`~maskformer.MaskFormer` and
:class:`~maskformer.MaskFormerLoss`; :func:`maskformer.builders.build_model` and
:func:`maskformer.builders.build_criterion` pick one pair from ``config.architecture``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import build_backbone, load_timm_weights
from .config import MaskFormerConfig
from .loss import MASK_LOSSES, full_mask_losses, mean_over_processes
from .model import MLP
from .outputs import MaskFormerOutput
from .pretrained import PretrainedMixin
from .pixel_decoder import PixelDecoder
from .transformer_decoder import TransformerDecoder

__all__ = ["PerPixelBaseline", "PerPixelBaselinePlus", "PerPixelLoss", "OUTPUT_STRIDE"]

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


class PerPixelBaselinePlus(PretrainedMixin, nn.Module):
    """PerPixelBaseline+ (paper Table 4; the original's ``PerPixelBaselinePlusHead``): backbone -> pixel decoder ->
    transformer decoder with K queries -> mask-embedding MLP -> K per-pixel class maps.

    MaskFormer's mask head without its class head: query k's "mask" ``mask_embed(q_k) . E_pixel`` is the score
    of class k at every pixel, and the K scores meet in a per-pixel softmax (:class:`PerPixelLoss`). So it
    has MaskFormer's parameters and attention but per-pixel classification's formulation.

    ``PerPixelBaselinePlus(config)(images)`` with ``images [B, 3, H, W]`` returns a
    :class:`~maskformer.MaskFormerOutput` with ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]`` and
    ``aux_outputs``, one ``{"semantic_logits"}`` per earlier decoder layer when deep supervision is on
    (training mode; ``return_aux`` as in :meth:`maskformer.MaskFormer.forward`), else ``[]``.

    Args:
        config: as for MaskFormer, with ``num_queries == num_classes`` (the original's configs say "remember to
            set this to NUM_CLASSES"); ``transformer_in_feature``, ``dec_layers`` and ``deep_supervision`` apply.
        pretrained_backbone: initialise the backbone from timm's ImageNet weights (needs internet).
    """

    architecture = "per_pixel_plus"

    def __init__(self, config: MaskFormerConfig, pretrained_backbone: bool = False):
        super().__init__()
        if config.num_queries != config.num_classes:
            raise ValueError(f"PerPixelBaselinePlus needs one query per class: model.num_queries={config.num_queries}, "
                             f"model.num_classes={config.num_classes}; set model.num_queries={config.num_classes}")
        self.config = config
        self.backbone = build_backbone(config)
        if pretrained_backbone:
            load_timm_weights(self.backbone, config)
        channels = self.backbone.channels
        self.pixel_decoder = PixelDecoder(channels, config.fpn_dim, config.mask_dim)
        in_channels = channels[-1] if config.transformer_in_feature == "res5" else config.mask_dim
        self.transformer = TransformerDecoder(in_channels, config.hidden_dim, config.num_queries, config.num_heads,
                                              config.dim_feedforward, config.dec_layers, config.dropout)
        self.mask_embed = MLP(config.hidden_dim, config.hidden_dim, config.mask_dim, 3)
        self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor, return_aux: bool | None = None) -> MaskFormerOutput:
        """images ``[B, 3, H, W]`` -> ``semantic_logits [B, K, ceil(H/4), ceil(W/4)]`` and ``aux_outputs``."""
        if return_aux is None:
            return_aux = self.training
        features = self.backbone(images)  # [res2, res3, res4, res5]
        mask_features, _ = self.pixel_decoder(features)  # [B, mask_dim, H/4, W/4]
        memory = features[-1] if self.config.transformer_in_feature == "res5" else mask_features
        hs = self.transformer(memory)  # [L, B, K, C], every decoder layer
        if not (return_aux and self.config.deep_supervision):
            hs = hs[-1:]
        mask_embed = self.mask_embed(hs)  # [L, B, K, D]
        logits = torch.einsum("lbkd,bdhw->lbkhw", mask_embed, mask_features)  # [L, B, K, H/4, W/4]
        aux = [{"semantic_logits": logits[i]} for i in range(len(logits) - 1)]
        return MaskFormerOutput(semantic_logits=logits[-1], aux_outputs=aux)


class PerPixelLoss(nn.Module):
    """Per-pixel loss of the baselines: cross-entropy averaged over the labelled pixels, or focal + dice.

    The stride-4 logits are upsampled bilinearly (align_corners=False) by the output stride, as
    detectron2's semantic FPN head and the original ``PerPixelBaselineHead`` do, and cropped to the
    label size when the labels are not a multiple of 4 (collate pads to 32, so usually they are).

    ``loss="focal_dice"`` instead treats class k's map as the mask of class k (every class of every image,
    present or not; unlabelled pixels are background, as in MaskFormer's targets) and applies MaskFormer's
    sigmoid focal (``loss_mask``) and dice (``loss_dice``) terms, summed over the B*K masks and divided by
    their number; the logits are upsampled straight to the label size.

    Earlier decoder layers (``outputs["aux_outputs"]``, :class:`PerPixelBaselinePlus` with deep supervision)
    get the same terms with suffixes ``_0``, ``_1``, ..., as the original's ``loss_sem_seg_{i}``.

    Args:
        num_classes: K, the number of classes (ids ``0..K-1``).
        ignore_index: the label value of unlabelled pixels (255), left out of the mean.
        loss: "cross_entropy" (paper §4.1) or "focal_dice".
        mask_weight, dice_weight: the weights of ``loss_mask`` and ``loss_dice`` (MaskFormer's 20 and 1).
        fused: focal + dice by the fused kernel or the plain formulas (:func:`maskformer.loss.full_mask_losses`).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, loss: str = "cross_entropy",
                 mask_weight: float = 20.0, dice_weight: float = 1.0, fused: bool = True):
        super().__init__()
        if loss not in ("cross_entropy", "focal_dice"):
            raise ValueError(f"PerPixelLoss: loss={loss!r}; must be 'cross_entropy' or 'focal_dice'")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.loss = loss
        self.fused = fused
        if loss == "cross_entropy":
            self.weight_dict = {"loss_sem_seg": 1.0}  # the original's SEM_SEG_HEAD.LOSS_WEIGHT
        else:
            self.weight_dict = {"loss_mask": mask_weight, "loss_dice": dice_weight}

    @classmethod
    def from_config(cls, config: MaskFormerConfig) -> "PerPixelLoss":
        return cls(config.num_classes, loss=config.per_pixel_loss, mask_weight=config.mask_weight,
                   dice_weight=config.dice_weight, fused=config.fused_mask_loss)

    def forward(self, outputs: Mapping[str, Any], semantic: Tensor,
                normalisers: Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """The loss of every layer's per-pixel logits.

        Args:
            outputs: ``semantic_logits`` ``[B, K, h, w]`` (stride 4), optionally ``aux_outputs``, a list of
                such dicts for earlier decoder layers.
            semantic: int64 ``[B, H, W]`` class ids, ``ignore_index`` for unlabelled pixels, with
                ``H <= 4h`` and ``W <= 4w`` (the padded batch's ``batch["semantic"]``).
            normalisers: from :meth:`normalisers` over the whole optimiser step: ``{"num_pixels": ...}``, the
                labelled pixels, which divide the summed cross-entropy (or ``{"num_masks": ...}`` for
                focal + dice); None divides by this batch's own count, on this process.

        Returns:
            ``{"loss_sem_seg": scalar}`` (or ``loss_mask`` and ``loss_dice``), and the same with suffixes
            ``_0``, ``_1``, ... for each aux output; cross-entropy is 0 (with a zero gradient) when every
            pixel is ignored.
        """
        layers = [outputs, *outputs.get("aux_outputs", [])]
        losses = {}
        for i, layer in enumerate(layers):
            suffix = "" if i == 0 else f"_{i - 1}"
            logits = layer["semantic_logits"].float()  # fp32 softmax, also under autocast
            B, K, h, w = logits.shape
            H, W = semantic.shape[-2:]
            if H > OUTPUT_STRIDE * h or W > OUTPUT_STRIDE * w:
                raise ValueError(
                    f"maskformer/baseline.py: labels of size {(H, W)} are larger than {OUTPUT_STRIDE}x the logits "
                    f"{(h, w)}; pass the labels of the batch the model ran on (batch['semantic'])")
            terms = (self._cross_entropy(logits, semantic, normalisers) if self.loss == "cross_entropy"
                     else self._mask_terms(logits, semantic, normalisers))
            losses.update({name + suffix: value for name, value in terms.items()})
        return losses

    def _mask_terms(self, logits: Tensor, semantic: Tensor, normalisers: Mapping[str, float] | None) -> dict[str, Tensor]:
        """Focal and dice of each class's map ``[B, K, h, w]`` against that class's binary mask."""
        B, K, h, w = logits.shape
        semantic = semantic.to(logits.device, non_blocking=True)
        classes = torch.arange(K, device=logits.device)
        targets = (semantic[:, None] == classes[:, None, None]).flatten(0, 1)  # [B*K, H, W]; ignore is in no class
        index = torch.arange(B * K, device=logits.device)
        terms = full_mask_losses(logits.flatten(0, 1), targets, index, MASK_LOSSES["focal_dice"], self.fused)
        num_masks = normalisers["num_masks"] if normalisers is not None else float(B * K)
        return {name: per_mask.sum() / num_masks for name, per_mask in terms.items()}  # per_mask: [B*K]

    def _cross_entropy(self, logits: Tensor, semantic: Tensor,
                       normalisers: Mapping[str, float] | None) -> dict[str, Tensor]:
        """Cross-entropy of the labelled pixels of ``logits [B, K, h, w]`` against ``semantic [B, H, W]``."""
        B, K, h, w = logits.shape
        H, W = semantic.shape[-2:]
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
        """The divisor of one optimiser step: ``num_pixels``, the labelled pixels per process (focal + dice:
        ``num_masks``, the images times K).

        Summed over ``batches`` (this process's collate batches of the step, its micro-batches),
        then over processes and divided by the world size; at least 1, so that a step whose every
        pixel is ignored gives 0, not NaN. With it every micro-batch's loss is its share of the
        full batch's mean, and the micro-batch losses sum to that mean.
        """
        if self.loss == "focal_dice":
            images = sum(len(batch["semantic"]) for batch in batches)
            (num_masks,) = mean_over_processes([float(images * self.num_classes)])
            return {"num_masks": max(num_masks, 1.0)}
        labelled = sum(int((batch["semantic"] != self.ignore_index).sum()) for batch in batches)
        (num_pixels,) = mean_over_processes([float(labelled)])
        return {"num_pixels": max(num_pixels, 1.0)}

    def total_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the terms (``loss_sem_seg``, weight 1, or ``loss_mask`` and ``loss_dice``);
        ``loss_sem_seg_3`` takes the weight of ``loss_sem_seg``."""
        base = {name: re.sub(r"_\d+$", "", name) for name in losses}
        unknown = sorted(name for name, b in base.items() if b not in self.weight_dict)
        if unknown:
            raise KeyError(f"maskformer/baseline.py: no weight for loss terms {unknown}: weight_dict has "
                           f"{sorted(self.weight_dict)}")
        return sum(self.weight_dict[base[name]] * value for name, value in losses.items())
