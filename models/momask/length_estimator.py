"""MoMask length estimator: text feature -> distribution over token lengths 0..num_classes-1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.common.config import DictConfig
from models.common.sampling import Generators, categorical_sample
from models.common.transformer import eval_mode, init_weights


@dataclass
class LengthEstimatorConfig(DictConfig):
    cond_dim: int = 512      # text feature size
    num_classes: int = 50    # token lengths 0..num_classes-1

    def __post_init__(self) -> None:
        if self.cond_dim < 1 or self.num_classes < 2:
            raise ValueError(f"need cond_dim >= 1 and num_classes >= 2, got {self.cond_dim}, {self.num_classes}")


class LengthEstimator(nn.Module):
    """MLP 512 -> 256 -> 128 -> num_classes (LayerNorm, LeakyReLU 0.2, Dropout 0.2); keys `output.<i>.*`."""

    def __init__(self, cond_dim: int = 512, num_classes: int = 50):
        super().__init__()
        self.cfg = LengthEstimatorConfig(cond_dim, num_classes)
        self.cond_dim, self.num_classes = cond_dim, num_classes
        self.output = nn.Sequential(
            nn.Linear(cond_dim, 512), nn.LayerNorm(512), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.2),
            nn.Linear(512, 256), nn.LayerNorm(256), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.2),
            nn.Linear(256, 128), nn.LayerNorm(128), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(128, num_classes),
        )
        self.output.apply(init_weights)

    @classmethod
    def from_config(cls, cfg: LengthEstimatorConfig) -> LengthEstimator:
        return cls(cfg.cond_dim, cfg.num_classes)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """cond (B, cond_dim) -> logits (B, num_classes)."""
        if cond.dim() != 2 or cond.shape[1] != self.cond_dim or not cond.is_floating_point():
            raise ValueError(f"cond must be a float tensor (B, {self.cond_dim}), got {tuple(cond.shape)}")
        return self.output(cond)

    @eval_mode
    def sample_token_lengths(self, cond: torch.Tensor,
                             generator: Generators = None) -> torch.Tensor:
        """Sample n ~ softmax(logits) per sample (not argmax, as the official scripts), clamped to >= 1."""
        return categorical_sample(self(cond), 1.0, generator).clamp(min=1)
