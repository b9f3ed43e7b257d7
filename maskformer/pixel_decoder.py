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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
