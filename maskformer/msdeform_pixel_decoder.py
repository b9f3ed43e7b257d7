"""Mask2Former's pixel decoder: multi-scale deformable attention on 1/8..1/32, then one FPN step to 1/4.

Mask2Former (Cheng et al., CVPR 2022) §4, "Pixel decoder": "we use the more advanced multi-scale
deformable attention Transformer (MSDeformAttn) as our default pixel decoder ... 6 MSDeformAttn
layers applied to feature maps with resolution 1/8, 1/16 and 1/32, and use a simple upsampling layer
with lateral connection on the final 1/8 feature map to generate the feature map of resolution 1/4
as the per-pixel embedding". The authors' code is ``mask2former/modeling/pixel_decoder/msdeformattn.py``.

Deformable attention (Zhu et al., Deformable DETR, ICLR 2021, §3, Eq. 3): each of the ``S`` pixels of
the three maps is a query. Instead of attending to all ``S`` pixels, a query looks at ``P = 4``
points per head and per level, placed at learned offsets (a linear layer of the query) around its
own position, and mixes them with learned weights (another linear layer, softmax over the ``L * P``
points of a head). Reading a map at a fractional point is bilinear interpolation: :func:`sample_and_mix`
spells it with ``F.grid_sample`` rather than the authors' CUDA kernel, so it runs anywhere and the
numbers can be followed by hand; the model runs :func:`gather_and_mix`, the same sums as one weighted
gather (``F.embedding_bag``), which is faster on a CPU. Cost per query: ``heads * L * P`` reads
instead of ``S`` dot products.

The class follows the pixel-decoder contract of :mod:`maskformer.pixel_decoder`: ``maps(features)``
gives ``[1/32, 1/16, 1/8, 1/4]``, ``mask_features`` is the last layer (here a 1x1 conv, as in the
original), ``forward`` returns both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .pixel_decoder import conv_gn
from .transformer_decoder import sine_position_embedding


def reference_points(shapes: list[tuple[int, int]], device=None, dtype=torch.float32) -> torch.Tensor:
    """Every pixel's own position, ``[S, 2]`` as (x, y) in [0, 1]: the pixel centres of each map in turn.

    A query's sampling points are offsets from this point, on every level: a 1/8 pixel looks at the
    same place of the image on the 1/16 and 1/32 maps.
    """
    points = []
    for h, w in shapes:
        y = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
        points.append(torch.stack(torch.broadcast_tensors(x[None, :], y[:, None]), dim=-1).reshape(h * w, 2))
    return torch.cat(points)  # [S, 2]


def sample_and_mix(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
    """The core of MSDeformAttn: read each head's values at its points and take the weighted sum.

    Args:
        value: ``[B, S, M, d]``, the ``S = sum(h*w)`` pixels of all levels, ``M`` heads of width ``d``.
        shapes: ``[(h, w)]`` of each level, in the order of ``value``'s pixels.
        locations: ``[B, N, M, L, P, 2]``, (x, y) in [0, 1] of the ``P`` points per head and level.
        weights: ``[B, N, M, L, P]``, each head's weights over its ``L * P`` points (they sum to 1).

    Returns ``[B, N, M * d]``. Points outside a map read zero (``padding_mode="zeros"``).
    """
    B, S, M, d = value.shape
    _, N, _, L, P, _ = locations.shape
    grids = 2 * locations - 1  # grid_sample's [-1, 1] coordinates, pixel centres at align_corners=False
    out = None
    for level, part in enumerate(value.split([h * w for h, w in shapes], dim=1)):
        h, w = shapes[level]
        maps = part.permute(0, 2, 3, 1).reshape(B * M, d, h, w)  # one [d, h, w] map per image and head
        grid = grids[:, :, :, level].transpose(1, 2).reshape(B * M, N, P, 2)
        sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B*M, d, N, P]
        w_level = weights[:, :, :, level].transpose(1, 2).reshape(B * M, 1, N, P)
        mixed = (sampled * w_level).sum(-1)  # [B*M, d, N]
        out = mixed if out is None else out + mixed
    return out.view(B, M * d, N).transpose(1, 2)  # [B, N, M*d]


def gather_and_mix(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
    """:func:`sample_and_mix` as one weighted gather: same arguments, same numbers (float rounding), same gradients.

    A bilinear read is a weighted sum of the 4 pixels around the point, so each query's output is a
    weighted sum of ``M * L * P * 4`` rows of ``value``, with weight = attention weight x bilinear weight.
    ``F.embedding_bag(mode="sum", per_sample_weights=...)`` computes exactly such sums, reading each
    ``d``-channel row once, instead of ``grid_sample`` gathering channel by channel from ``[d, h, w]``
    maps and a separate multiply and sum: about 1.5x faster on a CPU. Each map gets a border of zeros
    (1 pixel before, 2 after) so that every corner of a point clamped to ``[-1, w]`` exists and a corner
    outside the map reads 0, as with ``padding_mode="zeros"``.
    """
    B, S, M, d = value.shape
    _, N, _, L, P, _ = locations.shape
    device = value.device
    padded = [F.pad(part.reshape(B, h, w, M * d), (0, 0, 1, 2, 1, 2)).flatten(1, 2)  # [B, (h+3)*(w+3), M*d]
              for part, (h, w) in zip(value.split([h * w for h, w in shapes], dim=1), shapes)]
    table = torch.cat(padded, 1)  # [B, S', M*d]: row (b, pixel), then head
    size = torch.tensor([[w, h] for h, w in shapes], device=device, dtype=locations.dtype)[:, None, :]  # [L, 1, 2]
    xy = torch.minimum((locations * size - 0.5).clamp(min=-1.0), size)  # [B, N, M, L, P, 2], pixel centres at integers
    corner = xy.floor()
    fx, fy = (xy - corner).unbind(-1)  # [B, N, M, L, P] each: position inside the 4-pixel cell
    corner = corner.long() + 1  # in the padded map
    width = torch.tensor([w + 3 for _, w in shapes], device=device)[:, None]  # [L, 1] padded widths
    start = torch.tensor([0] + [(h + 3) * (w + 3) for h, w in shapes[:-1]], device=device).cumsum(0)[:, None]
    row = corner[..., 1] * width + corner[..., 0] + start  # [B, N, M, L, P], pixel row of the top-left corner
    row = row + torch.arange(B, device=device)[:, None, None, None, None] * table.shape[1]
    index = row * M + torch.arange(M, device=device)[:, None, None]  # [B, N, M, L, P], row of table.view(-1, d)
    steps = torch.stack([torch.zeros_like(width), torch.ones_like(width), width, width + 1], -1) * M  # [L, 1, 4]
    index = index[..., None] + steps  # [B, N, M, L, P, 4]: top-left, top-right, bottom-left, bottom-right
    bilinear = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)  # [B, N, M, L, P, 4]
    mix = bilinear * weights[..., None]
    out = F.embedding_bag(index.view(B * N * M, -1), table.view(-1, d), mode="sum",
                          per_sample_weights=mix.view(B * N * M, -1))  # [B*N*M, d]
    return out.view(B, N, M * d)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR Eq. 3) with the original's parameter names.

    Args:
        dim: channels of queries and values (256).
        num_heads: ``M`` (8).
        num_levels: ``L``, the number of maps (3).
        num_points: ``P``, the sampling points per head and level (4).
    """

    def __init__(self, dim: int = 256, num_heads: int = 8, num_levels: int = 3, num_points: int = 4):
        super().__init__()
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original's start: no learned offsets yet, head ``m`` points along the angle ``2 pi m / M``
        at distances 1..P pixels, equal weights for all points."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads) * (2 * math.pi / self.num_heads)
        direction = torch.stack([angles.cos(), angles.sin()], -1)  # [M, 2]
        direction = direction / direction.abs().max(-1, keepdim=True).values  # onto the square's edge
        grid = direction[:, None, None, :] * torch.arange(1, self.num_points + 1)[None, None, :, None]  # [M, 1, P, 2]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.expand(-1, self.num_levels, -1, -1).reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor, points: torch.Tensor,
                shapes: list[tuple[int, int]], return_locations: bool = False):
        """query ``[B, N, C]`` (with position), value ``[B, S, C]`` (without), points ``[N, 2]`` (x, y) in [0, 1].

        Returns ``[B, N, C]``, and with ``return_locations`` also ``(locations [B, N, M, L, P, 2],
        weights [B, N, M, L, P])``, which the notebook draws.
        """
        B, N, C = query.shape
        M, L, P = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).view(B, -1, M, C // M)  # [B, S, M, d]
        offsets = self.sampling_offsets(query).view(B, N, M, L, P, 2)  # in pixels of each level
        weights = self.attention_weights(query).view(B, N, M, L * P).softmax(-1).view(B, N, M, L, P)
        size = torch.tensor([[w, h] for h, w in shapes], device=query.device, dtype=query.dtype)  # [L, 2] as (x, y)
        locations = points[None, :, None, None, None, :] + offsets / size[:, None, :]  # [B, N, M, L, P, 2]
        out = self.output_proj(gather_and_mix(value, shapes, locations, weights))  # [B, N, C]
        return (out, (locations, weights)) if return_locations else out


class DeformableEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention over all levels, then FFN; LayerNorm after each."""

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int, dim_feedforward: int,
                 dropout: float):
        super().__init__()
        self.attn = MSDeformAttn(dim, num_heads, num_levels, num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, pos, points, shapes):
        """x/pos ``[B, S, C]`` (all levels' pixels), points ``[S, 2]`` -> ``[B, S, C]``."""
        x = self.norm1(x + self.dropout(self.attn(x + pos, x, points, shapes)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout(ffn))


class MSDeformAttnPixelDecoder(nn.Module):
    """``[res2, res3, res4, res5]`` -> ``mask_features [B, mask_dim, H/4, W/4]`` and ``[1/32, 1/16, 1/8, 1/4]`` maps.

    Args:
        in_channels: channels of res2..res5.
        conv_dim: width of every map (orig: SEM_SEG_HEAD.CONVS_DIM, 256).
        mask_dim: width of the per-pixel embeddings (orig: SEM_SEG_HEAD.MASK_DIM, 256).
        num_layers: encoder layers (orig: SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS, 6).
        num_heads: heads of the deformable attention (orig: MASK_FORMER.NHEADS, 8).
        dim_feedforward: the encoder's FFN width (1024 in the original, fixed in its code).
        dropout: encoder dropout (orig: MASK_FORMER.DROPOUT, 0.0 in Mask2Former).
        num_points: sampling points per head and level (4 in the original).
        num_levels: how many of the coarsest backbone maps the encoder reads (3: res3, res4, res5);
            the finer ones (res2) join through FPN lateral connections.
    """

    def __init__(self, in_channels: tuple[int, ...], conv_dim: int = 256, mask_dim: int = 256, num_layers: int = 6,
                 num_heads: int = 8, dim_feedforward: int = 1024, dropout: float = 0.0, num_points: int = 4,
                 num_levels: int = 3):
        super().__init__()
        self.num_levels = num_levels
        # 1x1 conv + GroupNorm per encoder level, coarse to fine (res5, res4, res3)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, conv_dim, 1), nn.GroupNorm(32, conv_dim)) for c in in_channels[::-1][:num_levels])
        self.level_embed = nn.Parameter(torch.empty(num_levels, conv_dim))  # tells the encoder which map a pixel is on
        self.layers = nn.ModuleList(DeformableEncoderLayer(conv_dim, num_heads, num_levels, num_points, dim_feedforward,
                                                           dropout) for _ in range(num_layers))
        # FPN for the maps finer than the encoder's (res2), indexed fine to coarse as the original's adapter_1, ...
        fine = in_channels[:len(in_channels) - num_levels]
        self.lateral_convs = nn.ModuleList(conv_gn(c, conv_dim, 1, relu=False) for c in fine)
        self.output_convs = nn.ModuleList(conv_gn(conv_dim, conv_dim, 3, relu=True) for _ in fine)
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original's initialisation: Xavier for the encoder's matrices, then each MSDeformAttn's own
        start, a unit normal level embedding; convs by caffe2's Xavier fill (uniform, gain 1, zero bias)."""
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.layers:
            layer.attn.reset_parameters()
        nn.init.normal_(self.level_embed)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
            nn.init.zeros_(proj[0].bias)
        for m in [*self.lateral_convs.modules(), *self.output_convs.modules(), self.mask_features]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def encode(self, features: list[torch.Tensor], return_locations: bool = False):
        """The deformable encoder alone: ``[res2..res5]`` -> ``[1/32, 1/16, 1/8]`` maps ``[B, conv_dim, h, w]``.

        With ``return_locations``, also each layer's ``(locations, weights)`` (see :class:`MSDeformAttn`).
        """
        inputs = features[::-1][:self.num_levels]  # res5, res4, res3
        B = inputs[0].shape[0]
        shapes = [tuple(x.shape[-2:]) for x in inputs]
        x = torch.cat([proj(f).flatten(2).transpose(1, 2) for proj, f in zip(self.input_proj, inputs)], 1)  # [B, S, C]
        C = x.shape[-1]
        pos = torch.cat([sine_position_embedding(h, w, C // 2, device=x.device, dtype=x.dtype).flatten(1).T
                         + self.level_embed[i] for i, (h, w) in enumerate(shapes)])  # [S, C]
        points = reference_points(shapes, x.device, x.dtype)  # [S, 2]
        trace = []
        for layer in self.layers:
            if return_locations:
                q = x + pos
                trace.append(layer.attn(q, x, points, shapes, return_locations=True)[1])
            x = layer(x, pos, points, shapes)
        maps = [part.transpose(1, 2).reshape(B, C, h, w)
                for part, (h, w) in zip(x.split([h * w for h, w in shapes], dim=1), shapes)]
        return (maps, trace) if return_locations else maps

    def maps(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """``[res2..res5]`` -> ``[1/32, 1/16, 1/8, 1/4]``, all with ``conv_dim`` channels."""
        maps = self.encode(features)
        fine = features[:len(self.lateral_convs)]
        for lateral, output, x in zip(self.lateral_convs[::-1], self.output_convs[::-1], fine[::-1]):
            # bilinear, not the nearest of MaskFormer's FPN: the original's choice here
            y = lateral(x) + F.interpolate(maps[-1], size=x.shape[-2:], mode="bilinear", align_corners=False)
            maps.append(output(y))  # [B, conv_dim, H_i, W_i]
        return maps

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """features: ``[res2..res5]``. Returns ``(mask_features [B, mask_dim, H/4, W/4], [1/32, 1/16, 1/8, 1/4])``."""
        maps = self.maps(features)
        return self.mask_features(maps[-1]), maps
