"""Clip labels of the shared mocap sources: a readable label, a style, the violent flag and kind.

The violent flag always comes from the source's own metadata (`violent` in clips.json); the kind
groups violent clips across sources for the split (every kind is represented in the test split)
and for later forget/retain sets. Kinds: punch, kick, slash, stab, sword_attack (sword combos,
spins, jump/counter/finishing attacks, swings, feints), shield_attack, swordplay (CMU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from models.common.package_data import read_json

VIOLENT_KINDS = ("punch", "kick", "slash", "stab", "sword_attack", "shield_attack", "swordplay")


@dataclass(frozen=True)
class ClipLabel:
    label: str  # e.g. "wave-left-hand", "slash-down", "walk" (CMU: the CMU description)
    style: str  # Bandai Namco style ("angry", "tired", ...) or "normal"
    violent: bool
    kind: str | None  # one of VIOLENT_KINDS when violent, else None


def bandai_label(entry: dict) -> ClipLabel:
    """Bandai Namco clips.json entry -> ClipLabel (label = `content`, style = `style`)."""
    content, style, violent = entry["content"], entry.get("style", "normal"), bool(entry["violent"])
    kind = {"punch": "punch", "kick": "kick", "slash": "slash"}.get(content) if violent else None
    if violent and kind is None:
        raise ValueError(f"bandai_namco clip {entry['id']!r}: violent content {content!r} has no kind")
    return ClipLabel(content, style, violent, kind)


# (regex on the ASE id, label template, kind when violent); groups fill the template
_ASE_RULES: tuple[tuple[str, str, str | None], ...] = tuple(
    (pattern, template, kind) for pattern, template, kind in read_json(__file__, "tables/labels.json")["ase_rules"]
)


def _kebab(s: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", s).lower()


def ase_label(entry: dict) -> ClipLabel:
    """ASE Reallusion clips.json entry -> ClipLabel from the move name (`id`)."""
    clip_id, violent = entry["id"], bool(entry["violent"])
    for pattern, template, kind in _ASE_RULES:
        m = re.fullmatch(pattern, clip_id)
        if m:
            label = template.format(*(_kebab(g) for g in m.groups()))
            if violent and kind is None:
                raise ValueError(f"ase_reallusion clip {clip_id!r} is violent but {label!r} has no kind")
            return ClipLabel(label, "normal", violent, kind if violent else None)
    raise ValueError(f"ase_reallusion clip {clip_id!r} matches no known move name")


def cmu_label(entry: dict) -> ClipLabel:
    """CMU clips.json entry -> ClipLabel (label = the CMU index description)."""
    desc, violent = entry["cmu_description"].strip().lower(), bool(entry["violent"])
    kind = None
    if violent:
        if "sword" in desc:
            kind = "swordplay"
        elif "punch" in desc or "strike" in desc or "box" in desc:
            kind = "punch"
        elif "kick" in desc:
            kind = "kick"
        else:
            raise ValueError(f"cmu clip {entry['id']!r}: violent description {desc!r} has no kind")
    return ClipLabel(desc, "normal", violent, kind)


def bvh_label(stem: str) -> ClipLabel:
    """Label of a BVH file from its name: Bandai Namco names `dataset-N_<content>_<style>_NNN` give
    content and style (violent = punch/kick/slash); any other name gives the stem as the label."""
    m = re.fullmatch(r"dataset-\d+_([a-z-]+)_([a-z-]+)_\d+", stem)
    if m:
        content, style = m.groups()
        violent = content in ("punch", "kick", "slash")
        return bandai_label({"id": stem, "content": content, "style": style, "violent": violent})
    return ClipLabel(re.sub(r"[_\s]+", " ", stem).strip().lower(), "normal", False, None)


def dominant_side(features: np.ndarray, kind: str | None, margin: float = 0.15) -> str | None:
    """'left' / 'right' limb that performs a kick or a punch in a (T, 263) feature clip, or None.

    Uses the rotation-invariant joint positions (ric, heading frame facing +Z): kicks compare the
    highest ankle (joints 7/8), punches the furthest forward wrist (joints 20/21). None when the
    difference is below `margin` metres (both limbs used) or for other kinds.
    """
    if kind not in ("kick", "punch"):
        return None
    ric = np.asarray(features)[:, 4:67].reshape(-1, 21, 3)  # joints 1..21
    if kind == "kick":
        left, right = ric[:, 6, 1].max(), ric[:, 7, 1].max()
    else:
        left, right = ric[:, 19, 2].max(), ric[:, 20, 2].max()
    if abs(left - right) < margin:
        return None
    return "left" if left > right else "right"
