"""Spec-based loading of text encoders and a small shared cache of loaded encoders.

Checkpoints store the encoder's `spec()` (a JSON-able dict such as `{"type": "minilm"}` or
`{"type": "clip", "path": ...}`) and `load_text_encoder(spec)` rebuilds it through an explicit table of types
(`ENCODER_TYPES`); the heavy libraries an encoder needs are imported only when one is built. The interface
itself (`TextEncoder`) lives in models/text/encoder.py and is re-exported here.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from models.text.clip import CLIPEncoder
from models.text.encoder import TextEncoder, check_texts, resolve_path
from models.text.minilm import MiniLMEncoder
from models.text.precomputed import PrecomputedTextEncoder

__all__ = [
    "ENCODER_TYPES",
    "TextEncoder",
    "check_texts",
    "clear_text_encoder_cache",
    "load_text_encoder",
    "register_text_encoder",
    "resolve_path",
]

# type -> loader `(spec with an absolute "path") -> TextEncoder`
ENCODER_TYPES: dict[str, Callable[[dict], TextEncoder]] = {
    "minilm": MiniLMEncoder.from_spec,
    "clip": CLIPEncoder.from_spec,
}
_CACHE: OrderedDict[tuple[str, str], TextEncoder] = OrderedDict()
_BUILD_LOCK = threading.Lock()  # guards _CACHE and serialises encoder builds (see load_text_encoder)
CACHE_SIZE = 4


def register_text_encoder(type_: str, factory: Callable[[dict], TextEncoder]) -> None:
    """Register a loader `(spec) -> TextEncoder` for `type_`."""
    ENCODER_TYPES[type_] = factory


def _factory(type_: str) -> Callable[[dict], TextEncoder]:
    if type_ not in ENCODER_TYPES:
        raise ValueError(f"unknown text encoder type {type_!r}; known types: {sorted(ENCODER_TYPES)}")
    return ENCODER_TYPES[type_]


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
    # one build at a time: worker threads share the cache, and transformers resolves its names lazily, so two
    # threads importing it for the first time at once can fail (`cannot import name 'BertConfig'`)
    with _BUILD_LOCK:
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
        table = PrecomputedTextEncoder.from_file(path)
        if table.spec() != spec:
            return None
        _CACHE[key] = table
    return _CACHE[key]


def clear_text_encoder_cache() -> None:
    """Forget all cached encoders (they are freed once no pipeline holds them)."""
    _CACHE.clear()

