"""RVQ-VAE training loss (official: SmoothL1 + 0.5 * SmoothL1 on the ric slice + 0.02 * commitment)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vq_loss(recon: torch.Tensor, target: torch.Tensor, commit_loss: torch.Tensor, joints_num: int = 22,
            commit_weight: float = 0.02, vel_weight: float = 0.5) -> torch.Tensor:
    """recon, target: (B, T, D) normalised features. The ric slice is [4, 4 + (joints_num - 1) * 3)."""
    if recon.shape != target.shape:
        raise ValueError(f"recon {tuple(recon.shape)} and target {tuple(target.shape)} shapes differ")
    end = 4 + (joints_num - 1) * 3
    if end > target.shape[-1]:
        raise ValueError(f"joints_num={joints_num} needs {end} feature dims, got {target.shape[-1]}")
    rec = F.smooth_l1_loss(recon, target)
    ric = F.smooth_l1_loss(recon[..., 4:end], target[..., 4:end])
    return rec + vel_weight * ric + commit_weight * commit_loss
