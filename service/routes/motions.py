"""POST /motions: upload a motion (.npy HumanML3D features) to edit with POST /generate `edit.source`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from core.jobstore import motion_file, new_job_id
from service.deps import Principal, Services, get_services, require
from service.schemas import AUTH_ERRORS, EDIT_MAX_FRAMES, MotionUploaded, error_responses
from service.uploads import UploadError, load_features, remove_tree, save_upload

router = APIRouter(tags=["generate"], responses=AUTH_ERRORS)
MIN_FRAMES = 4  # one token


def store_motion(services: Services, job_id: str, upload: UploadFile) -> np.ndarray:
    """Save the upload, check it (header before data, finite float (T, 263|251), 4..196 frames) and keep it
    as float32 beside the job; UploadError otherwise (nothing left behind)."""
    settings = services.settings
    dest = motion_file(settings.artifacts_dir, job_id, 0)
    raw = dest.with_name("upload.npy")
    try:
        save_upload(upload.file, raw, settings.upload_max_bytes)
        array = load_features(raw, EDIT_MAX_FRAMES)
        if array.shape[0] < MIN_FRAMES:
            raise UploadError(f"{upload.filename or 'motion'}: {array.shape[0]} frames; at least {MIN_FRAMES}")
        np.save(dest, array.astype(np.float32))
        raw.unlink()
        return array
    except Exception:
        remove_tree(dest.parent)
        raise


@router.post("/motions", status_code=201, response_model=MotionUploaded, responses=error_responses(400, 413))
async def upload_motion(
    request: Request,
    motion: Annotated[UploadFile, File(description=".npy HumanML3D features (frames, 263), 4..196 frames")],
    services: Services = Depends(get_services),
    principal: Principal = require("generate"),
):
    """Store a motion as a finished job of this key; its id is an `edit.source` for POST /generate."""
    job_id = new_job_id()
    try:
        array = await run_in_threadpool(store_motion, services, job_id, motion)
    except UploadError as error:
        raise HTTPException(error.status, str(error)) from error
    frames, dim = int(array.shape[0]), int(array.shape[1])
    result = {"job_id": job_id, "model": None, "format": "features", "fps": 20, "upload": True,
              "samples": [{"text": "", "length": frames, "seed": None}]}
    try:
        await run_in_threadpool(services.store.create_finished, "generate", {"upload": True}, result, job_id,
                                principal.owner)
    except Exception:
        await run_in_threadpool(remove_tree, Path(services.settings.artifacts_dir) / job_id)
        raise
    url = str(request.url_for("get_job", job_id=job_id))
    return {"job_id": job_id, "frames": frames, "feature_dim": dim, "status_url": url}
