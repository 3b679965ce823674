"""Thin adapters from the worker tasks to the model-side entry points.

Each function names exactly one implementation; while that implementation is not in the tree the
function raises `AdapterUnavailable`, and the job fails with a clear "not available yet" error.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.jobstore import JobError
from models.eval.config import EvalConfig
from models.unlearn.config import UnlearnConfig

Progress = Callable[[float, str], None]
log = logging.getLogger(__name__)
WARM_MODULES = ("models.pipelines", "models.unlearn.run", "models.eval.run", "models.motion.bvh_export")


class AdapterUnavailable(JobError):
    def __init__(self, what: str, where: str):
        super().__init__("not_available", f"{what} is not available yet in this installation "
                                          f"({where} is missing)")


def warm_imports() -> None:
    """Import the model side once, in the main thread, before the task threads start.

    Task threads that import the same (circularly imported) packages for the first time at once can see
    partially initialised modules (ImportError or KeyError inside a job); importing up front avoids it.
    """
    for name in WARM_MODULES:  # models.unlearn.run imports every registered method
        try:
            importlib.import_module(name)
        except ImportError as error:  # the job that needs it fails with a clear error later
            log.warning("could not import %s: %s", name, error)


def _entry_point(module_name: str, function: str, what: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise AdapterUnavailable(what, f"{module_name}.{function}") from error
        raise
    impl = getattr(module, function, None)
    if impl is None:
        raise AdapterUnavailable(what, f"{module_name}.{function}")
    return impl


def run_unlearning(*, base_model_dir: Path, out_dir: Path, method: str, concept: str | None,
                   keywords: list[str] | None, parameters: dict[str, Any], data_dir: Path | None, device: str,
                   progress: Progress) -> dict[str, Any]:
    """Unlearn a concept from the model at `base_model_dir`; write the new native model to `out_dir`.

    `data_dir`: HumanML3D-format data for the methods that need it. Returns the new model's manifest.
    """
    impl = _entry_point("models.unlearn.run", "run_unlearning", "unlearning")
    config = UnlearnConfig(model=base_model_dir, method=method, out_dir=out_dir, concept=concept, keywords=keywords,
                           params=parameters, data_dir=data_dir, device=device)
    return dict(impl(config, progress))


def run_evaluation(*, models: dict[str, Path], forget_dir: Path, retain_dir: Path, out_dir: Path,
                   parameters: dict[str, Any], device: str, progress: Progress) -> dict[str, Any]:
    """Evaluate `models` (id -> folder) on a forget and a retain set (HumanML3D layout); return the report."""
    impl = _entry_point("models.eval.run", "run_evaluation", "evaluation")
    config = EvalConfig.with_parameters(parameters, models=models, forget_dir=forget_dir, retain_dir=retain_dir,
                                        out_dir=out_dir, device=device)
    report = impl(config, progress)
    return dict(report)


def joints_to_bvh(joints: np.ndarray, fps: int) -> str:
    """BVH text of a (T, 22, 3) joint motion."""
    impl = _entry_point("models.motion.bvh_export", "joints_to_bvh", "BVH export")
    return str(impl(joints, fps=fps))
