"""GET /healthz (process alive), GET /readyz (Redis reachable and every queue consumed by a live worker),
GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import RedisError

from core.settings import QUEUES
from core.workers import live_workers, uncovered_queues
from models.version import package_version
from service.deps import Principal, Services, get_services, optional_principal
from service.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(services: Services = Depends(get_services)):
    """Liveness: the gateway process answers (does not touch Redis)."""
    auth = "open" if services.settings.open_mode else "api-keys"
    return Health(status="ok", version=package_version(), auth=auth)


@router.get("/readyz", response_model=Ready, response_model_exclude_none=True, responses={503: {"model": Ready}})
def readyz(services: Services = Depends(get_services), caller: Principal | None = Depends(optional_principal)):
    """Readiness: Redis answers and every job queue has a live worker (heartbeat key in Redis); 503 otherwise.
    With a valid key (or in open mode) also the live workers and details; without one, only the status (no
    hostnames, pids or Redis errors)."""
    try:
        services.redis.ping()
        live = live_workers(services.redis)
    except RedisError as error:
        body = Ready(status="unavailable", redis=False, detail=f"Redis unreachable: {error}")
        return JSONResponse(_visible(body, caller), status_code=503,
                            headers={"Retry-After": str(services.settings.retry_after_s)})
    idle = uncovered_queues(live, QUEUES)
    if idle:
        detail = f"no live worker consumes the queue(s) {', '.join(idle)}: their jobs wait"
        body = Ready(status="no_worker", redis=True, workers=live, detail=detail)
        return JSONResponse(_visible(body, caller), status_code=503,
                            headers={"Retry-After": str(services.settings.retry_after_s)})
    return JSONResponse(_visible(Ready(status="ready", redis=True, workers=live), caller))


def _visible(body: Ready, caller: Principal | None) -> dict:
    return body.model_dump(exclude_none=True) if caller is not None else {"status": body.status}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(services: Services = Depends(get_services)):
    """Prometheus metrics: HTTP, jobs by type/state, job durations, queue depth, batch sizes, model loads."""
    return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)
