"""Feature extraction and joint recovery against the real HumanML3D files (reference §5-§6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models.motion.features import (
    feature_slices,
    features_to_joints,
    forward_kinematics,
    inverse_kinematics,
    joints_to_features,
    recover_root,
    uniform_skeleton,
)
from models.motion.quaternion import qrot
from models.motion.skeleton import KIT21, SMPL22, get_skeleton


def shared_dir() -> Path:
    return Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


def load(kind: str, clip: str) -> np.ndarray:
    path = shared_dir() / "data" / "humanml3d" / kind / f"{clip}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: set HMU_SHARED_DIR to the folder holding data/humanml3d")
    return np.load(path, allow_pickle=False)


def yaw(angle: np.ndarray) -> np.ndarray:
    angle = np.asarray(angle, dtype=np.float64)
    return np.stack([np.cos(angle / 2), 0 * angle, np.sin(angle / 2), 0 * angle], -1)


@pytest.fixture(scope="module")
def clip012314():
    return load("new_joint_vecs", "012314"), load("new_joints", "012314")


def test_feature_slices_cover_the_vector():
    for j, dim in ((22, 263), (21, 251)):
        sl = list(feature_slices(j).values())
        assert sl[0].start == 0 and sl[-1].stop == dim
        assert all(a.stop == b.start for a, b in zip(sl[:-1], sl[1:], strict=True))
    assert feature_slices(22)["rot6d"] == slice(67, 193)
    assert feature_slices(22)["contacts"] == slice(259, 263)


def test_features_to_joints_matches_stored_joints(clip012314):
    feats, joints = clip012314
    rec = features_to_joints(feats)
    assert rec.shape == (170, 22, 3) and rec.dtype == np.float32
    assert np.abs(rec - joints).max() <= 1e-5
    rec_t = features_to_joints(torch.from_numpy(feats))
    assert isinstance(rec_t, torch.Tensor) and rec_t.dtype == torch.float32
    assert (rec_t.numpy() - joints).__abs__().max() <= 1e-6  # float32 torch, as the official script


def test_joints_to_features_reproduces_stored_features(clip012314):
    """new_joints/012314 (170 frames) are the raw clip's first 170 frames, but the official extraction
    saw 171 frames. The heading is smoothed with a Gaussian (σ = 20, radius 80, mode 'nearest'), so the
    smoothed heading of frame t sees the missing last frame only if t + 80 >= 170: the features of
    frames 0..88 (which use headings of t and t+1) are reproduced to float precision, the last 80 frames
    drift (most in the blocks that depend on the heading: rot6d, ric), contacts are identical throughout.
    """
    feats, joints = clip012314
    ours = joints_to_features(joints)
    assert ours.shape == (169, 263) and ours.dtype == np.float32
    ref = feats[:-1]
    head = {"root_rot_vel": 1e-6, "root_lin_vel": 1e-6, "root_y": 1e-6, "ric": 5e-6, "rot6d": 2e-5,
            "local_vel": 1e-5}
    # measured maxima over frames 89..168: 3.0e-4, 1.4e-4, 6e-8, 6.8e-3, 1.32e-2, 4.1e-4
    tail = {"root_rot_vel": 4e-4, "root_lin_vel": 2e-4, "root_y": 1e-6, "ric": 8e-3, "rot6d": 1.6e-2,
            "local_vel": 5e-4}
    for name, sl in feature_slices(22).items():
        err = np.abs(ours[:, sl] - ref[:, sl])
        if name == "contacts":
            assert (err == 0).all()
            continue
        assert err[:89].max() <= head[name], name
        assert err[89:].max() <= tail[name], name
        assert np.median(err) <= 1e-6, name
    assert np.abs(ours[89:, 67:193] - ref[89:, 67:193]).max() > 1e-3  # the tail really is the smoothing


def test_official_heading_wrap_quirk_and_fix():
    """The official extraction does not make root quaternions sign-continuous: when the heading crosses
    180° channel 0 flips sign for one frame. Stored 000612 shows it at frame 142."""
    feats = load("new_joint_vecs", "000612")
    heading = np.degrees(2 * np.cumsum(feats[:, 0]))  # heading change at frame t+1, degrees
    assert 170 < heading[140] < 180 < heading.max()
    assert feats[141, 0] > 0.04 and feats[142, 0] < -0.04 and feats[143, 0] > 0.04

    joints = features_to_joints(feats)  # 199 frames
    official = joints_to_features(joints)
    fixed = joints_to_features(joints, fix_heading_wrap=True)
    # away from the wrap and the clip end the re-extraction matches the stored features
    assert np.abs(official[:55] - feats[:55]).max() <= 2e-5
    # the fix makes features_to_joints an exact inverse; the official variant turns the wrong way
    assert np.abs(features_to_joints(fixed) - joints[:-1]).max() <= 1e-5
    err = np.abs(features_to_joints(official) - joints[:-1]).max(axis=(1, 2))
    assert err[:140].max() <= 1e-5 and err.max() > 0.05
    wrap = np.flatnonzero(np.sign(official[:, 0]) != np.sign(fixed[:, 0]))
    assert len(wrap) == 1 and 140 <= wrap[0] <= 150


def test_round_trip_on_recovered_joints():
    joints = features_to_joints(load("new_joint_vecs", "000612"))[:140]  # before its heading wrap
    floor = joints[..., 1].min()  # the crop is re-floored by the extraction
    assert floor > 1e-3
    rec = features_to_joints(joints_to_features(joints))
    assert np.abs(rec[..., [0, 2]] - joints[:-1, :, [0, 2]]).max() <= 1e-5
    assert np.abs(rec[..., 1] - (joints[:-1, :, 1] - floor)).max() <= 1e-5


def test_round_trip_with_spinning_motion(clip012314):
    _, joints = clip012314
    spin = yaw(np.linspace(0, 4 * np.pi, len(joints)))[:, None]  # two full turns
    root_xz = joints[:, :1] * np.array([1.0, 0.0, 1.0])
    spun = qrot(spin, joints - root_xz) + root_xz
    feats = joints_to_features(spun, fix_heading_wrap=True)
    # the heading quaternion undoes the body's yaw, so channel 0 integrates to minus the turn (less at
    # the clip ends, where the σ = 20 smoothing with 'nearest' padding lags)
    assert 2 * feats[:, 0].sum() < -2 * np.pi
    assert np.abs(features_to_joints(feats) - spun[:-1]).max() <= 1e-5
    # the official variant breaks at every ±180° crossing
    official = joints_to_features(spun)
    assert np.abs(features_to_joints(official) - spun[:-1]).max() > 0.05


def test_features_invariant_to_world_yaw_and_translation(clip012314):
    _, joints = clip012314
    moved = qrot(yaw(0.7), joints.astype(np.float64)) + np.array([1.5, 0.3, -2.0])
    assert np.abs(joints_to_features(moved) - joints_to_features(joints)).max() <= 1e-5


def test_torch_numpy_and_batch_dims_agree():
    a = load("new_joint_vecs", "012314")
    b = load("new_joint_vecs", "000612")[:170]
    batch = np.stack([a, b])  # (2, T, 263)
    rec = features_to_joints(batch)
    assert rec.shape == (2, 170, 22, 3)
    for i, x in enumerate((a, b)):
        assert np.abs(rec[i] - features_to_joints(x)).max() <= 1e-5
    rec_t = features_to_joints(torch.from_numpy(batch).double()[None].expand(3, -1, -1, -1))
    assert rec_t.shape == (3, 2, 170, 22, 3) and rec_t.dtype == torch.float64
    assert np.abs(rec_t[1].numpy() - rec).max() <= 1e-5
    quat, pos = recover_root(torch.from_numpy(batch))
    assert quat.shape == (2, 170, 4) and pos.shape == (2, 170, 3)
    assert torch.allclose(pos, torch.from_numpy(rec[..., 0, :]), atol=1e-5)
    # differentiable, as the generation/eval code may need
    x = torch.from_numpy(a).requires_grad_()
    features_to_joints(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_ik_fk_round_trip_and_retarget(clip012314):
    _, joints = clip012314
    joints = joints.astype(np.float64)
    for smooth in (False, True):
        quats = inverse_kinematics(joints, SMPL22, smooth_forward=smooth)
        assert np.allclose(np.linalg.norm(quats, axis=-1), 1.0)
        assert np.allclose(quats[0, 0], [1, 0, 0, 0])  # quirk 2
        pos = forward_kinematics(quats, joints[:, 0], SMPL22.offsets_from_positions(joints[0]), SMPL22)
        assert np.abs(pos - joints).max() <= 1e-5
    # a 1.3x bigger person is retargeted back onto the canonical bone lengths, root scaled by 1/1.3
    big = joints * 1.3
    back = uniform_skeleton(big, "t2m")
    assert np.abs(SMPL22.bone_lengths(back) - np.asarray(SMPL22.target_lengths)).max() <= 1e-6
    assert np.abs(back - joints).max() <= 1e-5


def test_kit_variant_on_synthetic_clip():
    rng = np.random.default_rng(0)
    n = 30
    lengths = rng.uniform(50.0, 400.0, size=21)  # millimetres
    offsets = KIT21.directions * lengths[:, None]
    axis = rng.normal(size=(21, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = 0.3 * np.sin(np.linspace(0, 3, n))[:, None] + rng.uniform(-0.3, 0.3, size=21)
    local = np.concatenate([np.cos(angle / 2)[..., None], np.sin(angle / 2)[..., None] * axis], -1)
    local[:, 0] = yaw(np.linspace(0, 1, n))
    root = np.stack([np.linspace(0, 500, n), np.full(n, 1000.0), np.zeros(n)], -1)
    joints = forward_kinematics(local, root, offsets, KIT21)
    with pytest.raises(ValueError, match="target"):
        joints_to_features(joints, "kit")
    feats = joints_to_features(joints, "kit", target_offsets=offsets)
    assert feats.shape == (n - 1, 251) and np.isfinite(feats).all()
    rec = features_to_joints(feats)  # 21 joints inferred from 251
    assert rec.shape == (n - 1, 21, 3)
    assert np.abs(KIT21.bone_lengths(rec) - lengths * (np.arange(21) > 0)).max() <= 1e-3  # mm
    assert rec[..., 1].min() >= -1e-3 and np.abs(rec[0, 0, [0, 2]]).max() <= 1e-6


def test_speed_200_frames(clip012314):
    _, joints = clip012314
    clip = np.concatenate([joints, joints[::-1]])[:200]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        joints_to_features(clip)
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"{best * 1000:.1f} ms"


def test_bad_inputs():
    good = np.zeros((5, 22, 3))
    with pytest.raises(ValueError, match="shape"):
        joints_to_features(good[:, :21])
    with pytest.raises(ValueError, match="frames"):
        joints_to_features(good[:1])
    bad = good.copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        joints_to_features(bad)
    with pytest.raises(ValueError, match="leg length is zero"):
        joints_to_features(good)
    collapsed = load("new_joints", "012314")[:5].copy()
    collapsed[:, 20] = collapsed[:, 18]  # left forearm of length 0
    with pytest.raises(ValueError, match="zero-length bone 18->20"):
        joints_to_features(collapsed)
    with pytest.raises(ValueError, match="12"):
        features_to_joints(np.zeros((4, 100)))
    with pytest.raises(ValueError, match="dataset"):
        get_skeleton("amass")
    with pytest.raises(ValueError, match="feet_threshold"):
        joints_to_features(load("new_joints", "012314"), feet_threshold=0)
