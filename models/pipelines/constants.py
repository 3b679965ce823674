"""Frame rate, token geometry and model locations shared by every pipeline."""

from __future__ import annotations

import os
from pathlib import Path

from models.common.package_data import shipped_path

FPS = 20
UNIT_LENGTH = 4
MAX_FRAMES = 196
MAX_TOKENS = MAX_FRAMES // UNIT_LENGTH
JOINTS_NUM = {"t2m": 22, "kit": 21}
WEIGHTS_DIR = shipped_path("weights")
DEFAULT_MODEL = "momask-small"


def default_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a shipped model (`weights/<name>` in the repo, or under HMU_WEIGHTS_DIR)."""
    return Path(os.environ.get("HMU_WEIGHTS_DIR", WEIGHTS_DIR)) / name
