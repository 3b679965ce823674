"""The interface every evaluator (official T2M, ours) offers to the metrics / benchmark code."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Evaluator(Protocol):
    """Text/motion co-embedding. Embeddings come back in input order, one row per sample.

    `texts` is evaluator-specific: the official T2M evaluator needs HumanML3D `word/POS` token
    sequences, ours takes captions or pre-computed sentence features (B, 384).
    Motions are normalised features (B, T, dim_pose) zero-padded after `m_lens` frames
    (multiples of `unit_length`).
    """

    dim_pose: int
    unit_length: int
    embed_dim: int

    def text_embeddings(self, texts: Any) -> torch.Tensor:  # (B, embed_dim)
        ...

    def motion_embeddings(self, motions: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:  # (B, E)
        ...


def check_motion_batch(motions: torch.Tensor, m_lens, dim_pose: int, unit_length: int) -> torch.Tensor:
    """Validate (B, T, dim_pose) motions and lengths; return m_lens as a CPU int64 tensor."""
    if not isinstance(motions, torch.Tensor) or motions.ndim != 3:
        raise ValueError(
            f"motions must be a (B, T, {dim_pose}) tensor, got {getattr(motions, 'shape', motions)}"
        )
    b, t, d = motions.shape
    if d != dim_pose:
        raise ValueError(f"motions have {d} features, the evaluator expects {dim_pose}")
    m_lens = torch.as_tensor(m_lens).to("cpu", torch.int64).reshape(-1)
    if m_lens.shape[0] != b:
        raise ValueError(f"m_lens has {m_lens.shape[0]} entries for a batch of {b} motions")
    if b == 0:
        raise ValueError("empty motion batch")
    if (m_lens < unit_length).any() or (m_lens > t).any():
        raise ValueError(f"m_lens must be in [{unit_length}, {t}] frames, got {m_lens.tolist()}")
    return m_lens
