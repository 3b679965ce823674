"""The `trans = t2mgpt` encoder stack of BAMM (bamm-differences.md §8.1): GPT-style pre-norm blocks.

Per block, on a batch-first (B, S, E) input:

    x = x + Dropout(proj(softmax(Q K^T / sqrt(d_head) with blocked logits = -inf) V))   Q, K, V from LN1(x)
    x = x + Dropout(Linear2(GELU(Linear1(LN2(x)))))

with separate `key`, `query`, `value`, `proj` Linear layers, attention-probability dropout, and no final norm.
Module names follow the official checkpoint: `blocks.<i>.{ln1, ln2, attn.{key, query, value, proj}, mlp.0,
mlp.2}`. `PreNormBlocks` takes and returns sequence-first tensors and the same `mask` argument as the
`nn.TransformerEncoder` stack (True = blocked, (B*H, S, S) or (S, S)), so either stack drops into a model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PreNormAttention(nn.Module):
    """Multi-head self-attention with separate key/query/value/proj layers (T2M-GPT naming)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.key = nn.Linear(embed_dim, embed_dim)
        self.query = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.attn_drop = nn.Dropout(dropout)
        self.resid_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, E) -> (B, H, S, E/H)."""
        b, s, e = x.shape
        return x.view(b, s, self.num_heads, e // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S, E), blocked (B, H, S, S) or broadcastable, True = may not attend -> (B, S, E)."""
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
        if blocked is not None:
            scores = scores.masked_fill(blocked, float("-inf"))
        y = self.attn_drop(scores.softmax(dim=-1)) @ v                        # (B, H, S, E/H)
        y = y.transpose(1, 2).reshape(x.shape)
        return self.resid_drop(self.proj(y))


class PreNormBlock(nn.Module):
    """x + Attn(LN1(x)), then x + MLP(LN2(x)); MLP = Linear -> GELU -> Linear -> Dropout."""

    def __init__(self, embed_dim: int, num_heads: int, ff_size: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dim)
        self.ln2 = nn.LayerNorm(embed_dim)
        self.attn = PreNormAttention(embed_dim, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, ff_size), nn.GELU(), nn.Linear(ff_size, embed_dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, blocked: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), blocked)
        return x + self.mlp(self.ln2(x))


class PreNormBlocks(nn.Module):
    """A stack of `PreNormBlock`s with the calling convention of a sequence-first `nn.TransformerEncoder`."""

    def __init__(self, embed_dim: int, num_heads: int, ff_size: int, dropout: float, num_layers: int):
        super().__init__()
        self.num_heads = num_heads
        self.blocks = nn.ModuleList(PreNormBlock(embed_dim, num_heads, ff_size, dropout) for _ in range(num_layers))

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (S, B, E); mask (B*H, S, S) (batch row b owns rows b*H .. b*H+H-1) or (S, S), True = blocked."""
        s, b, _ = src.shape
        blocked = mask.view(b, self.num_heads, s, s) if mask is not None and mask.dim() == 3 else mask
        x = src.transpose(0, 1)
        for block in self.blocks:
            x = block(x, blocked)
        return x.transpose(0, 1)
