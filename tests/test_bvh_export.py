"""BVH export: read the file back with the project's BVH reader, run FK, compare with the input joints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from models.data.bvh import forward_kinematics, parse_bvh
from models.motion.bvh_export import joints_to_bvh, matrix_to_euler_zxy, rest_offsets
from models.motion.features import features_to_joints
from models.motion.skeleton import SMPL22

SHARED = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
CLIP = SHARED / "data" / "humanml3d" / "new_joint_vecs" / "012314.npy"


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    assert CLIP.is_file(), f"HumanML3D sample {CLIP} is missing (set HMU_SHARED_DIR)"
    return features_to_joints(np.load(CLIP, allow_pickle=False).astype(np.float64))  # (T, 22, 3)


def read_back(text: str) -> tuple[np.ndarray, object]:
    """BVH text -> ((T, 22, 3) positions in metres in SMPL22 joint order, parsed BVH)."""
    bvh = parse_bvh(text)
    order = [bvh.names.index(name) for name in SMPL22.joint_names]
    return forward_kinematics(bvh)[:, order] / 100.0, bvh


def test_round_trip_matches_a_real_motion(joints):
    text = joints_to_bvh(joints, fps=20)
    positions, bvh = read_back(text)
    assert bvh.n_frames == len(joints) and bvh.frame_time == pytest.approx(0.05)
    error = np.linalg.norm(positions - joints, axis=-1)
    # measured: max 2.6e-6 m (the 4 decimals of the file); the hips/collars would be ~14 cm off if the
    # sibling geometry of pelvis/spine3 were not fitted, and any wrong Euler order is off by decimetres
    assert error.max() < 1e-4, f"max position error {error.max():.2e} m"


def test_hierarchy_and_channels(joints):
    _, bvh = read_back(joints_to_bvh(joints[:5], fps=12.5))
    assert sorted(bvh.names) == sorted(SMPL22.joint_names) and len(bvh.joints) == 22
    parents = {j.name: (bvh.names[j.parent] if j.parent >= 0 else None) for j in bvh.joints}
    expected = {name: (SMPL22.joint_names[p] if p >= 0 else None)
                for name, p in zip(SMPL22.joint_names, SMPL22.parents, strict=True)}
    assert parents == expected
    root = bvh.joints[0]
    assert root.name == "pelvis" and root.channels == ["Xposition", "Yposition", "Zposition",
                                                       "Zrotation", "Xrotation", "Yrotation"]
    assert all(j.channels == ["Zrotation", "Xrotation", "Yrotation"] for j in bvh.joints[1:])
    leaves = {SMPL22.joint_names[i] for i in (10, 11, 15, 20, 21)}
    assert {j.name for j in bvh.joints if j.end_site is not None} == leaves
    assert bvh.n_frames == 5 and bvh.fps == pytest.approx(12.5)
    # rest offsets in centimetres: bone lengths are the target lengths
    by_name = {j.name: j for j in bvh.joints}
    lengths = [np.linalg.norm(by_name[n].offset) for n in SMPL22.joint_names[1:]]
    np.testing.assert_allclose(lengths, np.array(SMPL22.target_lengths[1:]) * 100, atol=1e-4)


def test_rest_pose_keeps_raw_directions_for_unbranched_bones(joints):
    offsets = rest_offsets(joints, SMPL22)
    raw = SMPL22.target_offsets()
    parents, branching = SMPL22.parents, {0, 9}  # pelvis and spine3 have several children
    for i in range(1, 22):
        if parents[i] not in branching:
            np.testing.assert_allclose(offsets[i], raw[i], atol=1e-12)
    assert offsets[1, 0] > 0 > offsets[2, 0] and offsets[1, 1] < 0  # hips sideways and down
    assert offsets[3, 1] > 0.9 * SMPL22.target_lengths[3]  # spine1 up


def test_euler_decomposition_round_trips():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-np.pi, np.pi, (200, 3)) * np.array([1, 0.49, 1])  # z, x in (-pi/2, pi/2), y

    def axis(a: np.ndarray, k: int) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        m = np.zeros(a.shape + (3, 3))
        i, j = [(1, 2), (2, 0), (0, 1)][k]
        m[..., k, k], m[..., i, i], m[..., j, j], m[..., i, j], m[..., j, i] = 1, c, c, -s, s
        return m

    m = axis(angles[:, 0], 2) @ axis(angles[:, 1], 0) @ axis(angles[:, 2], 1)
    np.testing.assert_allclose(matrix_to_euler_zxy(m), angles, atol=1e-9)


def test_walk_moves_root_and_is_finite(joints):
    positions, bvh = read_back(joints_to_bvh(joints))
    assert np.isfinite(bvh.motion).all()
    np.testing.assert_allclose(bvh.motion[:, :3] / 100, joints[:, 0], atol=1e-6)
    assert np.abs(np.diff(bvh.motion[:, 3:], axis=0)).max() < 180  # unwrapped angles, no 360 jumps


@pytest.mark.parametrize("bad", [np.zeros((10, 21, 3)), np.zeros((22, 3)), np.zeros((0, 22, 3)),
                                 np.full((4, 22, 3), np.nan)])
def test_bad_input_raises(bad):
    with pytest.raises(ValueError, match="joints"):
        joints_to_bvh(bad)


def test_bad_fps_raises(joints):
    with pytest.raises(ValueError, match="fps"):
        joints_to_bvh(joints[:2], fps=0)
