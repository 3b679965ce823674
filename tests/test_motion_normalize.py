"""Normaliser and dataset statistics (reference humanml3d-format.md §7) on the real Mean/Std files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.motion.features import feature_slices
from models.motion.normalize import Normalizer, apply_feat_bias, compute_statistics


def data_dir() -> Path:
    shared = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
    path = shared / "data" / "humanml3d"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} missing: set HMU_SHARED_DIR to the folder holding data/humanml3d")
    return path


def test_real_statistics_load_and_are_group_averaged():
    norm = Normalizer.from_files(data_dir())
    assert norm.dim == 263 and norm.joints_num == 22
    expected = [0.012826, 0.016927, 0.153766, 0.122244, 0.299692, 0.019470, 0.355933]  # reference §7.1
    for value, sl in zip(expected, feature_slices(22).values(), strict=True):
        group = norm.std[sl]
        assert np.ptp(group) == 0 and abs(group[0] - value) < 2e-6
    assert abs(norm.mean[3] - 0.93855) < 1e-5


def test_normalize_round_trip_numpy_and_torch():
    norm = Normalizer.from_files(data_dir())
    x = np.load(data_dir() / "new_joint_vecs" / "012314.npy")
    z = norm.normalize(x)
    assert np.allclose(z, (x - norm.mean) / norm.std)
    assert np.allclose(norm.denormalize(z), x, atol=1e-5)
    zt = norm.normalize(torch.from_numpy(x).double()[None])  # (1, T, 263) float64
    assert zt.dtype == torch.float64 and zt.shape == (1, 170, 263)
    assert np.allclose(zt[0].numpy(), z, atol=1e-5)
    assert torch.allclose(norm.denormalize(zt), torch.from_numpy(x).double(), atol=1e-5)
    with pytest.raises(ValueError, match="263"):
        norm.normalize(np.zeros((3, 251)))


def test_compute_statistics_structure():
    clips = [np.load(data_dir() / "new_joint_vecs" / f"{c}.npy") for c in ("012314", "000612")]
    nan_clip = clips[0].copy()
    nan_clip[3, 5] = np.nan
    mean, std = compute_statistics([*clips, nan_clip], joints_num=22)  # the NaN clip is skipped
    data = np.concatenate(clips).astype(np.float64)
    assert mean.dtype == np.float32 and std.shape == (263,)
    assert np.allclose(mean, data.mean(0), atol=1e-6)
    raw_std = data.std(0)
    for sl in feature_slices(22).values():
        assert np.ptp(std[sl]) == 0
        assert np.isclose(std[sl][0], raw_std[sl].mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="no finite"):
        compute_statistics([nan_clip])
    with pytest.raises(ValueError, match=r"\(T, 251\)"):
        compute_statistics(clips, joints_num=21)


def test_feat_bias_once_and_official_twice():
    std = Normalizer.from_files(data_dir()).std
    once, twice = apply_feat_bias(std), apply_feat_bias(std, times=2)
    sl = feature_slices(22)
    for name in ("root_rot_vel", "root_lin_vel", "root_y", "contacts"):
        assert np.allclose(std[sl[name]] / once[sl[name]], 5)
        assert np.allclose(std[sl[name]] / twice[sl[name]], 25)
    for name in ("ric", "rot6d", "local_vel"):
        assert np.array_equal(once[sl[name]], std[sl[name]])
    assert std[3] == Normalizer.from_files(data_dir()).std[3]  # the input is not modified in place


def test_from_files_validation(tmp_path):
    with pytest.raises(FileNotFoundError, match="Mean.npy"):
        Normalizer.from_files(tmp_path)
    np.save(tmp_path / "mean.npy", np.zeros(263, np.float32))
    np.save(tmp_path / "std.npy", np.zeros(263, np.float32))
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalizer.from_files(tmp_path)
    np.save(tmp_path / "std.npy", np.full(263, np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.from_files(tmp_path)
    np.save(tmp_path / "std.npy", np.ones(100, np.float32))
    with pytest.raises(ValueError, match="equal shape"):
        Normalizer.from_files(tmp_path)
    np.save(tmp_path / "std.npy", np.ones(263, np.float32))
    assert Normalizer.from_files(tmp_path).dim == 263
