"""The transformer decoder of MaskFormer: DETR's decoder, turning N learned queries into N segment embeddings.

Paper §3.2: "the transformer module uses the standard Transformer decoder to compute from image
features F and N learnable positional embeddings (i.e., queries) its output, N per-segment embeddings
Q". Each of the 6 layers lets the queries talk to each other (self-attention), look at the image
(cross-attention to the res5 map) and think on their own (FFN). Layers are post-norm, the queries are
learned *positions*: the decoder's input state starts as zeros. A shared final LayerNorm is applied to
the output of every layer, so the heads can read all of them (deep supervision, paper §3.4).

Mask2Former's decoder (Cheng et al., CVPR 2022, §3.2; the original is
``mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py``) is this one with
switches turned on: masked cross-attention, several maps read round robin, cross-attention first and
learned query features (see :class:`TransformerDecoder`).
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

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, return_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query ``[B, Lq, C]``, key/value ``[B, Lk, C]`` -> ``([B, Lq, C], weights [B, h, Lq, Lk] or None)``.

        ``attn_mask``: optional bool ``[B, Lq, Lk]``, True where a query may look (every head alike).
        """
        B, Lq, C = query.shape
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        mask = None if attn_mask is None else attn_mask[:, None]  # [B, 1, Lq, Lk]
        weights = None
        if return_weights:  # spelled out so the attention map can be returned
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, h, Lq, Lk]
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            out = F.dropout(weights, self.dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(B, Lq, C)  # [B, Lq, C]
        return self.out_proj(out), weights


class DecoderLayer(nn.Module):
    """Post-norm DETR layer: self-attention, cross-attention to the image, FFN; LayerNorm after each.

    ``cross_attention_first`` swaps the first two (Mask2Former §3.2.3: "the order of self- and
    cross-attention is switched", so that the queries, learnable features that know nothing of the
    image yet, look at it before talking to each other). ``norm1`` always follows self-attention and
    ``norm2`` cross-attention.
    """

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float,
                 cross_attention_first: bool = False):
        super().__init__()
        self.cross_attention_first = cross_attention_first
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def _self(self, tgt, query_pos):  # queries see each other
        q = tgt + query_pos
        return self.norm1(tgt + self.dropout(self.self_attn(q, q, tgt)[0]))

    def _cross(self, tgt, memory, query_pos, pos, return_weights, attn_mask):  # queries look at the image
        attn, weights = self.cross_attn(tgt + query_pos, memory + pos, memory, return_weights, attn_mask)
        return self.norm2(tgt + self.dropout(attn)), weights

    def forward(self, tgt, memory, query_pos, pos, return_weights=False, attn_mask=None):
        """tgt/query_pos ``[B, Q, C]``, memory/pos ``[B, HW, C]``, attn_mask bool ``[B, Q, HW]`` (True: may
        look) or None. Returns ``(tgt, cross-attention or None)``."""
        if self.cross_attention_first:
            tgt, weights = self._cross(tgt, memory, query_pos, pos, return_weights, attn_mask)
            tgt = self._self(tgt, query_pos)
        else:
            tgt = self._self(tgt, query_pos)
            tgt, weights = self._cross(tgt, memory, query_pos, pos, return_weights, attn_mask)
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn)), weights


class TransformerDecoder(nn.Module):
    """Learned queries + a stack of :class:`DecoderLayer` over one or several projected image maps.

    ``forward(x)`` takes the map(s) the queries attend to, ``[B, C_in, h, w]`` or a list of them, and
    returns the normalised output of every layer, ``[L, B, Q, hidden_dim]`` (the last entry is the final
    output), and, when asked, each layer's cross-attention weights (``[L, B, heads, Q, h*w]``; a list
    when the layers read maps of different sizes).

    MaskFormer's decoder is the default. Mask2Former's changes (Cheng et al., CVPR 2022, §3.2) are
    switches, each usable alone:

    - ``num_levels > 1`` (multi-scale features, §3.2.2): ``forward`` gets that many maps (1/32, 1/16,
      1/8) and layer ``i`` attends to map ``i % num_levels``, round robin. Each map gets its own sine
      position and a learned level embedding (added to the map, as in the original); a map whose
      channels already equal ``hidden_dim`` is not projected (orig: MASK_FORMER.ENFORCE_INPUT_PROJ False).
    - ``cross_attention_first``: see :class:`DecoderLayer`.
    - ``query_features``: the decoder's state starts from learned features instead of zeros, and their
      normalised copy is a first output, before any layer (so ``L = dec_layers + 1``): Mask2Former
      supervises it like the others (§3.2.3, "learnable query features").
    - masked attention (§3.2.1) needs the mask head, which the model owns: ``forward``'s ``mask_fn``
      maps the normalised state ``[B, Q, C]`` and a map size ``(h, w)`` to the bool ``[B, Q, h*w]`` of
      pixels each query may look at; the state before each layer goes in (its prediction is the
      previous output).
    """

    def __init__(self, in_channels: int | tuple[int, ...], hidden_dim=256, num_queries=100, num_heads=8,
                 dim_feedforward=2048, dec_layers=6, dropout=0.1, num_levels=1, cross_attention_first=False,
                 query_features=False, enforce_input_projection=False):
        super().__init__()
        self.num_levels = num_levels
        if num_levels == 1:  # MaskFormer's single map: always a 1x1 projection (convert.py loads an identity if needed)
            self.input_proj = nn.Conv2d(in_channels if isinstance(in_channels, int) else in_channels[0], hidden_dim, 1)
        else:
            channels = (in_channels,) * num_levels if isinstance(in_channels, int) else tuple(in_channels)
            self.input_proj = nn.ModuleList(
                nn.Conv2d(c, hidden_dim, 1) if c != hidden_dim or enforce_input_projection else nn.Identity()
                for c in channels)
            self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim) if query_features else None
        self.layers = nn.ModuleList(DecoderLayer(hidden_dim, num_heads, dim_feedforward, dropout, cross_attention_first)
                                    for _ in range(dec_layers))
        self.norm = nn.LayerNorm(hidden_dim)
        for name, p in self.named_parameters():  # DETR's init: Xavier for every matrix; embeddings stay N(0, 1)
            if p.dim() > 1 and not name.startswith(("query_embed", "query_feat", "level_embed")):
                nn.init.xavier_uniform_(p)

    def _memory(self, xs: list[torch.Tensor]):
        """Each map ``[B, C_in, h, w]`` -> ``(memory [B, h*w, C], pos [B, h*w, C], (h, w))``."""
        out = []
        for i, x in enumerate(xs):
            B, _, h, w = x.shape
            proj = self.input_proj if self.num_levels == 1 else self.input_proj[i]
            pos = sine_position_embedding(h, w, self.norm.normalized_shape[0] // 2, device=x.device, dtype=x.dtype)
            pos = pos.flatten(1).T.unsqueeze(0).expand(B, -1, -1)  # [B, h*w, C]
            memory = proj(x).flatten(2).transpose(1, 2)  # [B, h*w, C]
            if self.num_levels > 1:
                memory = memory + self.level_embed.weight[i]
            out.append((memory, pos, (h, w)))
        return out

    def forward(self, x: torch.Tensor | list[torch.Tensor], return_weights: bool = False, mask_fn=None):
        xs = [x] if isinstance(x, torch.Tensor) else list(x)
        if len(xs) != self.num_levels:
            raise ValueError(f"this decoder reads {self.num_levels} map(s), got {len(xs)}")
        levels = self._memory(xs)
        B = xs[0].shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(B, -1, -1)  # [B, Q, C]
        tgt = torch.zeros_like(query_pos) if self.query_feat is None else self.query_feat.weight.expand(B, -1, -1)
        outputs, weights = [], []
        normed = self.norm(tgt) if self.query_feat is not None or mask_fn is not None else None
        if self.query_feat is not None:
            outputs.append(normed)  # the prediction before the first layer
        for i, layer in enumerate(self.layers):
            memory, pos, size = levels[i % len(levels)]
            attn_mask = None if mask_fn is None else mask_fn(normed, size)  # [B, Q, h*w]
            tgt, attn = layer(tgt, memory, query_pos, pos, return_weights, attn_mask)
            normed = self.norm(tgt)  # normalised copy for the heads; the next layer gets tgt itself
            outputs.append(normed)
            weights.append(attn)
        hs = torch.stack(outputs)  # [L, B, Q, C]
        if not return_weights:
            return hs
        return hs, (torch.stack(weights) if len(levels) == 1 else weights)
