"""Joint positions -> BVH (Biovision Hierarchy) text, with joint rotations fitted by a clean IK.

The file:
* HIERARCHY: one joint per skeleton joint (names from `Skeleton.joint_names`, parents from its
  kinematic chains), written depth first; leaves end with an `End Site`. Rest pose: OFFSET = target
  bone length x raw offset direction (legs down, feet forward, arms hanging from the collars), except
  for the children of a branching joint (pelvis -> hips + spine1, spine3 -> neck + collars): one
  rotation per joint can place several children only if their rest geometry is the motion's, so their
  directions are the clip's mean sibling geometry, Procrustes-aligned to the raw directions (on
  HumanML3D the two hips are 69 degrees apart seen from the pelvis, not 180; raw directions would put
  the hips and collars ~14 cm off). A skeleton without target lengths (KIT) takes the bone lengths
  of the first frame. The root has 6 channels (Xposition Yposition Zposition
  Zrotation Xrotation Yrotation), every other joint 3 (Zrotation Xrotation Yrotation), i.e. the
  local rotation is R = Rz @ Rx @ Ry, the usual intrinsic BVH reading.
* Units: centimetres (the usual BVH unit; `models.data.bvh.bvh_to_joints` reads it back with its
  default scale 0.01). Blender's importer keeps file units as metres, so import with Scale = 0.01 to
  get a 1.7 m person. Axes are kept: Y up, the body faces +Z at rest (Blender's default axis
  conversion, forward -Z / up Y, turns this into its Z-up world).
* MOTION: one line per frame, Frame Time = 1 / fps.

The IK, per frame and in topological order, aims every joint at its observed children from the joint's
*reconstructed* position (so fitting errors do not accumulate down a chain):
* one child: the minimal rotation, in the parent's frame, carrying the rest offset onto the observed
  bone (twist is inherited from the parent);
* several children (pelvis, spine3): the orthogonal Procrustes (Kabsch) fit of the rest offsets to
  the observed child offsets;
* leaves: no rotation of their own (local identity).
Positions are exact up to the non-rigidity of the sibling geometry over the clip (HumanML3D data keeps
it rigid to ~0.01 degrees and its bones have the target lengths: sub-millimetre round trips).
"""

from __future__ import annotations

import numpy as np

from models.motion.quaternion import qbetween, quat_to_matrix
from models.motion.skeleton import SMPL22, Skeleton

CM_PER_M = 100.0
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
END_SITE_FRACTION = 0.5  # End Site = this fraction of the leaf's own rest offset, continuing its bone


def _children(parents: tuple[int, ...]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            kids[p].append(j)
    return kids


def _depth_first(children: list[list[int]], root: int = 0) -> list[int]:
    order, stack = [], [root]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _kabsch(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(C, 3) rest, (T, C, 3) observed offsets -> (T, 3, 3) rotations R minimising |R rest - observed|^2."""
    h = np.einsum("ci,tcj->tij", rest, observed)  # (T, 3, 3) cross-covariance
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("tji,tkj->tik", vt, u)))  # det(V U^T): avoid reflections
    d[d == 0] = 1.0
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[:, 2, 2] = d
    return np.einsum("tji,tjk,tlk->til", vt, fix, u)  # V diag(1, 1, d) U^T


def fit_rotations(joints: np.ndarray, offsets: np.ndarray, parents: tuple[int, ...],
                  from_fk: bool = True) -> np.ndarray:
    """(T, J, 3) positions, (J, 3) rest offsets -> (T, J, 3, 3) global joint rotations (see module doc).

    `from_fk=False` aims every joint at its children from its observed position instead of the
    reconstructed one: right for an animation that also translates its bones to the observed lengths.
    """
    t, j = joints.shape[:2]
    children = _children(parents)
    order = _depth_first(children)
    glob = np.zeros((t, j, 3, 3))
    rec = np.zeros((t, j, 3))  # reconstructed (FK) positions
    rec[:, order[0]] = joints[:, order[0]]
    for i in order:
        parent_rot = glob[:, parents[i]] if parents[i] >= 0 else np.broadcast_to(np.eye(3), (t, 3, 3))
        if parents[i] >= 0:
            rec[:, i] = rec[:, parents[i]] + np.einsum("tab,b->ta", parent_rot, offsets[i])
        kids = children[i]
        if not kids:
            glob[:, i] = parent_rot
            continue
        observed = joints[:, kids] - (rec if from_fk else joints)[:, i, None]  # (T, C, 3)
        if len(kids) > 1:
            glob[:, i] = _kabsch(offsets[kids], observed)
            continue
        # one child: swing the rest offset onto the observed bone, in the parent's frame
        bone = np.einsum("tba,tb->ta", parent_rot, observed[:, 0])  # parent_rot^T @ observed
        rest = np.broadcast_to(offsets[kids[0]], bone.shape)
        short = np.linalg.norm(bone, axis=-1) < 1e-9
        bone = np.where(short[:, None], rest, bone)  # coincident joints: keep the rest direction
        glob[:, i] = parent_rot @ quat_to_matrix(qbetween(rest, bone))
    return glob


def matrix_to_euler_zxy(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) angles (z, x, y) in radians with m = Rz(z) @ Rx(x) @ Ry(y)."""
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    lock = np.abs(m[..., 2, 1]) > 1.0 - 1e-9  # cos(x) = 0: only z + y (or z - y) is defined; put it in z
    z = np.where(lock, np.arctan2(m[..., 1, 0], m[..., 0, 0]), z)
    y = np.where(lock, 0.0, y)
    return np.stack([z, x, y], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def rest_offsets(joints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(T, J, 3) positions -> (J, 3) rest offsets of the exported skeleton (see the module doc)."""
    if skeleton.target_lengths is not None:
        offsets = skeleton.target_offsets()
    else:
        offsets = skeleton.offsets_from_positions(joints[0])  # e.g. KIT: the first frame's bone lengths
    return align_siblings(joints, offsets, skeleton.parents)


def align_siblings(joints: np.ndarray, offsets: np.ndarray, parents: tuple[int, ...]) -> np.ndarray:
    """Rest offsets whose children of a branching joint take the clip's mean sibling geometry.

    (T, J, 3) positions, (J, 3) base offsets (lengths and rest directions) -> (J, 3): the children of a
    joint with several children keep their lengths, and their directions become the clip's mean
    geometry rotated (Procrustes) onto the base directions; the other offsets are returned unchanged.
    """
    offsets = np.array(offsets, dtype=np.float64)
    children = _children(parents)
    for i, kids in enumerate(children):
        if len(kids) < 2:
            continue
        lengths = np.linalg.norm(offsets[kids], axis=-1)  # (C,)
        bones = joints[:, kids] - joints[:, i, None]  # (T, C, 3)
        bones = _unit(bones) * lengths[:, None]
        r = _kabsch(offsets[kids], bones)  # frame of the joint, best aligned with the base directions
        shape = np.einsum("tba,tcb->ca", r, bones) / len(joints)  # mean of r^T @ bones: (C, 3)
        offsets[kids] = _unit(shape) * lengths[:, None]
    return offsets


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def joints_to_bvh(joints: np.ndarray, fps: float = 20.0, skeleton: Skeleton = SMPL22) -> str:
    """(T, J, 3) joint positions in metres, Y up -> BVH text (centimetres, ZXY Euler degrees).

    Rest offsets are `rest_offsets(joints, skeleton)`; rotations are fitted as described in the module doc.
    """
    joints = np.asarray(joints, dtype=np.float64)
    j = skeleton.num_joints
    if joints.ndim != 3 or joints.shape[1:] != (j, 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must have shape (T >= 1, {j}, 3) for skeleton {skeleton.name!r}, "
                         f"got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or inf")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")

    parents = skeleton.parents
    offsets = rest_offsets(joints, skeleton)
    glob = fit_rotations(joints, offsets, parents)
    local = glob.copy()
    has_parent = np.asarray(parents) >= 0
    local[:, has_parent] = np.einsum("tjba,tjbc->tjac", glob[:, np.asarray(parents)[has_parent]],
                                     glob[:, has_parent])  # parent^T @ global
    euler = np.unwrap(np.degrees(matrix_to_euler_zxy(local)), period=360.0, axis=0)  # (T, J, 3)

    children = _children(parents)
    order = _depth_first(children)
    lines = ["HIERARCHY"]
    depth_of = {order[0]: 0}
    open_depths: list[int] = []  # depths of joints whose block is still open
    for i in order:
        depth = depth_of[i]
        while open_depths and open_depths[-1] >= depth:
            lines.append("  " * open_depths.pop() + "}")
        pad = "  " * depth
        name = skeleton.joint_names[i]
        if parents[i] < 0:
            lines += [f"ROOT {name}", "{", f"{pad}  OFFSET 0.0000 0.0000 0.0000",
                      f"{pad}  CHANNELS 6 {' '.join(ROOT_CHANNELS)}"]
        else:
            lines += [f"{pad}JOINT {name}", f"{pad}{{", f"{pad}  OFFSET {_fmt(offsets[i] * CM_PER_M)}",
                      f"{pad}  CHANNELS 3 {' '.join(JOINT_CHANNELS)}"]
        if not children[i]:
            end = offsets[i] * END_SITE_FRACTION * CM_PER_M
            lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(end)}", f"{pad}  }}"]
        for c in children[i]:
            depth_of[c] = depth + 1
        open_depths.append(depth)
    while open_depths:
        lines.append("  " * open_depths.pop() + "}")

    root = joints[:, order[0]] * CM_PER_M
    frames = np.concatenate([root, euler[:, order].reshape(len(joints), -1)], axis=1)
    lines += ["MOTION", f"Frames: {len(joints)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [_fmt(row) for row in frames]
    return "\n".join(lines) + "\n"
