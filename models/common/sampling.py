"""Sampling utilities for token generation; all randomness flows through an explicit torch.Generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def uniform(shape: tuple[int, ...], generator: torch.Generator | None = None,
            device: torch.device | str | None = None) -> torch.Tensor:
    """U(0, 1) samples of `shape` (float32) drawn from `generator`."""
    return torch.rand(shape, generator=generator, device=device)


def top_k_filter(logits: torch.Tensor, thres: float = 0.9, dim: int = -1) -> torch.Tensor:
    """Keep the k = ceil((1 - thres) * K) largest logits along `dim`, set the rest to -inf."""
    if not 0.0 <= thres < 1.0:
        raise ValueError(f"topk_filter_thres must be in [0, 1), got {thres}")
    k = math.ceil((1 - thres) * logits.shape[dim])
    values, indices = logits.topk(k, dim=dim)
    return torch.full_like(logits, float("-inf")).scatter(dim, indices, values)


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise with the shape/dtype/device of `like`: -log(-log(u)), logs clamped at 1e-20."""
    u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None, dim: int = -1) -> torch.Tensor:
    """Gumbel-max sampling: argmax(logits / max(temperature, 1e-10) + Gumbel noise)."""
    return (logits / max(temperature, 1e-10) + gumbel_noise(logits, generator)).argmax(dim=dim)


def categorical_sample(logits: torch.Tensor, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample from softmax(logits / temperature) over the last dim: (..., K) -> (...) int64."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for categorical sampling, got {temperature}")
    probs = F.softmax(logits / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def cfg_combine(cond_logits: torch.Tensor, uncond_logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: l_u + s * (l_c - l_u)."""
    return uncond_logits + (cond_logits - uncond_logits) * scale


def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    """Mask ratio cos(pi/2 * t) for t in [0, 1]."""
    return torch.cos(t * math.pi * 0.5)


def num_masked(ratio: torch.Tensor | float, lengths: torch.Tensor) -> torch.Tensor:
    """max(1, round(ratio * lengths)), with torch.round (round-half-to-even), float32 math."""
    return torch.round(ratio * lengths).clamp(min=1)


def mask_count_schedule(length: int, timesteps: int) -> list[int]:
    """Number of masked tokens at each decoding step for one sequence of `length` tokens."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    lengths = torch.tensor([length])
    return [int(num_masked(cosine_schedule(t), lengths).item()) for t in torch.linspace(0, 1, timesteps)]


def lowest_k_mask(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """True at the `counts[b]` lowest-score positions of each row (rank = argsort of argsort).

    scores: (B, L) float, counts: (B,) -> (B, L) bool.
    """
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < counts.unsqueeze(-1)
