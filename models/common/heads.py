"""Token input projection and the Bert-style output head shared by the MoMask/BAMM transformers."""

from __future__ import annotations

import torch
from torch import nn

from models.common import packed_linear


class InputProcess(nn.Module):
    """Per-token Linear(in_dim -> latent_dim); batch-first in, sequence-first out."""

    def __init__(self, in_dim: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(in_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, in_dim) -> (L, B, latent_dim)."""
        return packed_linear.linear_module(self.poseEmbedding, x.permute(1, 0, 2))


class OutputProcess(nn.Module):
    """Bert-style head: dense -> GELU -> LayerNorm(eps 1e-12) -> poseFinal.

    Used with out_dim = number of classes (MaskTransformer: 512, BAMM: 513) or out_dim = code_dim
    (ResidualTransformer, followed by its per-layer projection).
    """

    def __init__(self, latent_dim: int, out_dim: int):
        super().__init__()
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (L, B, latent_dim) sequence-first -> (B, L, out_dim) batch-first."""
        h = self.LayerNorm(packed_linear.linear_module(self.dense, h, "gelu"))
        logits = packed_linear.linear_module(self.poseFinal, h)
        return logits.float().permute(1, 0, 2)  # float32 logits also under bf16 autocast
