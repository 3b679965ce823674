"""Training of the default models (VQ, masked / residual / BAMM transformers, length estimator, evaluator)."""

from models.train.config import STAGES, TrainConfig, load_config
from models.train.loops import (
    RunOptions,
    StageResult,
    train_bamm,
    train_evaluator,
    train_length_estimator,
    train_mask,
    train_residual,
    train_vq,
)

__all__ = ["STAGES", "RunOptions", "StageResult", "TrainConfig", "load_config", "train_bamm",
           "train_evaluator", "train_length_estimator", "train_mask", "train_residual", "train_vq"]
