"""`Checkpoint`: the format-independent content of a text-to-motion model, as the format readers return it and
the writers take it.

The format layer (`models.io`) builds components (RVQ-VAE, transformers, length estimator, text encoder) from
configs and files; it never imports `models.pipelines`. A pipeline is made from a `Checkpoint`
(`MotionPipeline.from_checkpoint`) and turns itself into one to be saved (`MotionPipeline.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.bamm import BAMMTransformer
from models.common.sampling_config import SamplingConfig
from models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from models.text.base import TextEncoder
from models.vq import RVQVAE

# The "kind" of a checkpoint names the class of its base-layer transformer (the other components are shared).
BASE_TRANSFORMERS: dict[str, type[torch.nn.Module]] = {"momask": MaskTransformer, "bamm": BAMMTransformer}


@dataclass
class Checkpoint:
    """Every component and setting of one model; `sampling` holds the model's generation defaults."""

    kind: str
    text_encoder: TextEncoder
    vq: RVQVAE
    base: torch.nn.Module
    residual: ResidualTransformer
    length_estimator: LengthEstimator | None
    mean: np.ndarray | torch.Tensor
    std: np.ndarray | torch.Tensor
    dataset: str = "t2m"
    sampling: SamplingConfig | None = None
    card: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable components by file name in the native format."""
        parts = {"vq": self.vq, "base": self.base, "residual": self.residual}
        if self.length_estimator is not None:
            parts["length_estimator"] = self.length_estimator
        return parts


def base_transformer_class(kind: str) -> type[torch.nn.Module]:
    """The base-layer transformer class of a checkpoint kind (ValueError for an unknown kind)."""
    if kind not in BASE_TRANSFORMERS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(BASE_TRANSFORMERS)}")
    return BASE_TRANSFORMERS[kind]
