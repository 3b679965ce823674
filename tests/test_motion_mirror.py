"""Left/right mirroring of joints and caption text, and the skeleton tables it relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.motion.mirror import mirror_joints, mirror_permutation, mirror_text
from models.motion.skeleton import KIT21, LEFT_RIGHT_PAIRS, SMPL22


def test_skeleton_tables():
    assert SMPL22.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    assert SMPL22.feature_dim == 263 and KIT21.feature_dim == 251
    for sk in (SMPL22, KIT21):
        names = sk.joint_names
        for left, right in LEFT_RIGHT_PAIRS[sk.name]:
            assert names[left].startswith("left_") and names[right] == "right_" + names[left][5:]
        feet = [names[i] for i in sk.feet_left + sk.feet_right]
        assert all(n.startswith("left_") for n in feet[:2]) and all(n.startswith("right_") for n in feet[2:])
    r_hip, l_hip, r_sdr, l_sdr = SMPL22.face_joints
    assert (SMPL22.joint_names[r_hip], SMPL22.joint_names[l_sdr]) == ("right_hip", "left_shoulder")


def test_mirror_joints_is_an_involution_and_swaps_sides():
    rng = np.random.default_rng(0)
    for sk in (SMPL22, KIT21):
        joints = rng.normal(size=(4, 7, sk.num_joints, 3))
        m = mirror_joints(joints, sk)
        assert np.array_equal(mirror_joints(m, sk), joints)
        perm = mirror_permutation(sk)
        assert np.array_equal(m[..., 0], -joints[..., perm, 0])
        assert np.array_equal(m[..., 1:], joints[..., perm, 1:])
        left, right = LEFT_RIGHT_PAIRS[sk.name][0]
        assert np.array_equal(m[..., left, 1], joints[..., right, 1])
        # bone lengths are preserved joint-for-joint after the swap
        assert np.allclose(sk.bone_lengths(m), sk.bone_lengths(joints)[..., perm])
    t = torch.from_numpy(joints)
    assert torch.equal(mirror_joints(mirror_joints(t, "kit"), "kit"), t)
    with pytest.raises(ValueError, match="shape"):
        mirror_joints(np.zeros((5, 21, 3)), "t2m")


def test_mirror_text():
    text = "A person raises their Left hand, then turns RIGHT and walks leftwards."
    assert mirror_text(text) == "A person raises their Right hand, then turns LEFT and walks rightwards."
    for t in (text, "left-right-left", "he is on the right; she is left.", "leftmost, rightward"):
        assert mirror_text(mirror_text(t)) == t
    assert mirror_text("left-right-left") == "right-left-right"
    untouched = "all right, right away a bright man leaves rightly right now"
    assert mirror_text(untouched) == untouched
    assert mirror_text("spins clockwise, then Counter-clockwise") == "spins counterclockwise, then Clockwise"
    assert mirror_text("spins clockwise", swap_rotation=False) == "spins clockwise"
    with pytest.raises(ValueError, match="str"):
        mirror_text(None)
