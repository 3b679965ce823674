"""Timelines (`segments`) and edits (`edit`) of generate jobs; they run unbatched, one model call per job.

Every generate job keeps its samples' features (`core.jobstore.motion_file`) so that a later edit can start
from them; an uploaded motion (POST /motions) is stored the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.jobstore import JobError, motion_file
from models.common.sampling_config import SamplingConfig
from models.pipelines.constants import FPS, UNIT_LENGTH
from models.pipelines.edit import edit_motion
from models.pipelines.timeline import Segment, generate_timeline


def run_timeline_or_edit(runtime: Any, request: dict[str, Any], model_id: str, seed: int,
                         config: SamplingConfig) -> list | None:
    """The motions of a timeline or edit request (ValueError -> bad_request), or None for a plain one."""
    segments, edit = request.get("segments"), request.get("edit")
    if not segments and not edit:
        return None
    pipeline = runtime.models.get(model_id)
    samples = int(request.get("num_samples", 1))
    try:
        if segments:
            parts = [Segment(s["text"], int(round(float(s["seconds"]) * FPS)) // UNIT_LENGTH * UNIT_LENGTH)
                     for s in segments]
            return generate_timeline(pipeline, parts, seed=seed, num_samples=samples, sampling=config)
        path = motion_file(runtime.settings.artifacts_dir, edit["source"], int(edit.get("sample", 0)))
        if not path.is_file():
            raise JobError("not_found", f"the motion of job {edit['source']} is gone (expired or never kept)")
        source = np.load(path, allow_pickle=False)
        return edit_motion(pipeline, source, request["text"], edit["keep"], seed=seed, num_samples=samples,
                           sampling=config)
    except ValueError as error:
        raise JobError("bad_request", str(error)) from error


def keep_features(artifacts_dir: Path | str, job_id: str, motions: list) -> None:
    """Write each sample's features beside the job (float32, exact) for later edits."""
    for i, motion in enumerate(motions):
        path = motion_file(artifacts_dir, job_id, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(motion.features, dtype=np.float32))


def sample_extras(motion: Any, request: dict[str, Any]) -> dict[str, Any]:
    """A timeline's segment spans or an edit's kept ranges for the result."""
    if getattr(motion, "boundaries", None):
        return {"segments": [{"text": text, "start": start, "end": end}
                             for text, (start, end) in zip(motion.texts, motion.boundaries, strict=True)]}
    if request.get("edit"):
        return {"kept": [list(r) for r in request["edit"]["keep"]]}
    return {}
