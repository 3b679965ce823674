"""Tiny numpy/torch dispatch helpers so that one implementation serves both array types."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Array = Any  # np.ndarray | torch.Tensor


def is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def stack(xs: list[Array], dim: int) -> Array:
    return torch.stack(xs, dim) if is_torch(xs[0]) else np.stack(xs, dim)


def cat(xs: list[Array], dim: int) -> Array:
    return torch.cat(xs, dim) if is_torch(xs[0]) else np.concatenate(xs, dim)


def zeros_like(x: Array) -> Array:
    return torch.zeros_like(x) if is_torch(x) else np.zeros_like(x)


def sqrt(x: Array) -> Array:
    return torch.sqrt(x) if is_torch(x) else np.sqrt(x)


def cos(x: Array) -> Array:
    return torch.cos(x) if is_torch(x) else np.cos(x)


def sin(x: Array) -> Array:
    return torch.sin(x) if is_torch(x) else np.sin(x)


def broadcast(*xs: Array) -> list[Array]:
    """Broadcast arrays of the same kind against each other (numpy arrays or torch tensors)."""
    return list(torch.broadcast_tensors(*xs)) if is_torch(xs[0]) else list(np.broadcast_arrays(*xs))
