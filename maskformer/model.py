"""MaskFormer: backbone -> pixel decoder -> transformer decoder -> (class, mask) for each of N queries.

Paper §3: instead of one class per pixel, predict N (mask, class) pairs. A query's class logits come
from a linear layer on its embedding; its mask is the dot product of a "mask embedding" (an MLP of the
query embedding) with every per-pixel embedding of the pixel decoder.

The Mask2Former switches of :class:`MaskFormerConfig` (masked attention, multi-scale features, the
MSDeformAttn pixel decoder, ...) change the components, not this assembly: the pixel decoder hands
over its maps (see :mod:`maskformer.pixel_decoder` for the contract), the decoder reads one or three of
them, and masked attention asks the mask head for each layer's attention mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import build_backbone, load_timm_weights
from .config import MaskFormerConfig
from .outputs import MaskFormerOutput
from .pretrained import PretrainedMixin
from .msdeform_pixel_decoder import MSDeformAttnPixelDecoder
from .pixel_decoder import PixelDecoder, TransformerEncoderPixelDecoder
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
        self.pixel_decoder = build_pixel_decoder(config, channels)
        if config.multi_scale_features:  # the pixel decoder's 1/32, 1/16, 1/8 maps, fpn_dim channels each
            in_channels, num_levels = config.fpn_dim, 3
        else:  # the original projects with a 1x1 conv only when the channels differ; we always do (convert.py
            # loads an identity where a checkpoint has none)
            in_channels = {"res5": channels[-1], "pixel_embedding": config.mask_dim,
                           "transformer_encoder": config.fpn_dim}[config.transformer_in_feature]
            num_levels = 1
        self.transformer = TransformerDecoder(
            in_channels, config.hidden_dim, config.num_queries, config.num_heads, config.dim_feedforward,
            config.dec_layers, config.dropout, num_levels=num_levels, cross_attention_first=config.cross_attention_first,
            query_features=config.learnable_query_features, enforce_input_projection=config.enforce_input_projection)
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
        cfg = self.config
        B = images.shape[0]  # images: [B, 3, H, W]
        features = self.backbone(images)  # [res2, res3, res4, res5]
        encoded = None  # the "+6 Enc" pixel decoder's encoder output, when the queries attend to it
        if cfg.transformer_in_feature == "transformer_encoder":
            encoded = self.pixel_decoder.encode(features[-1])
            maps = self.pixel_decoder.maps(features, encoded)
        else:
            maps = self.pixel_decoder.maps(features)  # [1/32, 1/16, 1/8, 1/4], coarse to fine
        conv = self.pixel_decoder.mask_features  # its last layer, whose input is maps[-1]
        # Masked attention resizes the per-pixel embeddings; a 1x1 conv commutes with that, so MSDeformAttn's
        # embeddings need not exist whole (the mask head folds into the conv), FPN's 3x3 ones do.
        resize_input = cfg.masked_attention and conv.kernel_size == (1, 1)
        pixel_embedding = None  # [B, mask_dim, H/4, W/4], computed only when something needs it whole
        if cfg.transformer_in_feature == "pixel_embedding" or (cfg.masked_attention and not resize_input):
            pixel_embedding = conv(maps[-1])
        if cfg.multi_scale_features:
            memory = maps[:3]
        else:
            memory = {"res5": features[-1], "pixel_embedding": pixel_embedding,
                      "transformer_encoder": encoded}[cfg.transformer_in_feature]
        mask_fn = None
        if cfg.masked_attention:
            mask_fn = (AttentionMasks(self.mask_embed, pixel_embedding) if pixel_embedding is not None
                       else AttentionMasks(self.mask_embed, maps[-1], conv))
        hs = self.transformer(memory, mask_fn=mask_fn)  # [L, B, Q, C], every decoder output
        if not (return_aux and cfg.deep_supervision):
            hs = hs[-1:]
        L, _, Q, _ = hs.shape
        logits = self.class_embed(hs)  # [L, B, Q, K+1]
        mask_embed = self.mask_embed(hs)  # [L, B, Q, D]
        mask_embed = mask_embed.transpose(0, 1).reshape(B, L * Q, -1)  # [B, L*Q, D]
        if pixel_embedding is not None:  # already computed: no folding
            masks = torch.einsum("bmd,bdhw->bmhw", mask_embed, pixel_embedding)
        else:
            masks = mask_logits(mask_embed, self.pixel_decoder.mask_features, maps[-1])
        masks = masks.view(B, L, Q, *masks.shape[-2:]).transpose(0, 1)  # [L, B, Q, H/4, W/4]
        aux = [{"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(L - 1)]
        return MaskFormerOutput(pred_logits=logits[-1], pred_masks=masks[-1], aux_outputs=aux)


def build_pixel_decoder(config: MaskFormerConfig, channels: tuple[int, ...]) -> nn.Module:
    """The pixel decoder ``config.pixel_decoder`` names: MaskFormer's FPN, its "+6 Enc" variant, or Mask2Former's MSDeformAttn."""
    if config.pixel_decoder == "msdeformattn":
        return MSDeformAttnPixelDecoder(channels, config.fpn_dim, config.mask_dim, config.pixel_decoder_layers,
                                        config.num_heads, config.pixel_decoder_ffn_dim, config.dropout,
                                        config.pixel_decoder_points)
    if config.pixel_decoder == "transformer_encoder":
        return TransformerEncoderPixelDecoder(channels, config.fpn_dim, config.mask_dim, config.pixel_decoder_layers,
                                              config.num_heads, config.dim_feedforward, config.dropout)
    return PixelDecoder(channels, config.fpn_dim, config.mask_dim)


class AttentionMasks:
    """Masked attention's masks (Mask2Former §3.2.1): where each query's current mask is on, at a map's size.

    Called by the decoder with the normalised state ``[B, Q, C]`` and a size ``(h, w)``; returns bool
    ``[B, Q, h*w]``, True where the query may look: ``sigmoid(mask logit) >= 0.5`` on the mask resized
    bilinearly to ``(h, w)``. A query whose mask is empty there may look everywhere, as in the original
    (otherwise its softmax would have nothing to normalise).

    The mask logits are linear in the per-pixel embeddings, and bilinear resizing is linear too, so
    ``resize(embed . F) = embed . resize(F)``: the embeddings are resized once per size and the logits
    computed at the map's size, instead of computing every layer's full stride-4 masks and resizing
    those (what the original does). The numbers agree up to float rounding.

    ``source`` is the per-pixel embeddings ``[B, D, H/4, W/4]``, or, with ``conv`` (a 1x1 conv, which
    commutes with resizing too), that conv's input: then the embeddings are never computed at stride 4.
    """

    def __init__(self, mask_embed: nn.Module, source: torch.Tensor, conv: nn.Conv2d | None = None):
        self.mask_embed, self.source, self.conv = mask_embed, source, conv
        self.resized: dict[tuple[int, int], torch.Tensor] = {}

    @torch.no_grad()  # a mask to attend through, not a prediction to train (the original detaches it)
    def __call__(self, hs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if size not in self.resized:
            self.resized[size] = F.interpolate(self.source, size=size, mode="bilinear", align_corners=False)
        if self.conv is None:
            logits = torch.einsum("bqd,bdhw->bqhw", self.mask_embed(hs), self.resized[size])
        else:
            logits = mask_logits(self.mask_embed(hs), self.conv, self.resized[size])
        logits = logits.flatten(2)  # [B, Q, h*w]
        allowed = logits.sigmoid() >= 0.5
        return allowed | ~allowed.any(-1, keepdim=True)  # an empty mask: look everywhere
