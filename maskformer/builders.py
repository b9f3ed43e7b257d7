"""The builders: the model, the loss and the conversions that pick a class, in one place.

``build_model(config)`` and ``build_criterion(config)`` choose MaskFormer or the per-pixel baseline from
``config.architecture``; ``from_transformers`` turns a live Hugging Face model into ours.
"""

from __future__ import annotations

from torch import nn

from .baseline import PerPixelBaseline, PerPixelBaselinePlus, PerPixelLoss
from .config import MaskFormerConfig
from .convert import hf_config_to_ours, hf_state_dict_to_ours, load_converted
from .loss import MaskFormerLoss
from .model import MaskFormer

__all__ = ["build_model", "build_criterion", "from_transformers"]


def build_model(config: MaskFormerConfig, pretrained_backbone: bool = False) -> nn.Module:
    """The model ``config.architecture`` names: :class:`MaskFormer` ("maskformer"),
    :class:`~maskformer.baseline.PerPixelBaseline` ("per_pixel") or
    :class:`~maskformer.baseline.PerPixelBaselinePlus` ("per_pixel_plus")."""
    if config.architecture == "per_pixel":
        return PerPixelBaseline(config, pretrained_backbone)
    if config.architecture == "per_pixel_plus":
        return PerPixelBaselinePlus(config, pretrained_backbone)
    return MaskFormer(config, pretrained_backbone)


def build_criterion(config: MaskFormerConfig) -> nn.Module:
    """The training loss of ``config.architecture``: :class:`~maskformer.MaskFormerLoss` or
    :class:`~maskformer.baseline.PerPixelLoss`. Both have ``normalisers(micro_batches)`` (the divisors of
    one optimiser step), ``batch_losses(outputs, batch, normalisers)`` and ``total_loss(losses)``, so a
    training loop needs nothing else."""
    if config.architecture in ("per_pixel", "per_pixel_plus"):
        return PerPixelLoss.from_config(config)
    return MaskFormerLoss.from_config(config)


def from_transformers(hf_model) -> "MaskFormer":
    """A :class:`~maskformer.MaskFormer` with the weights of a ``transformers.MaskFormerForInstanceSegmentation``
    or a ``transformers.Mask2FormerForUniversalSegmentation`` (then with every Mask2Former switch on).

    The result is in eval mode when ``hf_model`` is. Hugging Face's MaskFormer decoder dropout defaults differ
    from the original (see README), so our config keeps the original's 0.1 for training; a Mask2Former
    keeps its config's dropout (0 in the original).
    """
    config = hf_config_to_ours(hf_model.config.to_dict())
    model = MaskFormer(config)
    load_converted(model, hf_state_dict_to_ours(hf_model.state_dict(), config), source=type(hf_model).__name__)
    return model.train(hf_model.training)
