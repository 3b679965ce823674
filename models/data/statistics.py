"""Mean / std of the training frames, accumulated motion by motion (`Mean.npy`, `Std.npy`)."""

from __future__ import annotations

import numpy as np

from models.motion.normalize import group_average_std


class RunningStats:
    """Per-dimension mean / population std over the rows of many arrays (Chan et al. merge, float64)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        nb = x.shape[0]
        if nb == 0 or not np.isfinite(x).all():
            return
        mb = x.mean(0)
        m2b = ((x - mb) ** 2).sum(0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    def result(self, joints_num: int) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            raise ValueError("no training frames to compute Mean/Std from")
        std = np.sqrt(self.m2 / self.n)
        return self.mean.astype(np.float32), group_average_std(std, joints_num).astype(np.float32)
