"""MaskFormer: backbone -> pixel decoder -> transformer decoder -> (class, mask) for each of N queries.

Paper §3: instead of one class per pixel, predict N (mask, class) pairs. A query's class logits come
from a linear layer on its embedding; its mask is the dot product of a "mask embedding" (an MLP of the
query embedding) with every per-pixel embedding of the pixel decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import build_backbone, load_timm_weights
from .config import MaskFormerConfig
from .outputs import MaskFormerOutput
from .pretrained import PretrainedMixin
from .pixel_decoder import PixelDecoder
from .transformer_decoder import TransformerDecoder


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (DETR's box/mask-embedding MLP)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def mask_logits(mask_embed: torch.Tensor, conv: nn.Conv2d, x: torch.Tensor, fold: bool | None = None) -> torch.Tensor:
    """Mask logits ``einsum("bmd,bdhw->bmhw", mask_embed, conv(x))``, in whichever order is cheaper.

    ``conv`` is the pixel decoder's last layer (``mask_features``) and ``x`` its input ``[B, C, h, w]``;
    ``mask_embed`` is ``[B, M, D]``. Both steps are linear, so the product equals a single conv of ``x``
    whose M filters are ``mask_embed @ conv.weight`` (bias ``mask_embed @ conv.bias``). Per pixel that
    costs ``M*C*k*k`` multiply-adds instead of ``D*C*k*k + M*D``: about 2.7x less for the final layer's
    100 queries (M=100, C=D=256, k=3), more for the 600 masks of all six layers. ``fold=None`` picks the
    cheaper order; both give the same numbers up to float rounding. Returns ``[B, M, h, w]``.
    """
    B, M, D = mask_embed.shape
    C, k = conv.in_channels, conv.kernel_size[0]
    if fold is None:
        fold = M * C * k * k < D * C * k * k + M * D
    if not fold:
        return torch.einsum("bmd,bdhw->bmhw", mask_embed, conv(x))
    weight = torch.einsum("bmd,dcij->bmcij", mask_embed, conv.weight)  # [B, M, C, k, k]: filters per image
    bias = mask_embed @ conv.bias  # [B, M]
    # One conv per image rather than one grouped conv over [1, B*C, h, w]: that reshape would copy a
    # channels-last x (Swin's maps are) and send the conv down oneDNN's slower NCHW path.
    out = [F.conv2d(x[i:i + 1], weight[i], bias[i], padding=conv.padding) for i in range(B)]
    return torch.cat(out).contiguous()  # [B, M, h, w]


class MaskFormer(PretrainedMixin, nn.Module):
    """The whole model.

    ``MaskFormer(config)(images)`` with ``images [B, 3, H, W]`` (ImageNet-normalised) returns a
    :class:`MaskFormerOutput` with ``pred_logits [B, Q, K+1]`` (class K is "no object"),
    ``pred_masks [B, Q, ceil(H/4), ceil(W/4)]`` (mask logits on the stride-4 grid) and ``aux_outputs``
    (one dict per earlier decoder layer in training mode when ``config.deep_supervision``, else an
    empty list; see :meth:`forward`'s ``return_aux``).

    Args:
        config: the architecture; see :class:`MaskFormerConfig` and its presets.
        pretrained_backbone: initialise the backbone from timm's ImageNet weights (needs internet).
    """

    architecture = "maskformer"

    def __init__(self, config: MaskFormerConfig, pretrained_backbone: bool = False):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        if pretrained_backbone:
            load_timm_weights(self.backbone, config)
        channels = self.backbone.channels
        self.pixel_decoder = PixelDecoder(channels, config.fpn_dim, config.mask_dim)
        # The original projects with a 1x1 conv only when the channels differ; we always do (convert.py
        # loads an identity where a checkpoint has none).
        in_channels = channels[-1] if config.transformer_in_feature == "res5" else config.mask_dim
        self.transformer = TransformerDecoder(in_channels, config.hidden_dim, config.num_queries, config.num_heads,
                                              config.dim_feedforward, config.dec_layers, config.dropout)
        self.class_embed = nn.Linear(config.hidden_dim, config.num_classes + 1)
        self.mask_embed = MLP(config.hidden_dim, config.hidden_dim, config.mask_dim, 3)
        # oneDNN's CPU convolutions are fastest with NHWC activations *and* weights; keeping the
        # weights NHWC saves a reorder per conv per call. Loading and saving are unaffected.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor, return_aux: bool | None = None) -> MaskFormerOutput:
        """images ``[B, 3, H, W]`` -> :class:`MaskFormerOutput`.

        ``return_aux``: whether to predict with the earlier decoder layers too (``aux_outputs``, for
        deep supervision). None, the default, does so in training mode only; an eval-mode forward
        returns ``aux_outputs == []``. Inference needs only the last layer, and with 100 masks
        instead of 600 the mask head can be folded into the pixel decoder's last conv (see
        :func:`mask_logits`). True or False forces either, e.g. True to look at the earlier
        layers of a model in eval mode.
        """
        if return_aux is None:
            return_aux = self.training
        B = images.shape[0]  # images: [B, 3, H, W]
        features = self.backbone(images)  # [res2, res3, res4, res5]
        p2 = self.pixel_decoder.fpn(features)[-1]  # [B, fpn_dim, H/4, W/4]
        pixel_embedding = None
        if self.config.transformer_in_feature == "pixel_embedding":
            pixel_embedding = self.pixel_decoder.mask_features(p2)  # [B, mask_dim, H/4, W/4]
            hs = self.transformer(pixel_embedding)  # [L, B, Q, C], every decoder layer
        else:
            hs = self.transformer(features[-1])
        if not (return_aux and self.config.deep_supervision):
            hs = hs[-1:]
        L, _, Q, _ = hs.shape
        logits = self.class_embed(hs)  # [L, B, Q, K+1]
        mask_embed = self.mask_embed(hs)  # [L, B, Q, D]
        mask_embed = mask_embed.transpose(0, 1).reshape(B, L * Q, -1)  # [B, L*Q, D]
        if pixel_embedding is not None:  # already computed: no folding
            masks = torch.einsum("bmd,bdhw->bmhw", mask_embed, pixel_embedding)
        else:
            masks = mask_logits(mask_embed, self.pixel_decoder.mask_features, p2)
        masks = masks.view(B, L, Q, *masks.shape[-2:]).transpose(0, 1)  # [L, B, Q, H/4, W/4]
        aux = [{"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(L - 1)]
        return MaskFormerOutput(pred_logits=logits[-1], pred_masks=masks[-1], aux_outputs=aux)
