"""Mapping of the shared mocap skeletons onto the SMPL 22-joint chain: sane bones, correct sides,
facing direction and feet on the floor (checked in the heading frame of the HumanML3D features)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.data.skeletons import map_to_smpl, synth_foot
from models.data.sources import load_shared_clips
from models.motion.features import joints_to_features
from models.motion.skeleton import SMPL22

SHARED = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
WALKS = {"bandai_namco": "dataset-2_walk_normal_001", "ase_reallusion": "WalkForward01", "cmu": "02_01"}
OTHERS = {"bandai_namco": "dataset-1_kick_normal_001", "ase_reallusion": "Atk_Kick", "cmu": "02_05"}


def first_clip(content: str) -> str:
    clips = json.loads((SHARED / "mocap" / "bandai_namco" / "clips.json").read_text())
    return next(c["id"] for c in clips if c["content"] == content and c["n_frames"] > 41)


@pytest.fixture(scope="module")
def clips() -> dict:
    ids = (
        set(WALKS.values())
        | set(OTHERS.values())
        | {first_clip("wave-left-hand"), first_clip("wave-right-hand")}
    )
    out = {(c.source, c.clip_id): c for c in load_shared_clips(SHARED, ids=ids)}
    assert len(out) == len(ids)
    return out


def ric(joints: np.ndarray) -> np.ndarray:
    """(T-1, 22, 3) joints in the heading frame (body faces +Z, floor at y = 0), root included."""
    f = joints_to_features(joints)
    r = np.zeros((f.shape[0], 22, 3))
    r[:, 0, 1] = f[:, 3]
    r[:, 1:] = f[:, 4:67].reshape(-1, 21, 3)
    return r


@pytest.mark.parametrize("source", sorted(WALKS))
def test_bones_are_sane(clips, source):
    for clip_id in (WALKS[source], OTHERS[source]):
        bones = SMPL22.bone_lengths(clips[(source, clip_id)].joints)[:, 1:]
        assert bones.min() > 0.02 and bones.max() < 0.6, (clip_id, bones.min(), bones.max())
        # nearly rigid: each bone keeps its length (synthesised joints included) within 8 % (the 20 fps
        # linear resampling of the sources shortens bones a little in fast moves)
        assert ((bones.max(0) - bones.min(0)) / bones.mean(0)).max() < 0.08


@pytest.mark.parametrize("source", sorted(WALKS))
def test_sides_facing_and_floor(clips, source):
    p = ric(clips[(source, WALKS[source])].joints)
    # SMPL convention: facing +Z, the left joints are at +X
    for left, right in ((1, 2), (16, 17), (13, 14), (4, 5)):
        assert np.mean(p[:, left, 0] > p[:, right, 0]) > 0.95, (left, right)
    # the body faces its forward direction: balls of the feet ahead of the ankles, knees ahead of the
    # hip-ankle line, head above the pelvis
    toe_ahead = p[:, [10, 11], 2] - p[:, [7, 8], 2]
    assert np.mean(toe_ahead > 0) > 0.8 and (np.median(toe_ahead, 0) > 0.05).all()
    knee_ahead = p[:, [4, 5], 2] - 0.5 * (p[:, [1, 2], 2] + p[:, [7, 8], 2])
    assert np.mean(knee_ahead > 0) > 0.9
    assert (p[:, 15, 1] > p[:, 0, 1] + 0.4).all()
    # walking: one foot is always on (near) the floor
    lowest_foot = p[:, [7, 8, 10, 11], 1].min(1)
    assert np.mean(lowest_foot < 0.1) > 0.95


def test_wave_labels_match_smpl_sides(clips):
    for content, side in (("wave-left-hand", 20), ("wave-right-hand", 21)):
        p = ric(clips[("bandai_namco", first_clip(content))].joints)
        other = 41 - side
        assert p[:, side, 1].max() > p[:, other, 1].max() + 0.3, content


def test_synth_foot_follows_the_shin():
    left_hip, right_hip = np.array([[0.1, 0.9, 0.0]]), np.array([[-0.1, 0.9, 0.0]])  # facing +Z
    standing = synth_foot(np.array([[0.1, 0.1, 0.0]]), np.array([[0.1, 0.5, 0.0]]), left_hip, right_hip)
    d = standing[0] - [0.1, 0.1, 0.0]
    assert d[2] > 0.1 and -0.1 < d[1] < 0 and abs(d[0]) < 1e-9  # forward and a little down
    kick = synth_foot(np.array([[0.1, 0.9, 0.8]]), np.array([[0.1, 0.9, 0.4]]), left_hip, right_hip)
    d = kick[0] - [0.1, 0.9, 0.8]
    assert d[1] > 0.1  # shin horizontal forward: the foot points up


def test_map_to_smpl_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown source"):
        map_to_smpl(np.zeros((2, 22, 3)), "mixamo")
    with pytest.raises(ValueError, match="shape"):
        map_to_smpl(np.zeros((2, 21, 3)), "cmu")
    with pytest.raises(ValueError, match="names"):
        map_to_smpl(np.zeros((2, 17, 3)), "ase_reallusion", joint_names=[f"j{i}" for i in range(17)])
