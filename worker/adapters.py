"""Thin adapters from the worker tasks to the model-side entry points (one implementation each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.eval.config import EvalConfig
from models.eval.run import run_evaluation as _run_evaluation
from models.eval.verify import verifiable, verify_checkpoint
from models.motion.bvh_export import joints_to_bvh as _joints_to_bvh
from models.motion.export import ExportedMotion, ExportOptions, export_motion
from models.pipelines import default_model_dir
from models.unlearn.config import UnlearnConfig
from models.unlearn.run import run_unlearning as _run_unlearning

Progress = Callable[[float, str], None]


def run_unlearning(*, base_model_dir: Path, out_dir: Path, method: str, concept: str | None,  # reason: job fields
                   keywords: list[str] | None, parameters: dict[str, Any], data_dir: Path | None, device: str,
                   progress: Progress, guard: bool | None = None) -> dict[str, Any]:
    """Unlearn a concept from the model at `base_model_dir`; write the new native model to `out_dir`.

    `data_dir`: HumanML3D-format data for the methods that need it. Returns the new model's manifest.
    """
    config = UnlearnConfig(model=base_model_dir, method=method, out_dir=out_dir, concept=concept, keywords=keywords,
                           params=parameters, data_dir=data_dir, device=device, guard=guard)
    return dict(_run_unlearning(config, progress))


def verify_unlearned(model: Path, parent: Path, concept: str | None, max_prompts: int | None,
                     progress: Progress) -> dict[str, Any] | None:
    """The fast safety verification of a new model (None when its concept has no frozen prompt sets)."""
    if concept is None or not verifiable(concept):
        return None
    if not default_model_dir("violence-classifier").is_dir():
        return {"verified": None, "skipped": "no violence classifier in the weights folder"}
    report = verify_checkpoint(model, parent, concept, max_prompts=max_prompts, progress=progress)
    return {"verified": report["verified"], "cut": report["cut"], "stability": report["stability"]["rate"],
            "seconds": report["seconds"]}


def run_evaluation(*, models: dict[str, Path], forget_dir: Path, retain_dir: Path, out_dir: Path,
                   parameters: dict[str, Any], device: str, progress: Progress) -> dict[str, Any]:
    """Evaluate `models` (id -> folder) on a forget and a retain set (HumanML3D layout); return the report."""
    config = EvalConfig.with_parameters(parameters, models=models, forget_dir=forget_dir, retain_dir=retain_dir,
                                        out_dir=out_dir, device=device)
    return dict(_run_evaluation(config, progress))


def joints_to_bvh(joints: np.ndarray, fps: int) -> str:
    """BVH text of a (T, 22, 3) joint motion."""
    return str(_joints_to_bvh(joints, fps=fps))


def export_file(joints: np.ndarray, fmt: str, fields: dict[str, Any]) -> ExportedMotion:
    """A (T, 22, 3) joint motion as a BVH or .glb file; `fields`: skeleton, fps, root_motion, loop of the job."""
    options = ExportOptions(format=fmt, skeleton=fields.get("skeleton"), fps=int(fields.get("fps") or 20),
                            root_motion=fields.get("root_motion") or "world", loop=bool(fields.get("loop")))
    return export_motion(joints, options)
