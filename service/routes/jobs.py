"""GET /jobs/{id} (status, progress, result or error) and DELETE /jobs/{id} (cancel)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from core.jobstore import JOB_FILE_PATTERN, job_file_path
from core.metrics import RedisMetrics
from service import dispatch
from service.deps import Principal, Services, authenticate, get_services, require_scope
from service.schemas import AUTH_ERRORS, JobStatus, error_responses

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=AUTH_ERRORS)
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="job id (32 hex digits)")]
FileName = Annotated[str, Path(pattern=JOB_FILE_PATTERN, description="a file named in the job's result")]
SCOPE_OF = {"generate": "generate", "evaluate": "evaluate", "unlearn": "admin"}


@router.get("/{job_id}", response_model=JobStatus, name="get_job", responses=error_responses(404))
async def get_job(job_id: JobId, principal: Principal = Depends(authenticate),
                  services: Services = Depends(get_services)):
    """Status, progress (0..1), timestamps, and the result or a clear error (only the key that created the
    job, or an admin key, sees it: 404 for the others)."""
    return await dispatch.read(services, job_id, principal)


@router.delete("/{job_id}", response_model=JobStatus, responses=error_responses(404, 409))
async def cancel_job(job_id: JobId, principal: Principal = Depends(authenticate),
                     services: Services = Depends(get_services)):
    """Cancel a queued or running job (a running job stops at its next progress check); only the key that
    created it, or an admin key, may (404 for the others)."""
    record = await dispatch.read(services, job_id, principal)
    require_scope(SCOPE_OF[record["type"]], principal)
    changed, record = await run_in_threadpool(services.store.cancel, job_id)
    if record is None:
        raise HTTPException(404, f"job {job_id} not found")
    if not changed:
        raise HTTPException(409, f"job {job_id} is already {record['state']}; "
                                 "only queued or running jobs can be cancelled")
    await run_in_threadpool(services.celery.control.revoke, job_id)
    await run_in_threadpool(services.store.release_uploads, job_id)  # a cancelled evaluation's sets go now
    await run_in_threadpool(RedisMetrics(services.redis).inc_job, record["type"], "cancelled")
    return record


@router.get("/{job_id}/artifacts/{name}", response_class=FileResponse, name="get_job_file",
            responses={200: {"content": {"model/gltf-binary": {}}, "description": "the file"},
                       **error_responses(404)})
async def get_job_file(job_id: JobId, name: FileName, principal: Principal = Depends(authenticate),
                       services: Services = Depends(get_services)):
    """Download a file of a finished job (e.g. `sample-0.glb` of `POST /generate` with `format: glb`); the same
    rule as `GET /jobs/{id}`: only the key that created the job, or an admin key (404 for the others)."""
    record = await dispatch.read(services, job_id, principal)
    path = job_file_path(FilePath(services.settings.artifacts_dir), job_id, name)
    if record["state"] != "succeeded" or not await run_in_threadpool(path.is_file):
        raise HTTPException(404, f"job {job_id} has no file {name!r} (not finished, expired, or not written)")
    return FileResponse(path, media_type="model/gltf-binary", filename=name)
