"""Length/padding masks and condition dropping."""

from __future__ import annotations

import torch

from models.common.sampling import Generators, uniform


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at valid positions (i < length)."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def check_token_lens(token_lens: torch.Tensor, batch_size: int, max_len: int | None = None) -> torch.Tensor:
    """Validate a (B,) integer tensor of token lengths (each in [1, max_len]) and return it as int64."""
    if not isinstance(token_lens, torch.Tensor) or token_lens.dim() != 1:
        raise ValueError("token_lens must be a 1-D tensor of per-sample token counts")
    if token_lens.is_floating_point() or token_lens.is_complex():
        raise ValueError(f"token_lens must be an integer tensor, got {token_lens.dtype}")
    if token_lens.shape[0] != batch_size:
        raise ValueError(f"token_lens has {token_lens.shape[0]} entries for a batch of {batch_size}")
    if batch_size and int(token_lens.min()) < 1:
        raise ValueError(f"every token length must be >= 1, got {token_lens.tolist()}")
    if max_len is not None and batch_size and int(token_lens.max()) > max_len:
        raise ValueError(f"token length {int(token_lens.max())} exceeds the sequence length {max_len}")
    return token_lens.long()


def drop_cond(cond: torch.Tensor, prob: float, force: bool = False, training: bool = False,
              generator: Generators = None) -> torch.Tensor:
    """Zero the condition vectors: all of them if `force`, else (training only) each with probability `prob`.

    A zero condition is the unconditional branch of classifier-free guidance.
    """
    if force:
        return torch.zeros_like(cond)
    if training and prob > 0.0:
        keep = uniform((cond.shape[0],), generator, cond.device) >= prob  # (B,)
        return cond * keep.unsqueeze(-1).to(cond.dtype)
    return cond
