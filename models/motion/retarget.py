"""Joint positions -> a skeletal animation of a target rig (local rotations and translations per bone).

`retarget(joints, rig)`:
1. Rest pose: each of our bones (joint -> child) points along the rig's rest direction of the matching
   segment (e.g. arms out in a T-pose) and has the motion's mean length (the rig is scaled to the
   motion); the children of a branching joint (hips + spine, neck + collars) take the clip's mean
   sibling geometry rotated onto the rig's directions (`bvh_export.align_siblings`), since one rotation
   can place several children only if their rest geometry is the motion's.
2. Rotations: `bvh_export.fit_rotations` aligns the rest bones with the generated ones (minimal swing from
   the parent's frame for one child, so the twist is the parent's; Kabsch fit for several children).
3. Rig bones: a mapped bone takes its joint's rotation; a bone between two mapped ones lies on their
   segment and has no rotation of its own; extra bones (fingers, ends) are static in their parent's frame;
   a bone above the mapped root (UE5 `root`) stays under the pelvis on the ground.
4. Translations: every mapped bone (and bone between) is translated along its segment by the frame's
   bone length. Generated motions do not keep bone lengths constant (a few cm over a clip with the small
   models), so a rigid skeleton could not reproduce them; with these per-frame translations, forward
   kinematics of the animation reproduces the generated positions to float precision. An engine that
   retargets rotations only (e.g. to a character of other proportions) may ignore them.

Rest frames are the world axes (rest rotations are identity), as in BVH.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from models.motion.bvh_export import align_siblings, fit_rotations
from models.motion.quaternion import matrix_to_quat, qfix, quat_to_matrix
from models.motion.rigs import Rig
from models.motion.skeleton import SMPL22


@dataclass(frozen=True)
class RigAnimation:
    """A skeletal animation: local rest translations, per-frame local rotations (w, x, y, z) and translations."""

    rig: Rig
    rest: np.ndarray  # (B, 3) local rest translation of each bone, metres
    rotations: np.ndarray  # (T, B, 4) local unit quaternions, w first, sign-continuous over time
    translations: np.ndarray  # (T, B, 3) local translations
    fps: float
    motion_root: int  # the bone whose translation carries the horizontal root motion
    trajectory: np.ndarray | None = None  # (T, 3) root motion taken out of the skeleton (in place)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    def with_(self, **changes) -> RigAnimation:
        return replace(self, **changes)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _fractions(rig: Rig, between: list[int], bone: int) -> np.ndarray:
    """Cumulative path fractions of the bones `between` + `bone` along their rig segment (last is 1)."""
    chain = [rig.parents[between[0]] if between else rig.parents[bone], *between, bone]
    steps = np.linalg.norm(np.diff(rig.heads[chain], axis=0), axis=-1) + 1e-9
    return np.cumsum(steps) / steps.sum()


def rig_offsets(joints: np.ndarray, rig: Rig) -> np.ndarray:
    """(T, 22, 3) positions -> (22, 3) rest offsets of our bones in the rig's rest pose (module doc, 1)."""
    lengths = SMPL22.bone_lengths(joints).mean(axis=0)
    base = np.zeros((SMPL22.num_joints, 3))
    for bone, joint in enumerate(rig.sources):
        if joint <= 0:
            continue
        ancestor, _ = rig.mapped_ancestor(bone)
        base[joint] = _unit(rig.heads[bone] - rig.heads[ancestor]) * lengths[joint]
    return align_siblings(joints, base, SMPL22.parents)


def _rest(rig: Rig, offsets: np.ndarray) -> np.ndarray:
    """(B, 3) local rest translations of every bone (module doc, 3)."""
    mapped = [b for b, s in enumerate(rig.sources) if s > 0]
    rig_len = sum(np.linalg.norm(rig.heads[b] - rig.heads[rig.mapped_ancestor(b)[0]]) for b in mapped)
    scale = np.linalg.norm(offsets, axis=-1).sum() / rig_len
    rest = np.zeros((rig.num_bones, 3))
    for b in range(rig.num_bones):
        p = rig.parents[b]
        if p >= 0:
            rest[b] = (rig.heads[b] - rig.heads[p]) * scale  # extra bones; the others are set below
    heights = np.zeros(SMPL22.num_joints)
    for j in range(1, SMPL22.num_joints):  # parents come first in SMPL22's joint order
        heights[j] = heights[SMPL22.parents[j]] + offsets[j, 1]
    root = rig.bone_of()[0]
    rest[root] = (0.0, -heights.min(), 0.0)  # feet on the ground under the root bone
    for b, joint in enumerate(rig.sources):
        if joint > 0:
            _, between = rig.mapped_ancestor(b)
            f = _fractions(rig, between, b)
            for k, bone in enumerate([*between, b]):
                rest[bone] = offsets[joint] * (f[k] - (f[k - 1] if k else 0.0))
    for b in range(root):
        if rig.sources[b] < 0 and _is_above(rig, b, root):
            rest[b] = 0.0
    return rest


def _is_above(rig: Rig, bone: int, descendant: int) -> bool:
    p = descendant
    while p >= 0:
        if p == bone:
            return True
        p = rig.parents[p]
    return False


def _global_rotations(rig: Rig, glob: np.ndarray) -> np.ndarray:
    """(T, 22, 3, 3) joint rotations -> (T, B, 3, 3) bone rotations (unmapped bones: their parent's)."""
    t = glob.shape[0]
    out = np.zeros((t, rig.num_bones, 3, 3))
    for b, joint in enumerate(rig.sources):
        if joint >= 0:
            out[:, b] = glob[:, joint]
        elif rig.parents[b] >= 0:
            out[:, b] = out[:, rig.parents[b]]
        else:
            out[:, b] = np.eye(3)
    return out


def _translations(rig: Rig, rest: np.ndarray, joints: np.ndarray, bone_rot: np.ndarray) -> np.ndarray:
    """(T, B, 3) local translations: rest, except the mapped chains and the root (module doc, 4)."""
    t = joints.shape[0]
    out = np.broadcast_to(rest, (t, *rest.shape)).copy()
    for b, joint in enumerate(rig.sources):
        if joint <= 0:
            continue
        ancestor, between = rig.mapped_ancestor(b)
        segment = joints[:, joint] - joints[:, SMPL22.parents[joint]]  # (T, 3), world
        local = np.einsum("tba,tb->ta", bone_rot[:, ancestor], segment)  # in the ancestor's frame
        f = _fractions(rig, between, b)
        for k, bone in enumerate([*between, b]):
            out[:, bone] = local * (f[k] - (f[k - 1] if k else 0.0))
    root = rig.bone_of()[0]
    pelvis = joints[:, 0]
    above = [b for b in range(root) if _is_above(rig, b, root)]
    if above:  # e.g. UE5 `root`: horizontal motion on the ground bone, height on the pelvis
        out[:, above[-1]] = pelvis * np.array([1.0, 0.0, 1.0])
        out[:, root] = pelvis * np.array([0.0, 1.0, 0.0])
    else:
        out[:, root] = pelvis
    return out


def retarget(joints: np.ndarray, rig: Rig, fps: float = SMPL22.fps) -> RigAnimation:
    """(T, 22, 3) HumanML3D joint positions (metres, Y up) -> RigAnimation of `rig` (see the module doc)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (SMPL22.num_joints, 3) or len(joints) < 1:
        raise ValueError(f"joints must have shape (T >= 1, 22, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or inf")
    offsets = rig_offsets(joints, rig)
    glob = fit_rotations(joints, offsets, SMPL22.parents, from_fk=False)
    bone_rot = _global_rotations(rig, glob)
    local = bone_rot.copy()
    has_parent = np.asarray(rig.parents) >= 0
    parent_rot = bone_rot[:, np.asarray(rig.parents)[has_parent]]
    local[:, has_parent] = np.einsum("tjba,tjbc->tjac", parent_rot, bone_rot[:, has_parent])
    rest = _rest(rig, offsets)
    root = rig.bone_of()[0]
    above = [b for b in range(root) if _is_above(rig, b, root)]
    return RigAnimation(rig=rig, rest=rest, rotations=qfix(matrix_to_quat(local)),
                        translations=_translations(rig, rest, joints, bone_rot), fps=float(fps),
                        motion_root=above[-1] if above else root)


def world_transforms(anim: RigAnimation, with_trajectory: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics: ((T, B, 3) world positions, (T, B, 3, 3) world rotations) of every bone."""
    rig = anim.rig
    local = quat_to_matrix(anim.rotations)
    t = anim.num_frames
    rot = np.zeros((t, rig.num_bones, 3, 3))
    pos = np.zeros((t, rig.num_bones, 3))
    for b, p in enumerate(rig.parents):
        if p < 0:
            rot[:, b] = local[:, b]
            pos[:, b] = anim.translations[:, b]
        else:
            rot[:, b] = rot[:, p] @ local[:, b]
            pos[:, b] = pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], anim.translations[:, b])
    if with_trajectory and anim.trajectory is not None:
        pos = pos + anim.trajectory[:, None]
    return pos, rot


def mapped_positions(anim: RigAnimation, with_trajectory: bool = True) -> np.ndarray:
    """(T, 22, 3) world positions of the bones that follow our joints, in our joint order."""
    pos, _ = world_transforms(anim, with_trajectory)
    bone_of = anim.rig.bone_of()
    return pos[:, [bone_of[j] for j in range(SMPL22.num_joints)]]


def in_place(anim: RigAnimation) -> RigAnimation:
    """Take the horizontal root motion out of the skeleton into `trajectory` (height and facing stay)."""
    translations = anim.translations.copy()
    horizontal = translations[:, anim.motion_root] * np.array([1.0, 0.0, 1.0])
    translations[:, anim.motion_root] -= horizontal
    return anim.with_(translations=translations, trajectory=horizontal)
