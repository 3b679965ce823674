"""Target rigs for exported animations: bone names, hierarchy, rest pose and the map from our 22 joints.

The table is package data (`rigs.json`): for each rig the bones in parent-before-child order, each with
its head position in the rig's rest pose (metres, Y up, facing +Z, left = +X: the HumanML3D axes) and the
HumanML3D joint it follows (`source`, null for a bone of the rig only). `hml22` is the HumanML3D skeleton
itself (our joint names, the official raw directions: legs down, arms hanging), built from skeletons.json.

Kinds of bones, as `models.motion.retarget` animates them:
* mapped: follows one of our joints; the nearest mapped ancestor follows that joint's parent;
* between: unmapped with a mapped descendant (e.g. UE5 spine_02 between spine_01 and spine_03): lies on
  the segment of the two mapped bones around it and has no rotation of its own;
* above: unmapped ancestor of the mapped root (UE5 `root`, on the ground, carries root motion);
* extra: everything else (fingers, toe and head ends, SMPL hands): static relative to its parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from models.common.package_data import read_json
from models.motion.skeleton import SMPL22

RIG_NAMES = ("smpl", "mixamo", "ue5_mannequin")
NATIVE = "hml22"


@dataclass(frozen=True)
class Rig:
    """A target skeleton: bones (parents first), rest head positions, and the joint each bone follows."""

    name: str
    pose: str
    names: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for a root
    heads: np.ndarray  # (B, 3) rest head positions, metres
    sources: tuple[int, ...]  # HumanML3D joint index per bone, -1 for none

    @property
    def num_bones(self) -> int:
        return len(self.names)

    def bone_of(self) -> dict[int, int]:
        """HumanML3D joint index -> bone index."""
        return {s: b for b, s in enumerate(self.sources) if s >= 0}

    def mapped_ancestor(self, bone: int) -> tuple[int, list[int]]:
        """(nearest mapped ancestor or -1, the unmapped bones between it and `bone`, top first)."""
        between: list[int] = []
        p = self.parents[bone]
        while p >= 0 and self.sources[p] < 0:
            between.insert(0, p)
            p = self.parents[p]
        return p, between

    def check(self) -> None:
        """Raise ValueError unless the rig maps every joint once, consistently with our hierarchy."""
        mapped = sorted(s for s in self.sources if s >= 0)
        if mapped != list(range(SMPL22.num_joints)):
            raise ValueError(f"rig {self.name!r} must map each of the {SMPL22.num_joints} joints exactly once")
        for b, s in enumerate(self.sources):
            if self.parents[b] >= b:
                raise ValueError(f"rig {self.name!r}: bone {self.names[b]!r} listed before its parent")
            if s < 0:
                continue
            ancestor, _ = self.mapped_ancestor(b)
            expected = SMPL22.parents[s]
            got = self.sources[ancestor] if ancestor >= 0 else -1
            if got != expected:
                raise ValueError(f"rig {self.name!r}: bone {self.names[b]!r} ({SMPL22.joint_names[s]}) must "
                                 f"descend from the bone of joint {expected}, not {got}")


def _from_table(name: str, table: dict) -> Rig:
    bones = table["bones"]
    index = {b["name"]: i for i, b in enumerate(bones)}
    joint = {n: i for i, n in enumerate(SMPL22.joint_names)}
    parents = tuple(index[b["parent"]] if b["parent"] is not None else -1 for b in bones)
    sources = tuple(joint[b["source"]] if b["source"] is not None else -1 for b in bones)
    heads = np.asarray([b["head"] for b in bones], dtype=np.float64)
    return Rig(name=name, pose=table["pose"], names=tuple(index), parents=parents, heads=heads, sources=sources)


def _native() -> Rig:
    """Our skeleton as a rig, reordered parents-first (depth first), rest = raw directions x target lengths."""
    order = [0]
    kids = {j: [c for c, p in enumerate(SMPL22.parents) if p == j] for j in range(SMPL22.num_joints)}
    for j in order:
        order.extend(kids[j])
    offsets = SMPL22.target_offsets()
    heads = np.zeros((SMPL22.num_joints, 3))
    for j in order[1:]:
        heads[j] = heads[SMPL22.parents[j]] + offsets[j]
    heads[:, 1] -= heads[:, 1].min()  # feet on the ground
    pos = {j: k for k, j in enumerate(order)}
    parents = tuple(pos[SMPL22.parents[j]] if SMPL22.parents[j] >= 0 else -1 for j in order)
    return Rig(name=NATIVE, pose="HumanML3D rest (arms down)", names=tuple(SMPL22.joint_names[j] for j in order),
               parents=parents, heads=heads[order], sources=tuple(order))


@cache
def get_rig(name: str | None) -> Rig:
    """'smpl' | 'mixamo' | 'ue5_mannequin' | 'hml22' (None: 'hml22') -> the checked Rig."""
    name = name or NATIVE
    if name == NATIVE:
        rig = _native()
    elif name in RIG_NAMES:
        rig = _from_table(name, read_json(__file__, "rigs.json")[name])
    else:
        raise ValueError(f"unknown skeleton {name!r}; expected one of {', '.join(RIG_NAMES)}")
    rig.check()
    return rig
