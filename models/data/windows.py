"""Cutting clips into windows of HumanML3D length, and the KIT-ML captions a window covers."""

from __future__ import annotations

from models.data.config import FPS
from models.data.sources import SourceClip


def window_ranges(n_frames: int, min_frames: int = 40, max_frames: int = 196) -> list[tuple[int, int]]:
    """Joint-frame ranges [start, end) covering a clip of `n_frames` joint frames.

    A window of w joint frames gives w - 1 feature frames. Clips with fewer than min_frames + 1 frames
    give no window; longer clips are cut into the fewest equal windows of <= max_frames feature frames,
    spread evenly from the first to the last frame (neighbours may share a frame).
    """
    t = n_frames - 1
    if t < min_frames:
        return []
    k = -(-t // max_frames)
    if k == 1:
        return [(0, n_frames)]
    length = t // k + 1  # joint frames per window
    span = n_frames - length
    starts = [(2 * i * span + (k - 1)) // (2 * (k - 1)) for i in range(k)]  # round(i * span / (k-1))
    return [(s, s + length) for s in starts]


def kitml_for_window(clip: SourceClip, start: int, end: int, min_coverage: float) -> list[str]:
    """KIT-ML captions of `clip` whose annotated span the window [start, end) covers by >= min_coverage."""
    out = []
    w0, w1 = start / FPS, (end - 1) / FPS
    for cap in clip.kitml:
        c0, c1 = float(cap["start"]), float(cap["end"])
        span = max(c1 - c0, 1e-6)
        if (min(w1, c1) - max(w0, c0)) / span >= min_coverage:
            out.append(str(cap["text"]))
    return out
