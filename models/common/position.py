"""Fixed sinusoidal positional encoding (sequence-first), as used by MoMask and BAMM."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal table to a sequence-first input, then applies dropout.

    The table is a persistent buffer `pe` of shape (max_len, 1, d_model) (it is part of the official
    checkpoints): pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)).
    MoMask adds it to the motion tokens only; BAMM adds it to the whole sequence including the text
    token. Both are expressed with `offset` (index of the first position of `x`).
    """

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal table, got {d_model}")
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(1))  # (max_len, 1, d_model)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x: (L, B, d_model) -> (L, B, d_model)."""
        end = offset + x.shape[0]
        if end > self.pe.shape[0]:
            raise ValueError(f"sequence of length {end} exceeds the positional table ({self.pe.shape[0]})")
        return self.dropout(x + self.pe[offset:end])
