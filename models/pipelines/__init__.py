"""Text-to-motion pipelines: one object owns text encoder, RVQ tokenizer and transformers (MoMask, BAMM)."""

from models.pipelines.pipeline import (
    DEFAULT_MODEL,
    DEFAULT_SAMPLING,
    FPS,
    JOINTS_NUM,
    MAX_FRAMES,
    MAX_TOKENS,
    UNIT_LENGTH,
    WEIGHTS_DIR,
    GeneratedMotion,
    MotionPipeline,
    default_model_dir,
    make_generators,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SAMPLING",
    "FPS",
    "JOINTS_NUM",
    "MAX_FRAMES",
    "MAX_TOKENS",
    "UNIT_LENGTH",
    "WEIGHTS_DIR",
    "GeneratedMotion",
    "MotionPipeline",
    "default_model_dir",
    "make_generators",
]
