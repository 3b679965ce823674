"""The text encoder interface: a batch of captions -> one float32 feature vector each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch


class TextEncoder(ABC):
    """Maps a list of captions to a `(B, dim)` float32 tensor on the encoder's device (frozen, eval mode)."""

    name: str
    dim: int
    batch_size: int = 256  # captions per forward pass; longer lists are chunked (sorted by length)

    def __init__(self, module: torch.nn.Module):
        self.module = module.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> TextEncoder:
        """Move the encoder to `device` (in place) and return it."""
        self.module.to(torch.device(device))
        return self

    @abstractmethod
    def spec(self) -> dict:
        """JSON-able description that `load_text_encoder` turns back into this encoder."""

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        """Features `(B, dim)` of one batch (called under `torch.no_grad`)."""

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Encode captions -> `(B, dim)` float32 on `self.device`; deterministic, no gradients."""
        texts = check_texts(texts)
        out = torch.empty(len(texts), self.dim, device=self.device)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                out[idx] = self._encode_batch([texts[i] for i in idx]).float()
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device})"


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of captions (a list of strings, not a bare string)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must be a list of strings, found items of type {sorted(set(bad))}")
    return list(texts)


def resolve_path(path: str | Path, search_paths: Sequence[str | Path] = ()) -> Path:
    """Find `path`: as given if absolute, else the first existing `search_paths/path`, else in the cwd."""
    path = Path(path).expanduser()
    candidates = [path] if path.is_absolute() else [Path(p) / path for p in search_paths] + [path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"text encoder path {str(path)!r} not found (tried {tried})")
