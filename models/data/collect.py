"""The clips of a build: shared mocap clips and BVH files, in a fixed order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from models.data.sources import SOURCE_ORDER, SourceClip, load_bvh_dir, load_shared_clips


def _first_per_source(ordered: list[SourceClip], limit: int) -> list[SourceClip]:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    seen: Counter = Counter()
    kept = []
    for c in ordered:
        if seen[c.source] < limit:
            kept.append(c)
            seen[c.source] += 1
    return kept


def collect_clips(
    shared_dir: str | Path | None,
    bvh_dir: str | Path | None = None,
    limit: int | None = None,
    ids: set[str] | None = None,
    bvh_scale: float = 0.01,
) -> tuple[list[SourceClip], list[str]]:
    """Shared clips plus BVH clips, sorted by (source, clip id); a BVH clip replaces the npz clip of the
    same source and id. `limit` keeps the first N clips (sorted) of each source. Returns the clips and
    notes for the card."""
    if shared_dir is None and bvh_dir is None:
        raise ValueError("nothing to build: give a shared data folder and/or a BVH folder")
    clips: dict[tuple[str, str], SourceClip] = {}
    notes: list[str] = []
    if shared_dir is not None:
        for c in load_shared_clips(shared_dir, ids=ids):
            clips[(c.source, c.clip_id)] = c
    if bvh_dir is not None:
        for c in load_bvh_dir(bvh_dir, scale=bvh_scale):
            if ids is not None and c.clip_id not in ids:
                continue
            key = (c.source, c.clip_id)
            if key in clips:
                notes.append(f"`{c.clip_id}` ({c.source}) taken from {c.origin} instead of the npz")
                c.kitml = clips[key].kitml
            clips[key] = c
    ordered = sorted(clips.values(), key=lambda c: (SOURCE_ORDER.index(c.source), c.clip_id))
    return (ordered if limit is None else _first_per_source(ordered, limit)), notes
