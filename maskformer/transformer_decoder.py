"""The transformer decoder of MaskFormer: DETR's decoder, turning N learned queries into N segment embeddings.

Paper §3.2: "the transformer module uses the standard Transformer decoder to compute from image
features F and N learnable positional embeddings (i.e., queries) its output, N per-segment embeddings
Q". Each of the 6 layers lets the queries talk to each other (self-attention), look at the image
(cross-attention to the res5 map) and think on their own (FFN). Layers are post-norm, the queries are
learned *positions*: the decoder's input state starts as zeros. A shared final LayerNorm is applied to
the output of every layer, so the heads can read all of them (deep supervision, paper §3.4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_embedding(height: int, width: int, num_feats: int = 128, temperature: float = 10000.0,
                            scale: float = 2 * math.pi, device=None, dtype=torch.float32) -> torch.Tensor:
    """DETR's 2-D sine embedding of a ``height x width`` grid: ``[2 * num_feats, height, width]``.

    Row and column indices (1-based) are normalised to (0, 2*pi], divided by ``temperature ** (2i / num_feats)``
    and put through sin (even channels) and cos (odd channels). The first ``num_feats`` channels encode
    y, the last ``num_feats`` encode x.
    """
    eps = 1e-6
    y = torch.arange(1, height + 1, device=device, dtype=dtype)
    x = torch.arange(1, width + 1, device=device, dtype=dtype)
    y = y / (y[-1] + eps) * scale
    x = x / (x[-1] + eps) * scale
    i = torch.arange(num_feats, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_feats)  # [num_feats]

    def encode(t: torch.Tensor) -> torch.Tensor:  # [L] -> [L, num_feats], sin/cos interleaved
        t = t[:, None] / dim_t
        return torch.stack((t[:, 0::2].sin(), t[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, num_feats)  # [H, W, F]
    pos_x = encode(x)[None, :, :].expand(height, width, num_feats)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)  # [2F, H, W]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with separate q/k/v/out projections (as ``nn.MultiheadAttention``)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, C] -> [B, h, L, C/h]
        B, L, C = x.shape
        return x.view(B, L, self.num_heads, C // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query ``[B, Lq, C]``, key/value ``[B, Lk, C]`` -> ``([B, Lq, C], weights [B, h, Lq, Lk] or None)``."""
        B, Lq, C = query.shape
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        weights = None
        if return_weights:  # spelled out so the attention map can be returned
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)  # [B, h, Lq, Lk]
            out = F.dropout(weights, self.dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(B, Lq, C)  # [B, Lq, C]
        return self.out_proj(out), weights


class DecoderLayer(nn.Module):
    """Post-norm DETR layer: self-attention, cross-attention to the image, FFN; LayerNorm after each."""

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt, memory, query_pos, pos, return_weights=False):
        """tgt/query_pos ``[B, Q, C]``, memory/pos ``[B, HW, C]``. Returns ``(tgt, cross-attention or None)``."""
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, q, tgt)[0]))  # queries see each other
        attn, weights = self.cross_attn(tgt + query_pos, memory + pos, memory, return_weights)
        tgt = self.norm2(tgt + self.dropout(attn))  # queries look at the image
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn)), weights


class TransformerDecoder(nn.Module):
    """Learned queries + a stack of :class:`DecoderLayer` over a projected res5 map.

    ``forward(x)`` takes the backbone's last map ``[B, C_in, h, w]`` and returns the normalised output of
    every layer, ``[L, B, Q, hidden_dim]`` (the last entry is the final output), and, when asked, each
    layer's cross-attention weights ``[L, B, heads, Q, h*w]``.
    """

    def __init__(self, in_channels: int, hidden_dim=256, num_queries=100, num_heads=8, dim_feedforward=2048,
                 dec_layers=6, dropout=0.1):
        super().__init__()
        self.input_proj = nn.Conv2d(in_channels, hidden_dim, 1)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.layers = nn.ModuleList(DecoderLayer(hidden_dim, num_heads, dim_feedforward, dropout)
                                    for _ in range(dec_layers))
        self.norm = nn.LayerNorm(hidden_dim)
        for name, p in self.named_parameters():  # DETR's init: Xavier for every matrix
            if p.dim() > 1 and not name.startswith("query_embed"):
                nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        B, _, h, w = x.shape
        pos = sine_position_embedding(h, w, self.input_proj.out_channels // 2, device=x.device, dtype=x.dtype)
        pos = pos.flatten(1).T.unsqueeze(0).expand(B, -1, -1)  # [B, h*w, C]
        memory = self.input_proj(x).flatten(2).transpose(1, 2)  # [B, h*w, C]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(B, -1, -1)  # [B, Q, C]
        tgt = torch.zeros_like(query_pos)
        outputs, weights = [], []
        for layer in self.layers:
            tgt, attn = layer(tgt, memory, query_pos, pos, return_weights)
            outputs.append(self.norm(tgt))  # normalised copy for the heads; the next layer gets tgt itself
            weights.append(attn)
        hs = torch.stack(outputs)  # [L, B, Q, C]
        return (hs, torch.stack(weights)) if return_weights else hs
