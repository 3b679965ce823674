"""1-D convolutional encoder/decoder of the RVQ-VAE (official module layout and key names)."""

from __future__ import annotations

import torch
from torch import nn

from models.vq.config import VQConfig


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}[name]()


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: x + Dropout(conv2(act(conv1(act(x))))), conv1 dilated k=3."""

    def __init__(self, n_in: int, n_state: int, dilation: int, activation: str, dropout: float = 0.2):
        super().__init__()
        self.activation1 = _activation(activation)
        self.conv1 = nn.Conv1d(n_in, n_state, 3, 1, padding=dilation, dilation=dilation)
        self.activation2 = _activation(activation)
        self.conv2 = nn.Conv1d(n_state, n_in, 1, 1, 0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T) -> (B, C, T)."""
        h = self.conv1(self.activation1(x))
        h = self.dropout(self.conv2(self.activation2(h)))
        return h + x


class Resnet1D(nn.Module):
    """`depth` residual blocks with dilations growth**d, applied in reverse order (9, 3, 1 officially)."""

    def __init__(self, n_in: int, depth: int, growth: int, activation: str):
        super().__init__()
        dilations = [growth ** d for d in range(depth)][::-1]
        self.model = nn.Sequential(*[ResConv1DBlock(n_in, n_in, d, activation) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, dim_pose, T) -> (B, output_emb_width, T / stride_t**down_t)."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        w, k, p = cfg.width, cfg.stride_t * 2, cfg.stride_t // 2
        layers: list[nn.Module] = [nn.Conv1d(cfg.dim_pose, w, 3, 1, 1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers.append(nn.Sequential(
                nn.Conv1d(w, w, k, cfg.stride_t, p),
                Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.activation),
            ))
        layers.append(nn.Conv1d(w, cfg.output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, output_emb_width, T') -> (B, dim_pose, T' * 2**down_t) with nearest up-sampling."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv1d(cfg.output_emb_width, w, 3, 1, 1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers.append(nn.Sequential(
                Resnet1D(w, cfg.depth, cfg.dilation_growth_rate, cfg.activation),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(w, w, 3, 1, 1),
            ))
        layers += [nn.Conv1d(w, w, 3, 1, 1), nn.ReLU(), nn.Conv1d(w, cfg.dim_pose, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
