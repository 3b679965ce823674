"""POST /unlearn: remove a concept from a model; the job's result registers a new model id (admin only)."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from core import registry
from models.data.concepts import concept_from_keywords, get_concept
from service import dispatch
from service.deps import Principal, Services, get_services, require
from service.schemas import AUTH_ERRORS, JobAccepted, UnlearnRequest, error_responses

router = APIRouter(tags=["unlearn"], responses=AUTH_ERRORS)


def new_model_id(base: str, body: UnlearnRequest) -> str:
    """Default id of the unlearned model, e.g. `momask-small-lcr-violence` or `...-lcr-kw3f2a1c`."""
    concept = body.concept or "kw" + hashlib.sha256("|".join(body.keywords or []).encode()).hexdigest()[:6]
    return f"{base}-{body.method}-{concept}"[:64].strip("-._")


def check_concept(body: UnlearnRequest) -> None:
    """422 for an unknown concept name or unusable keywords (the concepts module is pure Python, no torch).

    Method parameters are checked by the worker (their validators live next to the torch code).
    """
    try:
        if body.concept is not None:
            get_concept(body.concept)
        else:
            concept_from_keywords(body.keywords or [])
    except ValueError as error:
        raise HTTPException(422, str(error)) from error


@router.post("/unlearn", status_code=202, response_model=JobAccepted,
             responses=error_responses(404, 409, 413))
async def unlearn(body: UnlearnRequest, request: Request, services: Services = Depends(get_services),
                  principal: Principal = require("admin")):
    """Queue an unlearning job (method lcr | uce | rece | esd | ft) for a concept or inline keywords."""
    settings = services.settings
    base = body.base_model or settings.default_model
    if not await run_in_threadpool(registry.model_exists, settings, base):
        raise HTTPException(404, f"base model {base!r} not found; GET /models lists the available ones")
    check_concept(body)
    target = body.new_model_id or new_model_id(base, body)
    if await run_in_threadpool(registry.model_exists, settings, target):
        raise HTTPException(409, f"model id {target!r} already exists; choose another new_model_id")
    payload = {**body.model_dump(), "base_model": base, "new_model_id": target}
    record = await dispatch.submit(services, "unlearn", payload, base, principal)
    return dispatch.accepted(request, record)
