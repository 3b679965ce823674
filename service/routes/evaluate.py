"""POST /evaluate: compare models on a forget set and a retain set (uploaded archives or a named dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from core import registry
from core.jobstore import new_job_id
from service import dispatch
from service.deps import Principal, Services, get_services, require
from service.schemas import AUTH_ERRORS, JobAccepted, Parameters, error_responses
from service.uploads import Limits, UploadError, remove_tree, unpack_motion_set

router = APIRouter(tags=["evaluate"], responses=AUTH_ERRORS)
MAX_MODELS = 8
_parameters = TypeAdapter(Parameters)


def parse_models(values: list[str], services: Services) -> list[str]:
    """Model ids from repeated and/or comma-separated form fields; each must exist."""
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not 1 <= len(ids) <= MAX_MODELS:
        raise HTTPException(422, f"give 1..{MAX_MODELS} model ids in 'models', got {len(ids)}")
    for model_id in ids:
        try:
            registry.model_dir(services.settings, model_id)
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        except registry.NotFound as error:
            raise HTTPException(404, str(error)) from error
    return list(dict.fromkeys(ids))


def unpack_sets(services: Services, job_id: str, forget: UploadFile, retain: UploadFile) -> dict:
    """Save, unpack and check both uploads in `<artifacts>/<job>/uploads` under the per-job quota, then count
    them against the total quota; paths relative to artifacts. The worker deletes them when the job ends."""
    settings = services.settings
    artifacts = Path(settings.artifacts_dir)
    workdir = services.store.uploads_dir(job_id)
    out, used = {}, 0
    try:
        for name, upload in (("forget", forget), ("retain", retain)):
            limits = Limits(settings.upload_max_files, settings.upload_max_unpacked_bytes,
                            settings.upload_max_frames, settings.upload_job_max_bytes, used)
            try:
                root, summary = unpack_motion_set(upload.file, workdir, name, settings.upload_max_bytes,
                                                  limits)
            except UploadError as error:
                raise UploadError(f"{name} set: {error}", error.status) from error
            used += summary["unpacked_bytes"]
            out[f"{name}_dir"] = str(root.relative_to(artifacts))
            out[f"{name}_summary"] = summary
        accepted, in_use = services.store.account_uploads(job_id, used, settings.upload_total_max_bytes)
        if not accepted:
            raise UploadError(f"the server's upload storage is full ({in_use} of {settings.upload_total_max_bytes} "
                              f"bytes in use by queued and running evaluations; this job needs {used}); retry "
                              "later", status=413)
    except UploadError as error:
        remove_tree(artifacts / job_id)
        if error.status == 413:
            services.http_metrics.refused.labels("upload_quota" if "quota" in str(error) or "storage is full"
                                                 in str(error) else "upload_too_large").inc()
        raise
    except Exception:
        remove_tree(artifacts / job_id)
        raise
    return out


@router.post("/evaluate", status_code=202, response_model=JobAccepted,
             responses=error_responses(400, 404, 413))
async def evaluate(
    request: Request,
    models: Annotated[list[str], Form(description="model ids to compare (repeated or comma-separated)")],
    forget: Annotated[UploadFile | None, File(description="forget set: .zip/.tar(.gz) with texts/ and "
                                                          "new_joint_vecs/ (HumanML3D layout)")] = None,
    retain: Annotated[UploadFile | None, File(description="retain set, same layout")] = None,
    dataset: Annotated[str | None, Form(pattern=registry.ID_PATTERN, max_length=registry.ID_MAX_LENGTH,
                                        description="a registered dataset instead of uploads")] = None,
    parameters: Annotated[str | None, Form(max_length=4096, description="JSON object of settings")] = None,
    services: Services = Depends(get_services),
    principal: Principal = require("evaluate"),
):
    """Queue an evaluation; the job's result is the report."""
    model_ids = await run_in_threadpool(parse_models, models, services)
    try:
        params = _parameters.validate_json(parameters) if parameters else {}
    except ValidationError as error:
        raise HTTPException(422, f"parameters: {error.errors()[0]['msg']}") from error
    uploads = (forget is not None, retain is not None)
    if dataset and any(uploads):
        raise HTTPException(422, "give either a dataset name or the forget and retain uploads, not both")
    job_id = new_job_id()
    payload: dict = {"models": model_ids, "parameters": params, "dataset": dataset}
    if dataset:
        try:
            await run_in_threadpool(registry.dataset_dir, services.settings, dataset)
        except registry.NotFound as error:
            raise HTTPException(404, str(error)) from error
        except registry.InvalidId as error:
            raise HTTPException(422, str(error)) from error
    elif all(uploads):
        try:
            payload |= await run_in_threadpool(unpack_sets, services, job_id, forget, retain)
        except UploadError as error:
            raise HTTPException(error.status, str(error)) from error
    else:
        raise HTTPException(422, "upload both 'forget' and 'retain' archives, or name a registered 'dataset'")
    try:
        record = await dispatch.submit(services, "evaluate", payload, None, principal, job_id=job_id)
    except Exception:  # e.g. Redis down (503): do not leave the unpacked uploads behind
        await run_in_threadpool(remove_tree, Path(services.settings.artifacts_dir) / job_id)
        raise
    return dispatch.accepted(request, record)
