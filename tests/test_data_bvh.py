"""BVH reader: parsing, channel orders, forward kinematics, resampling, and agreement with the shared
mocap joints of the same Bandai Namco clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.data.bvh import bvh_to_joints, forward_kinematics, parse_bvh, read_bvh, resample


def shared_data() -> Path:
    path = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
    if not (path / "bvh").is_dir():
        raise FileNotFoundError(f"{path}/bvh missing: set HMU_SHARED_DIR to the folder holding data/")
    return path


def two_joint_bvh(root_channels: str, values: str, frame_time: str = "0.0333333") -> str:
    n = len(root_channels.split())
    return f"""HIERARCHY
ROOT hips
{{
  OFFSET 0 0 0
  CHANNELS {n} {root_channels}
  JOINT chest
  {{
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 2 0
    }}
  }}
}}
MOTION
Frames: 1
Frame Time: {frame_time}
{values} 0 0 0
"""


def test_channel_order_defines_rotation_order():
    # Z then X: Rz(90) @ Rx(90) takes the child offset (0,1,0) to (0,0,1); X then Z gives (-1,0,0)
    zx = parse_bvh(two_joint_bvh("Xposition Yposition Zposition Zrotation Xrotation", "1 2 3 90 90"))
    xz = parse_bvh(two_joint_bvh("Xposition Yposition Zposition Xrotation Zrotation", "1 2 3 90 90"))
    np.testing.assert_allclose(forward_kinematics(zx)[0], [[1, 2, 3], [1, 2, 4]], atol=1e-9)
    np.testing.assert_allclose(forward_kinematics(xz)[0], [[1, 2, 3], [0, 2, 3]], atol=1e-9)
    assert zx.names == ["hips", "chest"] and zx.parents == [-1, 0]
    np.testing.assert_allclose(zx.joints[1].end_site, [0, 2, 0])


def test_rotation_only_root_uses_offset():
    bvh = parse_bvh(two_joint_bvh("Yrotation", "90"))
    np.testing.assert_allclose(forward_kinematics(bvh)[0], [[0, 0, 0], [0, 1, 0]], atol=1e-9)


def test_malformed_bvh_is_rejected(tmp_path):
    good = two_joint_bvh("Xposition Yposition Zposition Zrotation Xrotation", "1 2 3 90 90")
    with pytest.raises(ValueError, match="values"):
        parse_bvh(good.replace("1 2 3 90 90 0 0 0", "1 2 3 90 90 0 0"))
    with pytest.raises(ValueError, match="channel"):
        parse_bvh(good.replace("Xrotation Yrotation", "Wrotation Yrotation"))
    with pytest.raises(ValueError, match="HIERARCHY"):
        parse_bvh("MOTION\nFrames: 0\n")
    with pytest.raises(FileNotFoundError):
        read_bvh(tmp_path / "missing.bvh")


def test_resample_30_to_20_fps_is_linear():
    x = np.arange(273, dtype=np.float64)[:, None] * 3.0  # a ramp sampled at 30 fps
    y = resample(x, 1 / 0.0333333, 20.0)
    assert y.shape == (182, 1)  # floor(273 * 20 / 30), robust to the rounded frame time
    np.testing.assert_allclose(y[:, 0], np.arange(182) * 1.5 * 3.0, atol=1e-3)


@pytest.fixture(scope="module")
def bandai() -> dict:
    mocap = shared_data() / "mocap" / "bandai_namco"
    with np.load(mocap / "bandai_namco_joints20fps.npz") as npz:
        out = {k: npz[k] for k in ("joints", "offsets", "joint_names")}
    out["clips"] = json.loads((mocap / "clips.json").read_text())
    return out


@pytest.mark.parametrize(
    "clip",
    ["dataset-1_kick_normal_001", "dataset-1_punch_normal_001", "dataset-2_run_active_001",
     "dataset-2_walk_normal_001"],
)  # fmt: skip
def test_bvh_matches_shared_joints(clip, bandai):
    """The shared npz joints are the BVH FK in metres (same axes, no root offset) at 20 fps, stored as
    float16: our import agrees to float16 rounding (measured: <= 0.5 ulp, i.e. <= 0.49 mm near 1 m and
    <= 2 mm at 5 m from the origin)."""
    bvh = read_bvh(shared_data() / "bvh" / f"{clip}.bvh")
    ours = bvh_to_joints(bvh)  # cm -> m, 30 -> 20 fps
    i = [c["id"] for c in bandai["clips"]].index(clip)
    ref = bandai["joints"][bandai["offsets"][i] : bandai["offsets"][i + 1]]
    assert bvh.names == [str(n) for n in bandai["joint_names"]]
    assert ours.shape == ref.shape == (bandai["clips"][i]["n_frames"], 22, 3)
    ulp = np.spacing(np.abs(ref)).astype(np.float64)  # float16 spacing at each stored value
    err = np.abs(ours - ref.astype(np.float64))
    assert (err <= 0.5 * ulp + 1e-6).all(), err.max()
    assert err.max() < 2.5e-3
