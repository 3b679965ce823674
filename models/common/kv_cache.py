"""Causal incremental decoding over the official encoder stack, with a key/value cache.

Under a causal mask, position t of a post-norm `nn.TransformerEncoder` only depends on positions <= t, so
left-to-right generation can run one new position per step: each layer keeps the keys and values of the
positions already seen and attends the new query to them. Step t then costs O(t) attention and O(1)
projections, instead of re-running the whole prefix (O(t) projections) as a plain forward does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CachedCausalEncoder:
    """Runs `encoder` (post-norm layers, eval mode) one position at a time under a causal mask.

        cache = CachedCausalEncoder(model.seqTransEncoder, batch_size=B, max_len=50)
        h0 = cache.step(x0)   # (B, latent) input at position 0 -> its output
        h1 = cache.step(x1)   # position 1 attends to positions 0 and 1
    """

    def __init__(self, encoder: nn.TransformerEncoder, batch_size: int, max_len: int):
        self.layers = list(encoder.layers)
        self.norm = encoder.norm
        first = self.layers[0]
        if first.norm_first or first.self_attn.batch_first or not first.self_attn._qkv_same_embed_dim:
            raise ValueError("CachedCausalEncoder expects post-norm, sequence-first layers with packed q/k/v")
        if encoder.training:
            raise ValueError("CachedCausalEncoder runs in eval mode only (no dropout)")
        attn = first.self_attn
        self.heads, self.head_dim = attn.num_heads, attn.embed_dim // attn.num_heads
        weight = attn.in_proj_weight
        shape = (len(self.layers), batch_size, self.heads, max_len, self.head_dim)
        self.keys = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        self.values = torch.zeros_like(self.keys)
        self.length = 0

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, latent): the input of the next position -> (B, latent) its encoder output."""
        t = self.length
        if t >= self.keys.shape[3]:
            raise ValueError(f"the cache holds {self.keys.shape[3]} positions")
        b = x.shape[0]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # (B, E) each
            self.keys[i, :, :, t] = k.view(b, self.heads, self.head_dim)
            self.values[i, :, :, t] = v.view(b, self.heads, self.head_dim)
            q = q.view(b, self.heads, 1, self.head_dim)
            o = F.scaled_dot_product_attention(q, self.keys[i, :, :, : t + 1], self.values[i, :, :, : t + 1])
            x = layer.norm1(x + attn.out_proj(o.reshape(b, -1)))
            x = layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
        self.length = t + 1
        return x if self.norm is None else self.norm(x)
