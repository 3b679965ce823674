"""Left/right mirroring of joint positions and of caption text (HumanML3D `M` clips)."""

from __future__ import annotations

import re

import numpy as np

from models.motion._array import Array, is_torch
from models.motion.skeleton import Skeleton, get_skeleton


def mirror_permutation(skeleton: Skeleton | str = "t2m") -> np.ndarray:
    """(J,) joint index permutation swapping every left/right pair."""
    sk = get_skeleton(skeleton)
    perm = np.arange(sk.num_joints)
    for a, b in sk.left_right_pairs:
        perm[a], perm[b] = b, a
    return perm


def mirror_joints(joints: Array, skeleton: Skeleton | str = "t2m") -> Array:
    """(..., J, 3) positions -> mirrored positions: negate x and swap left/right joints (numpy or torch)."""
    sk = get_skeleton(skeleton)
    if joints.ndim < 2 or tuple(joints.shape[-2:]) != (sk.num_joints, 3):
        raise ValueError(f"joints must have shape (..., {sk.num_joints}, 3), got {tuple(joints.shape)}")
    out = joints[..., mirror_permutation(sk).tolist(), :]
    out = out.clone() if is_torch(out) else out.copy()
    out[..., 0] = -out[..., 0]
    return out


# "right" used as an adverb, not a direction
_IDIOMS = re.compile(r"\b(?:all right|right (?:away|now))\b", re.IGNORECASE)
_SIDE = re.compile(r"\b(left|right)(?=(?:ward|wards|most)?\b)", re.IGNORECASE)
_SPIN = re.compile(r"\b(counter-?clockwise|anti-?clockwise|clockwise)\b", re.IGNORECASE)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _swap_sides(text: str) -> str:
    swap = {"left": "right", "right": "left"}
    return _SIDE.sub(lambda m: _match_case(swap[m.group(1).lower()], m.group(1)), text)


def mirror_text(text: str, swap_rotation: bool = True) -> str:
    """Swap left <-> right (also leftward(s)/rightmost...), keeping case and punctuation.

    "all right", "right away" and "right now" are left alone. With swap_rotation, clockwise becomes
    counterclockwise and counter-/anti-clockwise become clockwise (a mirrored turn spins the other way;
    HumanML3D's own `M` captions only swap left/right: pass swap_rotation=False to reproduce them).
    Involutive on texts that use "clockwise"/"counterclockwise" (anticlockwise maps back to counter...).
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    out, last = [], 0
    for m in _IDIOMS.finditer(text):  # keep idioms verbatim
        out.append(_swap_sides(text[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_swap_sides(text[last:]))
    text = "".join(out)
    if swap_rotation:
        text = _SPIN.sub(
            lambda m: _match_case("clockwise" if m.group(1).lower() != "clockwise" else "counterclockwise",
                                  m.group(1)),
            text,
        )
    return text
