"""Text-to-motion pipelines: one object owns text encoder, RVQ tokenizer and transformers.

`MotionPipeline` (models/pipelines/base.py) is the shared base; `MoMaskPipeline` and `BAMMPipeline` are the
model families. Importing this package registers both, so `MotionPipeline.from_pretrained(path)` returns the
family the checkpoint holds.
"""

from models.pipelines.bamm import BAMMPipeline
from models.pipelines.base import MotionPipeline
from models.pipelines.constants import (
    DEFAULT_MODEL,
    FPS,
    JOINTS_NUM,
    MAX_FRAMES,
    MAX_TOKENS,
    UNIT_LENGTH,
    WEIGHTS_DIR,
    default_model_dir,
)
from models.pipelines.momask import MoMaskPipeline
from models.pipelines.outputs import GeneratedMotion, make_generators

__all__ = [
    "BAMMPipeline",
    "DEFAULT_MODEL",
    "FPS",
    "JOINTS_NUM",
    "MAX_FRAMES",
    "MAX_TOKENS",
    "MoMaskPipeline",
    "UNIT_LENGTH",
    "WEIGHTS_DIR",
    "GeneratedMotion",
    "MotionPipeline",
    "default_model_dir",
    "make_generators",
]
