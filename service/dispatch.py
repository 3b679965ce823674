"""Creating, publishing, reading and awaiting jobs from the gateway (blocking calls run in a thread pool)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.jobstore import TERMINAL, TooManyJobs, new_job_id
from core.metrics import RedisMetrics
from core.queue import TASKS
from service.deps import Principal, Services

# The longest single block on a job's done signal; the record is re-read after each (a lost signal, e.g. a job
# ended by a script that does not signal, costs at most this much latency).
DONE_WAIT_MAX_S = 1.0
# HTTP status for a job that failed while the client waited for it (POST /generate).
FAILURE_STATUS = {"bad_request": 422, "unsafe_output": 422, "not_found": 404, "conflict": 409, "cancelled": 409,
                  "not_available": 501, "worker_lost": 503, "unavailable": 503}


async def submit(services: Services, job_type: str, request: dict[str, Any], model: str | None,
                 owner: Principal, job_id: str | None = None) -> dict[str, Any]:
    """Store a queued job record owned by `owner`, then publish its Celery task (task id = job id)."""
    job_id = job_id or new_job_id()
    limit = services.settings.max_active_jobs_per_key
    try:
        record = await run_in_threadpool(services.store.create, job_type, request, model, job_id, owner.owner,
                                         limit)
    except TooManyJobs as error:
        services.http_metrics.refused.labels("too_many_jobs").inc()
        raise HTTPException(429, str(error), headers={"Retry-After": str(services.settings.retry_after_s)}) \
            from error
    try:
        await run_in_threadpool(services.celery.send_task, TASKS[job_type], args=[job_id], task_id=job_id)
    except Exception:
        message = "the job could not be queued (broker unreachable)"
        await run_in_threadpool(services.store.abandon, job_id, message)
        raise
    await run_in_threadpool(RedisMetrics(services.redis).inc_job, job_type, "queued")
    return record


def lost_after(services: Services) -> float:
    """Seconds without heartbeat after which a running job counts as lost (redelivery had its chance)."""
    settings = services.settings
    return settings.visibility_timeout_s + settings.job_stale_after_s + 15


def _read(services: Services, job_id: str) -> dict[str, Any] | None:
    record = services.store.get(job_id)
    if record and record["state"] == "running":
        beat = record["heartbeat_at"] or record["started_at"] or 0
        if time.time() - beat > lost_after(services) and services.store.fail_lost(job_id):
            RedisMetrics(services.redis).inc_job(record["type"], "failed")
            record = services.store.get(job_id)
    return record


async def read(services: Services, job_id: str, caller: Principal | None = None) -> dict[str, Any]:
    """The job record; 404 when unknown, expired, or (for `caller`) another key's job."""
    record = await run_in_threadpool(_read, services, job_id)
    if record is None or (caller is not None and not caller.owns(record)):
        raise HTTPException(404, f"job {job_id} not found (unknown, or expired after its TTL)")
    return record


async def wait(services: Services, job_id: str, seconds: float) -> dict[str, Any]:
    """Re-read the record until it is terminal or `seconds` passed. Between reads the gateway blocks on the
    job's done signal (an async BLPOP: woken the moment the job ends, no thread held), at most
    `DONE_WAIT_MAX_S` at a time; without the async client it polls with a growing delay."""
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        record = await read(services, job_id)
        remaining = deadline - time.monotonic()
        if record["state"] in TERMINAL or remaining <= 0:
            return record
        if services.done_signals is not None and await wait_done_signal(services, job_id, remaining):
            continue
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)


async def wait_done_signal(services: Services, job_id: str, remaining: float) -> bool:
    """Block on the job's done list for up to min(remaining, DONE_WAIT_MAX_S); False when Redis failed
    (the caller then polls)."""
    try:
        await services.done_signals.blpop([services.store.done_key(job_id)],
                                          timeout=max(0.01, min(remaining, DONE_WAIT_MAX_S)))
    except (redis.RedisError, OSError):
        return False
    return True


def accepted(request: Request, record: dict[str, Any]) -> JSONResponse:
    """202 with the job's URL (body and Location header)."""
    url = str(request.url_for("get_job", job_id=record["id"]))
    body = {"job_id": record["id"], "type": record["type"], "state": record["state"], "status_url": url}
    return JSONResponse(body, status_code=202, headers={"Location": url})


def failure(record: dict[str, Any]) -> HTTPException:
    """The HTTP error for a job that ended failed or cancelled."""
    error = record.get("error") or {"code": "internal", "message": "the job failed"}
    status = FAILURE_STATUS.get(error["code"], 500)
    return HTTPException(status, f"job {record['id']} {record['state']} ({error['code']}): {error['message']}")
