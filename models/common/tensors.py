"""Safe tensor loading and strict state-dict application (nothing but tensors is ever unpickled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def load_tar(path: str | Path) -> dict:
    """Load an official `.tar` checkpoint with `weights_only=True` (plain containers and tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing checkpoint file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError and friends; report which file
        raise ValueError(f"{path} is not a weights-only checkpoint (refusing to unpickle it): {error}") from error


def load_npy(path: str | Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Load a `.npy` array without pickle and check its shape and finiteness."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing array file {path}")
    array = np.load(path, allow_pickle=False)
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ValueError(f"{path} has shape {tuple(array.shape)}, expected {tuple(shape)}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError(f"{path} must hold finite numbers (dtype {array.dtype})")
    return array


def pick_state_dict(checkpoint: dict, keys: tuple[str, ...], source: str | Path) -> dict[str, torch.Tensor]:
    """Return the first of `keys` present in an official checkpoint dict."""
    for key in keys:
        if key in checkpoint:
            return checkpoint[key]
    raise KeyError(f"{source} holds none of the keys {list(keys)} (found {sorted(checkpoint)})")


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `state` into `module`; any missing, unexpected or mis-shaped key is an error that names it.

    Keys of the frozen CLIP model (`clip_model.*`), which the official savers drop, are ignored.
    """
    state = {k: v for k, v in state.items() if not k.startswith("clip_model.")}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if misshaped:
        problems.append(f"mis-shaped keys {misshaped}")
    if problems:
        raise ValueError(f"{source} does not match {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
