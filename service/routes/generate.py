"""POST /generate: text -> motion, answered synchronously when it finishes within `wait_seconds`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from core import registry
from service import dispatch
from service.deps import Principal, Services, get_services, require
from service.edits import timeline_or_edit
from service.schemas import AUTH_ERRORS, GenerateRequest, GenerateResult, JobAccepted, error_responses

router = APIRouter(tags=["generate"], responses=AUTH_ERRORS)


@router.post(
    "/generate", response_model=GenerateResult,
    responses={202: {"model": JobAccepted, "description": "not finished yet: poll status_url"},
               **error_responses(404, 409, 413, 500, 501)},
)
async def generate(body: GenerateRequest, request: Request, services: Services = Depends(get_services),
                   principal: Principal = require("generate")):
    """Generate `num_samples` motions for `text`; 200 with the motions, or 202 with the job URL."""
    model_id = body.model or services.settings.default_model
    if not await run_in_threadpool(registry.model_exists, services.settings, model_id):
        raise HTTPException(404, f"model {model_id!r} not found; GET /models lists the available ones")
    payload = {"text": body.text, "length_frames": body.length_frames, "num_samples": body.num_samples,
               "seed": body.seed, "format": body.format, "sampling": body.sampling().to_dict(),
               **body.export_fields()}
    payload |= await timeline_or_edit(body, services, principal)
    record = await dispatch.submit(services, "generate", payload, model_id, principal)
    record = await dispatch.wait(services, record["id"], body.wait_seconds)
    if record["state"] == "succeeded":
        return record["result"]
    if record["state"] in ("failed", "cancelled"):
        raise dispatch.failure(record)
    return dispatch.accepted(request, record)
