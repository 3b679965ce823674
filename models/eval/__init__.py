"""Evaluators (official T2M and ours) and the HumanML3D metrics (issue 5)."""

from models.eval.metrics import (
    MatchingStats,
    MetricResult,
    MMSafeResult,
    aggregate,
    confidence_interval,
    diversity,
    euclidean_distance_matrix,
    fid,
    frechet_distance,
    mm_safe,
    multimodality,
    r_precision_and_matching,
)
from models.evaluator.our_evaluator import OurEvaluator, OurEvaluatorConfig, contrastive_loss
from models.evaluator.protocol import Evaluator
from models.evaluator.t2m_evaluator import T2MEvaluator, T2MEvaluatorConfig, load_official_evaluator
from models.evaluator.word_vectorizer import WordVectorizer

__all__ = [
    "Evaluator",
    "MMSafeResult",
    "MatchingStats",
    "MetricResult",
    "OurEvaluator",
    "OurEvaluatorConfig",
    "T2MEvaluator",
    "T2MEvaluatorConfig",
    "WordVectorizer",
    "aggregate",
    "confidence_interval",
    "contrastive_loss",
    "diversity",
    "euclidean_distance_matrix",
    "fid",
    "frechet_distance",
    "load_official_evaluator",
    "mm_safe",
    "multimodality",
    "r_precision_and_matching",
    "run_evaluation",
]


def __getattr__(name: str):
    """`run_evaluation` (the benchmark runner, used by the worker) is imported on first use."""
    if name == "run_evaluation":
        from models.eval.run import run_evaluation

        return run_evaluation
    raise AttributeError(f"module 'models.eval' has no attribute {name!r}")
