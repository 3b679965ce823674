"""Train / val / test assignment per source clip (every violent kind is represented in test)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from models.data.config import BuildConfig
from models.data.labels import ClipLabel
from models.data.sources import SOURCE_ORDER


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _hashed_split(u: float, config: BuildConfig) -> str:
    if u < config.test_fraction:
        return "test"
    return "val" if u < config.test_fraction + config.val_fraction else "train"


def _interleaved(by_source: dict[str, list[str]], seed: int) -> list[tuple[str, str]]:
    """(source, clip id) in hash order within each source, the sources interleaved (SOURCE_ORDER first)."""
    per_source = {
        s: sorted(set(ids), key=lambda c, s=s: (_digest(f"{seed}/{s}/{c}"), c)) for s, ids in by_source.items()
    }
    sources = sorted(per_source, key=lambda s: (SOURCE_ORDER.index(s) if s in SOURCE_ORDER else 99, s))
    order: list[tuple[str, str]] = []
    for i in range(max(len(v) for v in per_source.values())):
        order += [(s, per_source[s][i]) for s in sources if i < len(per_source[s])]
    return order


def assign_splits(
    clips: Sequence[tuple[str, str, ClipLabel]], config: BuildConfig
) -> dict[tuple[str, str], str]:
    """(source, clip_id, label) -> split, per source clip.

    Non-violent clips: a salted hash of (source, clip id) gives train / val / test with the configured
    fractions. Violent clips, per kind: the clips (hash order within each source, sources interleaved)
    go first to test (round(n * violent_test_fraction), at least 1 and, for n >= 2, leaving at least one
    for train), then one to val when at least 8 remain, the rest to train.
    """
    out: dict[tuple[str, str], str] = {}
    by_kind: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for source, clip_id, label in clips:
        if label.violent:
            by_kind[label.kind or "other"][source].append(clip_id)
            continue
        out[(source, clip_id)] = _hashed_split(_digest(f"{config.seed}/{source}/{clip_id}") / 2**64, config)
    for kind in sorted(by_kind):
        order = _interleaved(by_kind[kind], config.seed)
        n = len(order)
        n_test = max(1, int(n * config.violent_test_fraction + 0.5))
        if n >= 2:
            n_test = min(n_test, n - 1)
        n_val = 1 if n - n_test >= 8 else 0
        for i, key in enumerate(order):
            out[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out
