"""Feature normalisation: x_norm = (x - mean) / std, and the dataset statistics of reference §7."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from models.motion._array import Array, is_torch
from models.motion.features import feature_slices, joints_num_from_dim

ROOT_AND_CONTACT_GROUPS = ("root_rot_vel", "root_lin_vel", "root_y", "contacts")


def _check_stats(mean: np.ndarray, std: np.ndarray) -> None:
    if mean.ndim != 1 or mean.shape != std.shape:
        raise ValueError(f"mean and std must be 1-D of equal shape, got {mean.shape} and {std.shape}")
    joints_num_from_dim(mean.shape[0])  # raises for a dim that is not 12J - 1
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise ValueError("mean/std contain NaN or inf")
    if (std <= 0).any():
        raise ValueError(f"std must be > 0 everywhere; dims {np.flatnonzero(std <= 0)[:8].tolist()} are not")


class Normalizer:
    """Holds per-dimension mean/std (D,) float32 and (de)normalises numpy arrays or torch tensors (..., D)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        _check_stats(mean, std)
        self.mean, self.std = mean, std
        self._cache: dict = {}

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def joints_num(self) -> int:
        return joints_num_from_dim(self.dim)

    @classmethod
    def from_files(cls, directory: str | Path) -> Normalizer:
        """Load `Mean.npy`/`Std.npy` (dataset) or `mean.npy`/`std.npy` (checkpoint meta) from a directory."""
        directory = Path(directory)
        for names in (("Mean.npy", "Std.npy"), ("mean.npy", "std.npy")):
            paths = [directory / n for n in names]
            if all(p.is_file() for p in paths):
                return cls(*(np.load(p, allow_pickle=False) for p in paths))
        raise FileNotFoundError(f"no Mean.npy/Std.npy or mean.npy/std.npy in {directory}")

    def _stats_like(self, x: Array) -> tuple[Array, Array]:
        if not is_torch(x):
            return self.mean, self.std
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = tuple(
                torch.as_tensor(a, dtype=x.dtype, device=x.device) for a in (self.mean, self.std)
            )
        return self._cache[key]

    def _check(self, x: Array) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"last dimension must be {self.dim}, got shape {tuple(x.shape)}")

    def normalize(self, x: Array) -> Array:
        self._check(x)
        mean, std = self._stats_like(x)
        return (x - mean) / std

    def denormalize(self, x: Array) -> Array:
        self._check(x)
        mean, std = self._stats_like(x)
        return x * std + mean


def group_average_std(std: np.ndarray, joints_num: int) -> np.ndarray:
    """Replace every feature group's std by the group's average (reference §7.1)."""
    out = np.array(std, dtype=np.float64, copy=True)
    for sl in feature_slices(joints_num).values():
        out[sl] = out[sl].mean()
    return out


def compute_statistics(features: Iterable[np.ndarray], joints_num: int = 22) -> tuple[np.ndarray, np.ndarray]:
    """Mean and group-averaged std (float32, (D,)) over all frames of all (T, D) arrays.

    As the official cal_mean_variance: arrays containing NaN are skipped; std is the population std
    (ddof = 0) per dimension, then averaged within each group of `feature_slices`.
    """
    d = 12 * joints_num - 1
    kept = []
    for i, x in enumerate(features):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"array {i} must have shape (T, {d}), got {x.shape}")
        if np.isfinite(x).all():
            kept.append(x.astype(np.float64))
    if not kept:
        raise ValueError("no finite feature arrays to compute statistics from")
    data = np.concatenate(kept, axis=0)
    mean, std = data.mean(0), data.std(0)
    return mean.astype(np.float32), group_average_std(std, joints_num).astype(np.float32)


def apply_feat_bias(std: np.ndarray, joints_num: int = 22, feat_bias: float = 5.0,
                    times: int = 1) -> np.ndarray:
    """Training-time re-weighting (§7.2): divide the root and contact groups of std by feat_bias (copy).

    The official training scripts apply the division in place on a std array shared by the train and
    val datasets, so it happens twice and the saved `meta/std.npy` has those groups divided by 25.
    `times=1` is the intended behaviour; `times=2` reproduces the official checkpoints' statistics.
    """
    if feat_bias <= 0 or times < 0:
        raise ValueError(f"feat_bias must be > 0 and times >= 0, got {feat_bias}, {times}")
    out = np.array(std, copy=True)
    if out.shape != (12 * joints_num - 1,):
        raise ValueError(f"std must have shape ({12 * joints_num - 1},), got {out.shape}")
    slices = feature_slices(joints_num)
    for name in ROOT_AND_CONTACT_GROUPS:
        out[slices[name]] /= feat_bias**times
    return out
