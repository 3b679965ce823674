"""HumanML3D / KIT-ML feature vector: joints -> features (`process_file`) and features -> joints
(`recover_from_ric`). Follows reference/humanml3d-format.md §5-§6, official quirks included.

Feature layout for J joints (dim 12J - 1; 263 for t2m, 251 for kit), see `feature_slices`:
root rot-vel (1) | root lin-vel xz (2) | root y (1) | ric (J-1)*3 | rot6d (J-1)*6 | local vel J*3 | contacts 4
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from models.motion._array import Array, cat, cos, sin, stack, zeros_like
from models.motion.quaternion import (
    IDENTITY,
    cross,
    normalize,
    qbetween,
    qfix,
    qinv,
    qmul,
    qrot,
    quat_to_cont6d,
)
from models.motion.skeleton import Skeleton, get_skeleton

_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])
SMOOTH_SIGMA = 20.0  # frames, gaussian smoothing of the heading when smooth_forward=True


def feature_slices(joints_num: int = 22) -> dict[str, slice]:
    """Named blocks of the 12J-1 feature vector, in order (also the normalisation groups of §7.1)."""
    if joints_num < 2:
        raise ValueError(f"joints_num must be >= 2, got {joints_num}")
    sizes = {
        "root_rot_vel": 1,
        "root_lin_vel": 2,
        "root_y": 1,
        "ric": (joints_num - 1) * 3,
        "rot6d": (joints_num - 1) * 6,
        "local_vel": joints_num * 3,
        "contacts": 4,
    }
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


def feature_dim(joints_num: int) -> int:
    return 12 * joints_num - 1


def joints_num_from_dim(dim: int) -> int:
    """263 -> 22, 251 -> 21."""
    if dim < 23 or (dim + 1) % 12:
        raise ValueError(f"feature dim {dim} is not of the form 12*J - 1")
    return (dim + 1) // 12


def _check_positions(positions: np.ndarray, skeleton: Skeleton, min_frames: int = 1) -> np.ndarray:
    p = np.asarray(positions)
    j = skeleton.num_joints
    if p.ndim != 3 or p.shape[1:] != (j, 3):
        raise ValueError(f"positions must have shape (N, {j}, 3) for skeleton {skeleton.name!r}, "
                         f"got {p.shape}")
    if p.shape[0] < min_frames:
        raise ValueError(f"positions need at least {min_frames} frames, got {p.shape[0]}")
    if not np.isfinite(p).all():
        raise ValueError("positions contain NaN or inf")
    return p.astype(np.float64)


def _heading_quats(across: np.ndarray, smooth_forward: bool) -> np.ndarray:
    """(N, 3) right-pointing 'across' vectors -> (N, 4) yaw quaternions that turn the body to face +Z."""
    forward = cross(_UP, normalize(across))
    if smooth_forward:
        forward = gaussian_filter1d(forward, SMOOTH_SIGMA, axis=0, mode="nearest")
    return qbetween(normalize(forward), _FORWARD)


def inverse_kinematics(positions: np.ndarray, skeleton: Skeleton | str = "t2m",
                       smooth_forward: bool = False) -> np.ndarray:
    """(N, J, 3) positions -> (N, J, 4) local quaternions, official `inverse_kinematics_np` quirks kept.

    Quirk 1: across = (p[i1] - p[i0]) + (p[i2] - p[i3]) with (i0, i1, i2, i3) = face joints, i.e. the hip
    term points left while the shoulder term points right. Quirk 2: the root quaternion of frame 0 is the
    identity. Quirk 3: every chain starts from the root heading, so chains that begin at a non-root joint
    (the arms at spine3) store their first rotation relative to the root heading, not to their parent.
    Each joint stores the twist-free rotation taking its raw direction onto its bone (relative to the
    accumulated chain rotation).
    """
    sk = get_skeleton(skeleton)
    p = _check_positions(positions, sk)
    i0, i1, i2, i3 = sk.face_joints
    across = (p[:, i1] - p[:, i0]) + (p[:, i2] - p[:, i3])
    root = _heading_quats(across, smooth_forward)
    root[0] = IDENTITY

    dirs = sk.directions
    quats = np.zeros(p.shape[:-1] + (4,))
    quats[:, 0] = root
    for chain in sk.kinematic_chains:
        r = root
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            bone = p[:, b] - p[:, a]
            norm = np.linalg.norm(bone, axis=-1, keepdims=True)
            if (norm < 1e-12).any():
                raise ValueError(f"zero-length bone {a}->{b} in positions; cannot compute its rotation")
            local = qmul(qinv(r), qbetween(dirs[b], bone / norm))
            quats[:, b] = local
            r = qmul(r, local)
    return quats


def forward_kinematics(local_quats: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray,
                       skeleton: Skeleton | str = "t2m") -> np.ndarray:
    """Inverse of `inverse_kinematics`: (N, J, 4) local quats, (N, 3) root, (J, 3) or (N, J, 3) offsets
    -> (N, J, 3) positions. Every chain starts from the root rotation (matching quirk 3)."""
    sk = get_skeleton(skeleton)
    q = np.asarray(local_quats, dtype=np.float64)
    n, j = q.shape[0], sk.num_joints
    if q.shape != (n, j, 4):
        raise ValueError(f"local_quats must have shape (N, {j}, 4), got {q.shape}")
    root_positions = np.asarray(root_positions, dtype=np.float64)
    if root_positions.shape != (n, 3):
        raise ValueError(f"root_positions must have shape ({n}, 3), got {root_positions.shape}")
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.shape not in ((j, 3), (n, j, 3)):
        raise ValueError(f"offsets must have shape ({j}, 3) or ({n}, {j}, 3), got {offsets.shape}")
    offsets = np.broadcast_to(offsets, (n, j, 3))
    out = np.zeros((n, j, 3))
    out[:, 0] = root_positions
    for chain in sk.kinematic_chains:
        r = q[:, 0]
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            r = qmul(r, q[:, b])
            out[:, b] = qrot(r, offsets[:, b]) + out[:, a]
    return out


def uniform_skeleton(positions: np.ndarray, skeleton: Skeleton | str = "t2m",
                     target_offsets: np.ndarray | None = None) -> np.ndarray:
    """Retarget (N, J, 3) positions onto the canonical bone lengths (§5.3 step 1).

    The root trajectory is scaled by target_leg / source_leg (legs measured on frame 0 from the
    max-abs component of the two `leg_joints` offsets); bone rotations are kept (IK without smoothing,
    then FK with the target offsets). target_offsets defaults to `skeleton.target_offsets()`.
    """
    sk = get_skeleton(skeleton)
    p = _check_positions(positions, sk)
    tgt = sk.target_offsets() if target_offsets is None else np.asarray(target_offsets, dtype=np.float64)
    if tgt.shape != (sk.num_joints, 3):
        raise ValueError(f"target_offsets must have shape ({sk.num_joints}, 3), got {tgt.shape}")
    src = sk.offsets_from_positions(p[0])
    l1, l2 = sk.leg_joints
    src_leg = np.abs(src[l1]).max() + np.abs(src[l2]).max()
    tgt_leg = np.abs(tgt[l1]).max() + np.abs(tgt[l2]).max()
    if src_leg <= 0:
        raise ValueError("source leg length is zero; cannot compute the retarget scale")
    quats = inverse_kinematics(p, sk, smooth_forward=False)
    return forward_kinematics(quats, p[:, 0] * (tgt_leg / src_leg), tgt, sk)


def foot_contacts(positions: np.ndarray, feet: tuple[int, ...], threshold: float) -> np.ndarray:
    """(N, J, 3) -> (N-1, len(feet)) float: 1 where the squared displacement to the next frame < threshold."""
    disp = positions[1:, list(feet)] - positions[:-1, list(feet)]
    return ((disp**2).sum(-1) < threshold).astype(np.float64)


def joints_to_features(positions: np.ndarray, dataset: str | Skeleton = "t2m",
                       feet_threshold: float | None = None,
                       target_offsets: np.ndarray | None = None,
                       fix_heading_wrap: bool = False) -> np.ndarray:
    """(N, J, 3) world joints (Y up, 20 fps for t2m) -> (N-1, 12J-1) float32 features (official process_file).

    Steps (§5.3): retarget to the canonical skeleton, put on the floor, move the frame-0 root to the XZ
    origin, rotate so frame 0 faces +Z, foot contacts, IK with heading smoothing (σ = 20 frames), then
    assemble root velocities, rotation-invariant positions (ric), cont6d rotations, local velocities
    and contacts. feet_threshold defaults to the dataset's (0.002 t2m, 0.05 kit); target_offsets
    defaults to the dataset's canonical skeleton (required for kit, whose lengths are unknown).

    Quirk (official, kept by default): the root quaternions are not made sign-continuous, so at a frame
    where the smoothed heading crosses ±180° (relative to frame 0) channel 0 gets the wrong sign and
    the recovered trajectory turns by ~4·|channel 0| the wrong way from there on. The real
    new_joint_vecs/000612.npy shows it at frame 142. fix_heading_wrap=True applies the sign continuity
    fix (`qfix`) to the root quaternions so that `features_to_joints` inverts this function exactly.
    """
    sk = get_skeleton(dataset)
    p = _check_positions(positions, sk, min_frames=2)
    thr = sk.feet_threshold if feet_threshold is None else float(feet_threshold)
    if not thr > 0:
        raise ValueError(f"feet_threshold must be > 0, got {feet_threshold}")

    # 1-3. retarget, floor, XZ origin
    p = uniform_skeleton(p, sk, target_offsets)
    p[..., 1] -= p[..., 1].min()
    p -= p[0, 0] * np.array([1.0, 0.0, 1.0])
    # 4. face +Z at frame 0 (here both terms point to the body's right)
    r_hip, l_hip, r_sdr, l_sdr = sk.face_joints
    across = (p[0, r_hip] - p[0, l_hip]) + (p[0, r_sdr] - p[0, l_sdr])
    p = qrot(_heading_quats(across[None], smooth_forward=False), p)
    # 5. contacts from the global positions
    feet_l = foot_contacts(p, sk.feet_left, thr)
    feet_r = foot_contacts(p, sk.feet_right, thr)
    # 6. rotations (only channel 0 depends on quaternion signs, hence on the optional qfix)
    quats = inverse_kinematics(p, sk, smooth_forward=True)
    if fix_heading_wrap:
        quats = qfix(quats)
    cont6d = quat_to_cont6d(quats)  # (N, J, 6)
    r_rot = quats[:, 0]  # (N, 4)
    root_vel = qrot(r_rot[1:], p[1:, 0] - p[:-1, 0])  # (N-1, 3)
    r_vel = qmul(r_rot[1:], qinv(r_rot[:-1]))  # (N-1, 4)
    # 7. rotation-invariant coordinates
    ric = p - p[:, :1] * np.array([1.0, 0.0, 1.0])
    ric = qrot(r_rot[:, None], ric)
    local_vel = qrot(r_rot[:-1, None], p[1:] - p[:-1])  # (N-1, J, 3)
    # 8. assemble
    n1 = p.shape[0] - 1
    feats = np.concatenate(
        [
            np.arcsin(np.clip(r_vel[:, 2:3], -1.0, 1.0)),
            root_vel[:, [0, 2]],
            ric[:-1, 0, 1:2],
            ric[:-1, 1:].reshape(n1, -1),
            cont6d[:-1, 1:].reshape(n1, -1),
            local_vel.reshape(n1, -1),
            feet_l,
            feet_r,
        ],
        axis=-1,
    )
    return feats.astype(np.float32)


def _check_features(features: Array, joints_num: int | None) -> int:
    if features.ndim < 2:
        raise ValueError(f"features must have shape (..., T, D), got {tuple(features.shape)}")
    d = features.shape[-1]
    j = joints_num_from_dim(d) if joints_num is None else int(joints_num)
    if j < 2 or d < 4 + (j - 1) * 3:
        raise ValueError(f"features of dim {d} are too small for {j} joints")
    return j


def recover_root(features: Array) -> tuple[Array, Array]:
    """De-normalised features (..., T, D) -> root heading quats (..., T, 4) and root positions (..., T, 3).

    Heading half-angle θ = exclusive cumsum of channel 0, q = (cos θ, 0, sin θ, 0); the root planar
    displacement of frame t is channels 1:3 of frame t-1 rotated by q[t]^-1, integrated over time;
    height = channel 3. Works on numpy arrays and torch tensors (any leading dims).
    """
    if features.ndim < 2 or features.shape[-1] < 4:
        raise ValueError(f"features must have shape (..., T, D>=4), got {tuple(features.shape)}")
    f = features
    zero = zeros_like(f[..., :1, 0])  # (..., 1)
    theta = cat([zero, f[..., :-1, 0]], -1).cumsum(-1)  # (..., T)
    zeros_t = zeros_like(theta)
    r_quat = stack([cos(theta), zeros_t, sin(theta), zeros_t], -1)  # (..., T, 4)
    vel = cat([zeros_like(f[..., :1, 1:3]), f[..., :-1, 1:3]], -2)  # (..., T, 2) = (vx, vz) of frame t-1
    step = stack([vel[..., 0], zeros_t, vel[..., 1]], -1)
    step = qrot(qinv(r_quat), step)
    r_pos = step.cumsum(-2)
    r_pos = stack([r_pos[..., 0], f[..., 3], r_pos[..., 2]], -1)
    return r_quat, r_pos


def features_to_joints(features: Array, joints_num: int | None = None) -> Array:
    """(..., T, D) de-normalised features -> (..., T, J, 3) joints (official `recover_from_ric`).

    joints_num defaults to (D + 1) / 12. numpy in -> numpy out, torch in -> torch out (same dtype/device).
    """
    j = _check_features(features, joints_num)
    r_quat, r_pos = recover_root(features)
    local = features[..., 4 : 4 + (j - 1) * 3]
    local = local.reshape(tuple(local.shape[:-1]) + (j - 1, 3))  # (..., T, J-1, 3)
    local = qrot(qinv(r_quat)[..., None, :], local)
    root_xz = stack([r_pos[..., 0], zeros_like(r_pos[..., 0]), r_pos[..., 2]], -1)
    local = local + root_xz[..., None, :]
    return cat([r_pos[..., None, :], local], -2)
