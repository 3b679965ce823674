"""The motions of one clip: its windows as features with captions and a meta record, plus their mirrors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.captions import template_captions
from models.data.config import BuildConfig
from models.data.labels import dominant_side
from models.data.sources import SourceClip
from models.data.windows import kitml_for_window
from models.motion.features import joints_to_features
from models.motion.mirror import mirror_joints, mirror_text


@dataclass(frozen=True)
class Motion:
    """One written motion: id, (T, 263) features, captions and its meta.json record (without frames/captions)."""

    motion_id: str
    features: np.ndarray
    captions: list[str]
    record: dict


def _record(clip: SourceClip, window: tuple[int, int], index: int, count: int, side: str | None,
            split: str) -> dict:
    label = clip.label
    return {
        "source": clip.source,
        "source_clip": clip.clip_id,
        "origin": clip.origin,
        "window": list(window),
        "window_index": index,
        "n_windows": count,
        "label": label.label,
        "source_label": label.label,
        "style": label.style,
        "violent": label.violent,
        "violent_kind": label.kind,
        "side": side,
        "mirrored": False,
        "split": split,
    }


def _mirrored(motion: Motion, joints: np.ndarray, label: str) -> Motion:
    feats = joints_to_features(mirror_joints(joints), fix_heading_wrap=True)
    side = motion.record["side"]
    m_side = {"left": "right", "right": "left"}.get(side) if side else None
    record = {**motion.record, "label": mirror_text(label), "side": m_side, "mirrored": True}
    return Motion("M" + motion.motion_id, feats, [mirror_text(c) for c in motion.captions], record)


def window_motions(clip: SourceClip, windows: list[tuple[int, int]], split: str, first_id: int,
                   config: BuildConfig) -> list[Motion]:
    """The motions of `clip`'s windows, numbered from `first_id` (each followed by its mirror when enabled)."""
    out: list[Motion] = []
    for w, (start, end) in enumerate(windows):
        joints = clip.joints[start:end]
        feats = joints_to_features(joints, fix_heading_wrap=True)
        side = dominant_side(feats, clip.label.kind)
        captions = template_captions(clip.label, f"{clip.source}/{clip.clip_id}/{w}", config.captions_per_motion,
                                     side)
        captions += kitml_for_window(clip, start, end, config.kitml_min_coverage)
        record = _record(clip, (start, end), w, len(windows), side, split)
        motion = Motion(f"{first_id + w:06d}", feats, captions, record)
        out.append(motion)
        if config.mirror:
            out.append(_mirrored(motion, joints, clip.label.label))
    return out
