"""Sampling utilities for token generation; all randomness flows through an explicit torch.Generator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Generators = torch.Generator | Sequence[torch.Generator] | None
Lengths = torch.Tensor | Sequence[int] | None  # per-row lengths: a (B,) tensor or a list (no host sync)


def _draw(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
          ) -> torch.Tensor:
    """torch.rand on the generator's own device (e.g. a CPU generator for a CUDA model), then moved."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def uniform(shape: tuple[int, ...], generator: Generators = None, device: torch.device | str | None = None,
            lengths: Lengths = None) -> torch.Tensor:
    """U(0, 1) float32 samples of `shape` = (B, ...).

    `generator` is None (global RNG), one torch.Generator, or one generator per batch row. With per-row
    generators, row b is drawn from generators[b] only, and if `lengths` (B,) is given only the first
    lengths[b] entries along dim 1 are drawn (the rest are 0): a row's draws then do not depend on its
    batch neighbours or on the padded length.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return _draw(shape, generator, device)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    # rows are drawn on the generators' device (CPU for `make_generators`) and moved in one copy
    home = generator[0].device if len(generator) else device
    if lengths is None:
        return torch.stack([_draw(shape[1:], g, home) for g in generator]).to(device)
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.tolist()  # one host sync for the batch
    out = torch.zeros(shape, device=home)
    for b, g in enumerate(generator):
        n = int(lengths[b])
        out[b, :n] = _draw((n, *shape[2:]), g, home)
    return out.to(device)


def top_k_filter(logits: torch.Tensor, thres: float = 0.9, dim: int = -1) -> torch.Tensor:
    """Keep the k = ceil((1 - thres) * K) largest logits along `dim`, set the rest to -inf."""
    if not 0.0 <= thres < 1.0:
        raise ValueError(f"topk_filter_thres must be in [0, 1), got {thres}")
    k = math.ceil((1 - thres) * logits.shape[dim])
    values, indices = logits.topk(k, dim=dim, sorted=False)  # the scatter does not need them in order
    return torch.full_like(logits, float("-inf")).scatter(dim, indices, values)


def gumbel_noise(like: torch.Tensor, generator: Generators = None,
                 lengths: Lengths = None) -> torch.Tensor:
    """Standard Gumbel noise shaped like `like` (B, ..., K): -log(-log(u)), both logs clamped at 1e-20."""
    u = uniform(tuple(like.shape), generator, like.device, lengths).to(like.dtype)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0, generator: Generators = None,
                  lengths: Lengths = None) -> torch.Tensor:
    """Gumbel-max sampling over the last dim: argmax(logits / max(temperature, 1e-10) + Gumbel noise)."""
    return (logits / max(temperature, 1e-10) + gumbel_noise(logits, generator, lengths)).argmax(dim=-1)


def categorical_sample(logits: torch.Tensor, temperature: float = 1.0, generator: Generators = None,
                       lengths: Lengths = None) -> torch.Tensor:
    """Sample from softmax(logits / temperature) over the last dim: (B, ..., K) -> (B, ...) int64.

    Inverse-CDF sampling with one uniform per sampled position (see `uniform` for generators/lengths).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for categorical sampling, got {temperature}")
    cdf = F.softmax(logits / temperature, dim=-1).cumsum(dim=-1)
    u = uniform(tuple(logits.shape[:-1]), generator, logits.device, lengths)
    threshold = (u.to(cdf.dtype) * cdf[..., -1]).unsqueeze(-1)
    ids = torch.searchsorted(cdf, threshold, right=True).squeeze(-1)
    return ids.clamp(max=logits.shape[-1] - 1)


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
