"""Swin Transformer as MaskFormer uses it: four LayerNorm-ed feature maps at strides 4, 8, 16, 32.

Self-attention runs inside non-overlapping ``window x window`` windows; every second block shifts the
windows by half a window (a cyclic roll of the map) so that information crosses window borders.

One detail matters for exactness: when a stage's map is not a multiple of the window size (a 512 crop
gives a 128x128 first stage, and 128 is not a multiple of 7), the original pads the map to a multiple
of the window *before* the cyclic shift and builds the shifted-window mask on the padded size. timm's
SwinTransformer shifts first and pads after, so published weights give different features there.
This module pads first, as the original does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` (H, W multiples of ``window``) -> ``[B * nW, window * window, C]``, windows row-major."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.transpose(2, 3).reshape(-1, window * window, C)


def shifted_window_mask(H: int, W: int, window: int, shift: int, device=None) -> torch.Tensor:
    """Additive mask ``[nW, window*window, window*window]`` for attention in cyclically shifted windows.

    After the roll, a window at the bottom or right border holds pixels that were far apart in the
    image. Label the (padded) map in 3 x 3 regions, split at ``-window`` and ``-shift`` from the end of
    each axis; two tokens may attend to each other only when they come from the same region. The
    original uses -100 rather than -inf for "may not", and so do we (it changes nothing after softmax
    in fp32 but keeps the exact same numbers).
    """
    rows = torch.arange(H, device=device)
    cols = torch.arange(W, device=device)
    row_region = (rows >= H - window).long() + (rows >= H - shift).long()  # 0, 1 or 2
    col_region = (cols >= W - window).long() + (cols >= W - shift).long()
    region = (row_region[:, None] * 3 + col_region[None, :]).float()  # [H, W]
    region = window_partition(region[None, :, :, None], window).squeeze(-1)  # [nW, window*window]
    different = region[:, :, None] != region[:, None, :]  # [nW, N, N]
    return different.float() * -100.0


def window_order(H: int, W: int, window: int, shift: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad, cyclic shift and window partition as one permutation of tokens, and its inverse.

    The tokens of an ``H x W`` map are indexed in raster order, and index ``H*W`` stands for a padding
    token. With the map padded to ``Hp x Wp`` (multiples of ``window``):

    - ``order [Hp*Wp]``: ``tokens_plus_pad[:, order]`` lists the tokens window by window, each window
      row-major, after rolling the padded map by ``-shift``; here ``tokens_plus_pad`` is ``[B, H*W + 1, ...]``
      with the padding token last. The same as ``window_partition(torch.roll(padded, (-shift, -shift)))``.
    - ``inverse [H*W]``: ``windowed_tokens[:, inverse]`` puts them back in raster order of the *unpadded* map
      (undoing the roll and dropping the padding).

    One gather instead of a pad, a roll and a reshape copy each way.
    """
    Hp, Wp = -(-H // window) * window, -(-W // window) * window
    rows = (torch.arange(Hp, device=device) + shift) % Hp  # rolled row i holds padded row (i + shift) % Hp
    cols = (torch.arange(Wp, device=device) + shift) % Wp
    rolled = rows[:, None] * Wp + cols[None, :]  # [Hp, Wp]: flat padded index at each rolled position
    padded_order = window_partition(rolled[None, :, :, None], window).flatten()  # [Hp*Wp] padded indices
    position = torch.empty_like(padded_order)
    position[padded_order] = torch.arange(padded_order.numel(), device=device)  # where each padded token went
    real = (torch.arange(H, device=device)[:, None] * Wp + torch.arange(W, device=device)[None, :]).flatten()
    source = torch.full((Hp * Wp,), H * W, dtype=torch.long, device=device)  # padded index -> token (H*W: pad)
    source[real] = torch.arange(H * W, device=device)
    return source[padded_order], position[real]


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for ``x [B, L, C]``, as one row gather over the flattened batch (on CPU, gathering
    along dim 0 of a 2-D tensor is about twice as fast as along dim 1 of a 3-D one)."""
    B, L, C = x.shape
    if B > 1:
        index = (index[None] + torch.arange(B, device=index.device)[:, None] * L).flatten()
    return x.reshape(B * L, C).index_select(0, index).view(B, -1, C)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias.

    The bias table holds one value per head for each of the (2w-1)^2 relative offsets between two
    tokens of a window; ``relative_position_index`` picks the right entry for every token pair.
    """

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)  # [2, N, N], each in 0..2w-2
        self.register_buffer("relative_position_index", offsets[0] * (2 * window - 1) + offsets[1], persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        N = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # [N*N, heads]
        # contiguous: the sum with the shift mask then is too, and attention does not copy it again
        return bias.view(N, N, self.num_heads).permute(2, 0, 1).contiguous()  # [heads, N, N]

    def attend(self, qkv: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention from each window's ``qkv = self.qkv(tokens)`` ``[B * nW, N, 3C]``; mask: ``[nW, N, N]`` or
        None. Returns the heads concatenated, ``[B * nW, N, C]``, before the output projection ``proj``."""
        BW, N, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.view(BW, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x [BW, h, N, d]
        bias = self.relative_position_bias()  # [h, N, N]
        if mask is None:
            bias = bias.expand(BW, -1, -1, -1)  # [BW, h, N, N]
        else:
            nW = mask.shape[0]
            bias = (bias[None] + mask[:, None]).expand(BW // nW, -1, -1, -1, -1).flatten(0, 1)  # [BW, h, N, N]
        # A full-size (if expanded) bias takes PyTorch's fast CPU kernel; a broadcast one does not.
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # softmax(q k^T / sqrt(d) + bias) v
        return x.reshape(BW, self.num_heads, N, -1).transpose(1, 2).reshape(BW, N, C)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``[B * nW, N, C]`` tokens of each window; mask: ``[nW, N, N]`` or None. Returns ``[B * nW, N, C]``."""
        return self.proj(self.attend(self.qkv(x), mask))


MLP_TOKENS_PER_BLOCK = 2048  # tokens per MLP call (see SwinBlock.forward); measured best on a 2-core CPU


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability ``p`` (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class SwinBlock(nn.Module):
    """Pre-norm block: x + WindowAttention(LN(x)), then x + MLP(LN(x)); ``shift > 0`` shifts the windows."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, H: int, W: int, mask: torch.Tensor | None,
                layout: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x: ``[B, H*W, C]``; mask: the stage's shifted-window mask (used only when ``shift > 0``);
        layout: :func:`window_order` for this block's shift."""
        B, L, C = x.shape
        w = self.window
        order, inverse = layout
        # The map is zero-padded to whole windows *before* the shift, after the norm. qkv and proj act on
        # each token alone, so they run outside the windows: qkv on the real tokens plus one zero token
        # that stands for all the padding, proj after the padding is dropped again. Same numbers, fewer FLOPs.
        y = F.pad(self.norm1(x), (0, 0, 0, 1))  # [B, H*W + 1, C]: the last token is the padding
        qkv = gather_tokens(self.attn.qkv(y), order)  # pad, roll by -shift, cut into windows: [B, Hp*Wp, 3C]
        y = self.attn.attend(qkv.view(-1, w * w, 3 * C), mask if self.shift else None)  # [B*nW, w*w, C]
        y = gather_tokens(y.view(B, -1, C), inverse)  # back to raster order, roll undone, padding dropped
        y = self.attn.proj(y)  # [B, H*W, C]
        x = x + self.drop_path(y)
        # The MLP acts on each token alone, so it can run on blocks of tokens. At stride 4 (16384 tokens
        # for a 512 crop) this keeps the 4x wider hidden layer in cache instead of writing 25 MB per
        # layer: about twice as fast, with the same numbers.
        parts = [self.mlp(self.norm2(part)) for part in x.split(MLP_TOKENS_PER_BLOCK, dim=1)]
        y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return x + self.drop_path(y)


class PatchMerging(nn.Module):
    """Halve the resolution, double the width: concatenate each 2x2 neighbourhood (4C), LayerNorm, Linear to 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, L, C = x.shape
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, W % 2, 0, H % 2))  # odd sides get one zero row/column
        # the original's order: (even row, even col), (odd row, even col), (even row, odd col), (odd, odd)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))  # [B, ceil(H/2)*ceil(W/2), 2C]


class SwinStage(nn.Module):
    def __init__(self, dim, depth, num_heads, window, mlp_ratio, drop_paths, downsample: bool):
        super().__init__()
        self.window, self.shift = window, window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else self.shift, mlp_ratio, drop_paths[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the stage output ``[B, H*W, C]`` and the input of the next stage (or None)."""
        Hp, Wp = math.ceil(H / self.window) * self.window, math.ceil(W / self.window) * self.window
        mask = shifted_window_mask(Hp, Wp, self.window, self.shift, x.device).to(x.dtype) if len(self.blocks) > 1 else None
        layouts = [window_order(H, W, self.window, shift, x.device) for shift in (0, self.shift)]
        for block in self.blocks:
            x = block(x, H, W, mask, layouts[block.shift > 0])
        return x, (self.downsample(x, H, W) if self.downsample is not None else None)


class SwinTransformer(nn.Module):
    """Swin backbone: patch embedding, four stages, a LayerNorm on each stage's output.

    ``forward(x)`` takes ``[B, 3, H, W]`` and returns ``[res2, res3, res4, res5]`` with
    ``res_i: [B, embed_dim * 2**(i-2), ceil(H / 2**i), ceil(W / 2**i)]``.
    """

    def __init__(self, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
                 patch_size=4, mlp_ratio=4.0, drop_path_rate=0.3, ape=False):
        super().__init__()
        if ape:
            raise NotImplementedError("absolute position embeddings are not used by any MaskFormer model")
        self.patch_size = patch_size
        self.channels = tuple(embed_dim * 2**i for i in range(len(depths)))
        self.strides = tuple(patch_size * 2**i for i in range(len(depths)))
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.patch_norm = nn.LayerNorm(embed_dim)
        n = sum(depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # stochastic depth grows linearly with depth
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            self.stages.append(SwinStage(self.channels[i], depth, num_heads[i], window_size, mlp_ratio,
                                         rates[first:first + depth], downsample=i < len(depths) - 1))
        self.output_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module):
        if isinstance(m, nn.Linear):  # the original's init (truncated normal, zero bias)
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        B, _, H, W = x.shape
        p = self.patch_size
        x = F.pad(x, (0, (p - W % p) % p, 0, (p - H % p) % p))
        x = self.patch_embed(x)  # [B, C, H/4, W/4]
        H, W = x.shape[-2:]
        x = self.patch_norm(x.flatten(2).transpose(1, 2))  # [B, H/4 * W/4, C]
        features = []
        for stage, norm in zip(self.stages, self.output_norms):
            out, x = stage(x, H, W)
            # [B, H_i*W_i, C_i] -> [B, C_i, H_i, W_i] as a view: the map is "channels last" in memory, no copy
            features.append(norm(out).view(B, H, W, -1).permute(0, 3, 1, 2))
            H, W = (H + 1) // 2, (W + 1) // 2
        return features
