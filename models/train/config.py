"""Training configuration: one dataclass for every stage, stored as JSON in configs/train/<stage>.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.common.config import DictConfig
from models.common.package_data import shipped_path

STAGES = ("vq", "mask", "res", "bamm", "length", "evaluator")
SCHEDULES = ("multistep", "cosine", "constant")
CONFIG_DIR = shipped_path("configs", "train")


@dataclass
class TrainConfig(DictConfig):
    stage: str
    size: str = "small"                  # preset of models/presets.py (ignored by length/evaluator)
    model: dict[str, Any] = field(default_factory=dict)  # extra overrides of the model config
    # optimisation
    iters: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    optimizer: str = "adamw"             # "adamw" | "adam"
    warmup_iters: int = 0                # linear warm-up from lr/warmup_iters to lr
    schedule: str = "multistep"
    milestones: list[float] = field(default_factory=list)  # fractions of `iters` (multistep)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0            # cosine floor as a fraction of lr
    grad_clip: float | None = None       # max grad norm, None = off
    # bookkeeping
    seed: int = 1234
    eval_every: int = 200                # validation ("epoch") every N iterations and at the end
    save_every: int = 200                # resumable checkpoint every N iterations and at the end
    val_items: int = 256                 # validation items (clips / captioned crops) per evaluation
    # data
    window_size: int = 64                # VQ training windows (frames)
    min_motion_len: int = 40             # text-motion items: T >= min_motion_len and T < max_clip_len
    max_clip_len: int = 200
    max_motion_len: int = 196            # padding target (frames)
    unit_length: int = 4
    feat_bias: float = 5.0               # root/contact std divided by this once (reference §7.2)
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"type": "minilm"})
    # losses
    commit_weight: float = 0.02          # VQ
    vel_weight: float = 0.5              # VQ (ric-slice term)
    notes: str = ""                      # free text (the iteration-speed arithmetic)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown training stage {self.stage!r}; expected one of {STAGES}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.optimizer not in ("adamw", "adam"):
            raise ValueError(f"optimizer must be 'adamw' or 'adam', got {self.optimizer!r}")
        for name in ("iters", "batch_size", "eval_every", "save_every", "val_items", "window_size",
                     "unit_length", "max_motion_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_iters < 0 or not 0 < self.gamma <= 1:
            raise ValueError("need lr > 0, warmup_iters >= 0 and 0 < gamma <= 1")
        if any(not 0 < m <= 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of iters in (0, 1], got {self.milestones}")
        if self.max_motion_len % self.unit_length:
            raise ValueError("max_motion_len must be a multiple of unit_length")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self.milestones = [float(m) for m in self.milestones]

    @property
    def max_tokens(self) -> int:
        return self.max_motion_len // self.unit_length

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def load_config(stage: str, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read `path` (default configs/train/<stage>.json), check its stage, apply keyword overrides."""
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; expected one of {STAGES}")
    path = Path(path) if path is not None else CONFIG_DIR / f"{stage}.json"
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from error
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object")
    d = {k: v for k, v in d.items() if not k.startswith("_")}  # "_comment" keys are documentation
    d.setdefault("stage", stage)
    if d["stage"] != stage:
        raise ValueError(f"{path} is a {d['stage']!r} config, not {stage!r}")
    return TrainConfig.from_dict({**d, **overrides})
