"""The pixel decoder: a light FPN that turns the backbone pyramid into per-pixel embeddings at stride 4.

Paper §3.2: "the pixel decoder gradually upsamples the features to generate per-pixel embeddings".
Top-down: start from res5, then for res4, res3, res2 add a 1x1 "lateral" projection of the backbone map
to the nearest-upsampled coarser map and smooth the sum with a 3x3 conv. Every conv but the last is
followed by GroupNorm(32); the last, ``mask_features``, is a plain 3x3 conv with bias.

**What every pixel decoder provides** (this FPN and the MSDeformAttn decoder of Mask2Former,
:mod:`maskformer.msdeform_pixel_decoder`), which is all :class:`maskformer.MaskFormer` uses:

- ``maps(features)``: backbone ``[res2, res3, res4, res5]`` -> its maps coarse to fine,
  ``[1/32, 1/16, 1/8, 1/4]``, each ``[B, C, h, w]``. The first three are the multi-scale features that
  Mask2Former's decoder reads round robin; the last is the stride-4 map the mask features come from.
- ``mask_features``: the last layer, an ``nn.Conv2d`` from ``maps(...)[-1]`` to the per-pixel
  embeddings ``[B, mask_dim, H/4, W/4]``. It is a public attribute so that the model can fold the mask
  head into it (:func:`maskformer.model.mask_logits`) instead of computing the embeddings.
- ``forward(features)`` -> ``(mask_features(maps[-1]), maps)``.

:class:`TransformerEncoderPixelDecoder` is the original's "+6 Enc" variant of the FPN (paper Table 3's
panoptic R50 and R101 models; orig: ``SEM_SEG_HEAD.PIXEL_DECODER_NAME: TransformerEncoderPixelDecoder``): a DETR
transformer encoder over res5 before the top-down path, whose output the queries then attend to
(``MASK_FORMER.TRANSFORMER_IN_FEATURE: transformer_encoder``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer_decoder import MultiHeadAttention, sine_position_embedding


def conv_gn(in_ch: int, out_ch: int, kernel: int, relu: bool) -> nn.Sequential:
    """Conv (no bias: GroupNorm follows) -> GroupNorm(32) -> optional ReLU."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False), nn.GroupNorm(32, out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class PixelDecoder(nn.Module):
    """FPN over ``[res2, res3, res4, res5]`` -> ``mask_features [B, mask_dim, H/4, W/4]``.

    Args:
        in_channels: channels of res2..res5.
        fpn_dim: width of every FPN map (256).
        mask_dim: width of the per-pixel embeddings (256).

    ``forward`` also returns the intermediate FPN maps (coarse to fine), which the notebooks draw.
    """

    def __init__(self, in_channels: tuple[int, ...], fpn_dim: int = 256, mask_dim: int = 256):
        super().__init__()
        self.layer_4 = conv_gn(in_channels[-1], fpn_dim, 3, relu=True)
        # laterals and output convs for res4, res3, res2, in top-down order
        self.lateral_convs = nn.ModuleList(conv_gn(c, fpn_dim, 1, relu=False) for c in in_channels[-2::-1])
        self.output_convs = nn.ModuleList(conv_gn(fpn_dim, fpn_dim, 3, relu=True) for _ in in_channels[-2::-1])
        self.mask_features = nn.Conv2d(fpn_dim, mask_dim, 3, padding=1)
        for m in self.modules():  # the original's caffe2 "Xavier fill": uniform with gain 1, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def maps(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The top-down path alone: ``[res2..res5]`` -> ``[p5, p4, p3, p2]``, all with ``fpn_dim`` channels."""
        y = self.layer_4(features[-1])  # [B, fpn_dim, H/32, W/32]
        maps = [y]
        for lateral, output, x in zip(self.lateral_convs, self.output_convs, features[-2::-1]):
            # in place (GroupNorm's backward does not read its output): no new map, 16 MB at stride 4 of a 512 crop
            y = lateral(x).add_(F.interpolate(y, size=x.shape[-2:], mode="nearest"))  # [B, fpn_dim, H_i, W_i]
            y = output(y)
            maps.append(y)
        return maps

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """features: ``[res2, res3, res4, res5]``. Returns ``(mask_features [B, mask_dim, H/4, W/4], [p5, p4, p3, p2])``."""
        maps = self.maps(features)
        return self.mask_features(maps[-1]), maps


class EncoderLayer(nn.Module):
    """Post-norm DETR encoder layer: self-attention over the map (q = k = x + pos, v = x), then an FFN with
    ReLU; dropout on each residual branch and LayerNorm after each (orig: ``TransformerEncoderLayer`` of
    ``mask_former/modeling/transformer/transformer.py``, ``normalize_before`` False)."""

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x, pos ``[B, h*w, C]`` -> ``[B, h*w, C]``."""
        q = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, q, x)[0]))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class TransformerEncoderPixelDecoder(PixelDecoder):
    """The FPN with a transformer encoder on res5 ("+6 Enc"): ``res5 -> 1x1 conv to fpn_dim -> encoder layers
    (sine positions) -> encoded``; the top-down path then starts from ``layer_4(encoded)`` (a 3x3 conv from
    fpn_dim, not from res5's channels) and ``encoded`` is what the decoder's queries attend to.

    Args:
        in_channels, fpn_dim, mask_dim: as :class:`PixelDecoder`.
        num_layers: encoder layers (6; orig: SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS).
        num_heads, dim_feedforward, dropout: the encoder's, shared with the decoder in the original
            (MASK_FORMER.NHEADS 8, DIM_FEEDFORWARD 2048, DROPOUT 0.1).
    """

    def __init__(self, in_channels: tuple[int, ...], fpn_dim: int = 256, mask_dim: int = 256, num_layers: int = 6,
                 num_heads: int = 8, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__(in_channels, fpn_dim, mask_dim)
        self.input_proj = nn.Conv2d(in_channels[-1], fpn_dim, 1)
        self.layer_4 = conv_gn(fpn_dim, fpn_dim, 3, relu=True)  # reads the encoder's output, fpn_dim wide
        self.encoder = nn.ModuleList(EncoderLayer(fpn_dim, num_heads, dim_feedforward, dropout) for _ in range(num_layers))
        for conv in (self.input_proj, self.layer_4[0]):  # caffe2 Xavier fill, as the FPN's convs
            nn.init.kaiming_uniform_(conv.weight, a=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for layer in self.encoder:  # the original's Xavier init of every matrix of its encoder
            attn = layer.self_attn
            # nn.MultiheadAttention keeps q, k and v in one [3C, C] matrix, and Xavier's bound is computed on it
            in_proj = nn.init.xavier_uniform_(torch.empty(3 * fpn_dim, fpn_dim))
            with torch.no_grad():
                for proj, weight in zip((attn.q_proj, attn.k_proj, attn.v_proj), in_proj.chunk(3)):
                    proj.weight.copy_(weight)
                    nn.init.zeros_(proj.bias)  # nn.MultiheadAttention's in_proj_bias and out_proj.bias start at 0
                nn.init.zeros_(attn.out_proj.bias)
            for linear in (attn.out_proj, layer.linear1, layer.linear2):
                nn.init.xavier_uniform_(linear.weight)

    def encode(self, res5: torch.Tensor) -> torch.Tensor:
        """``res5 [B, C5, h, w]`` -> the encoder's output ``[B, fpn_dim, h, w]`` (orig: ``transformer_encoder_features``)."""
        x = self.input_proj(res5)
        B, C, h, w = x.shape
        pos = sine_position_embedding(h, w, C // 2, device=x.device, dtype=x.dtype).flatten(1).T.expand(B, -1, -1)
        x = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        for layer in self.encoder:
            x = layer(x, pos)
        return x.transpose(1, 2).reshape(B, C, h, w)

    def maps(self, features: list[torch.Tensor], encoded: torch.Tensor | None = None) -> list[torch.Tensor]:
        """As :meth:`PixelDecoder.maps`, from ``layer_4(encode(res5))``; pass ``encoded`` if already computed."""
        if encoded is None:
            encoded = self.encode(features[-1])
        return super().maps([*features[:-1], encoded])
