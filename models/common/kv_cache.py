"""Causal incremental decoding over an encoder stack, with a key/value cache.

Under a causal mask, position t of the encoder output only depends on positions <= t (post-norm
`nn.TransformerEncoder` and pre-norm GPT blocks alike), so left-to-right generation can run one new position
per step: each layer keeps the keys and values of the positions already seen and attends the new query to
them. Step t then costs O(t) attention and O(1) projections, instead of re-running the whole prefix (O(t)
projections) as a plain forward does. The result equals the full causal forward up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.gpt_blocks import PreNormBlocks
from models.common.transformer import layer_in_projection, post_norm_rest


def _post_norm_qkv(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return layer_in_projection(layer, x).chunk(3, dim=-1)


def _pre_norm_qkv(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    h = block.ln1(x)
    return block.attn.query(h), block.attn.key(h), block.attn.value(h)


def _pre_norm_rest(block: nn.Module, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    x = x + block.attn.proj(o)
    return x + block.mlp(block.ln2(x))


class CachedCausalEncoder:
    """Runs `encoder` (eval mode) one position at a time under a causal mask: an `nn.TransformerEncoder` of
    post-norm, sequence-first layers with packed q/k/v, or a `PreNormBlocks` stack (BAMM's t2mgpt).

        cache = CachedCausalEncoder(model.seqTransEncoder, batch_size=B, max_len=50)
        h0 = cache.step(x0)   # (B, latent) input at position 0 -> its output
        h1 = cache.step(x1)   # position 1 attends to positions 0 and 1
    """

    def __init__(self, encoder: nn.Module, batch_size: int, max_len: int):
        if encoder.training:
            raise ValueError("CachedCausalEncoder runs in eval mode only (no dropout)")
        if isinstance(encoder, PreNormBlocks):
            self.layers, self.norm = list(encoder.blocks), None
            self._qkv, self._rest = _pre_norm_qkv, _pre_norm_rest
            self.heads = encoder.num_heads
            self.head_dim = self.layers[0].attn.key.out_features // self.heads
            weight = self.layers[0].attn.key.weight
        else:
            self.layers, self.norm = list(encoder.layers), encoder.norm
            self._qkv, self._rest = _post_norm_qkv, post_norm_rest
            attn = self.layers[0].self_attn
            if self.layers[0].norm_first or attn.batch_first or not attn._qkv_same_embed_dim:
                raise ValueError("CachedCausalEncoder expects post-norm, sequence-first layers with packed q/k/v")
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
            q, k, v = self._qkv(layer, x)                                        # (B, E) each
            self.keys[i, :, :, t] = k.view(b, self.heads, self.head_dim)
            self.values[i, :, :, t] = v.view(b, self.heads, self.head_dim)
            q = q.view(b, self.heads, 1, self.head_dim)
            o = F.scaled_dot_product_attention(q, self.keys[i, :, :, : t + 1], self.values[i, :, :, : t + 1])
            x = self._rest(layer, x, o.reshape(b, -1))
        self.length = t + 1
        return x if self.norm is None else self.norm(x)
