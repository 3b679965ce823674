"""Text encoder interface, spec-based loading and a small shared cache of loaded encoders.

A text encoder maps a batch of captions to one float32 feature vector each. Checkpoints store the
encoder's `spec()` (a JSON-able dict such as `{"type": "minilm"}` or `{"type": "clip", "path": ...}`)
and `load_text_encoder(spec)` rebuilds it; heavy libraries are imported only when a type is loaded.
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# type -> "module:callable"; the callable is `(spec with an absolute "path") -> TextEncoder`
_REGISTRY: dict[str, str | Callable[..., TextEncoder]] = {
    "minilm": "models.text.minilm:MiniLMEncoder.from_spec",
    "clip": "models.text.clip:CLIPEncoder.from_spec",
}
_CACHE: OrderedDict[tuple[str, str], TextEncoder] = OrderedDict()
CACHE_SIZE = 4


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


def register_text_encoder(type_: str, factory: str | Callable[..., TextEncoder]) -> None:
    """Register a loader `(spec) -> TextEncoder` (or its "module:attr" name) for `type_`."""
    _REGISTRY[type_] = factory


def _factory(type_: str) -> Callable[..., TextEncoder]:
    if type_ not in _REGISTRY:
        raise ValueError(f"unknown text encoder type {type_!r}; known types: {sorted(_REGISTRY)}")
    factory = _REGISTRY[type_]
    if isinstance(factory, str):
        module_name, attr = factory.split(":")
        factory = importlib.import_module(module_name)
        for part in attr.split("."):
            factory = getattr(factory, part)
    return factory


def load_text_encoder(
    spec: dict, search_paths: Sequence[str | Path] = (), device: str | torch.device = "cpu"
) -> TextEncoder:
    """Build (or reuse) the encoder described by `spec` on `device`.

    Relative `spec["path"]` / `spec["tokenizer"]` values are looked up in `search_paths` (e.g. the
    checkpoint directory), then in the working directory. The last `CACHE_SIZE` encoders are cached,
    keyed by the resolved spec and device, so pipelines in one process share one encoder: treat it
    as read-only.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"text encoder spec must be a dict with a string 'type', got {spec!r}")
    precomputed = _precomputed_for(spec)
    if precomputed is not None:
        return precomputed
    factory = _factory(spec["type"])
    spec = dict(spec)
    for key in ("path", "tokenizer"):  # file locations, possibly relative to a checkpoint directory
        if spec.get(key) is not None:
            spec[key] = str(resolve_path(spec[key], search_paths))
    device = str(torch.device(device))
    key = (json.dumps(spec, sort_keys=True), device)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    encoder = factory(spec).to(device)
    _CACHE[key] = encoder
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return encoder


def _precomputed_for(spec: dict) -> TextEncoder | None:
    """The table named by HMU_TEXT_FEATURES when its stored spec equals `spec` (see models/text/precomputed.py)."""
    path = os.environ.get("HMU_TEXT_FEATURES")
    if not path:
        return None
    key = ("precomputed:" + path, json.dumps(spec, sort_keys=True))
    if key not in _CACHE:
        from models.text.precomputed import PrecomputedTextEncoder

        table = PrecomputedTextEncoder.from_file(path)
        if table.spec() != spec:
            return None
        _CACHE[key] = table
    return _CACHE[key]


def clear_text_encoder_cache() -> None:
    """Forget all cached encoders (they are freed once no pipeline holds them)."""
    _CACHE.clear()
