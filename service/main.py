"""The FastAPI gateway. It never loads a model: it validates requests, stores job records in Redis and
publishes Celery tasks. Run it with `hmu serve`, or `uvicorn --factory service.main:create_app`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

import kombu.exceptions
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import registry
from core.jobstore import JobStore, scrub_paths
from core.limits import RateLimiter
from core.metrics import HttpMetrics, RedisCollector
from core.queue import create_celery
from core.redis_client import async_redis_client, redis_client, require_redis_url
from core.settings import Settings, get_settings
from models.version import package_version
from service.deps import Services
from service.dispatch import DONE_WAIT_MAX_S
from service.limits import RequestGuard
from service.routes import evaluate, generate, health, jobs, models, motions, unlearn

log = logging.getLogger("hmu.service")
STATIC_DIR = Path(__file__).parent / "static"
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 for an undecodable body
OOM_ERROR = "OOM command not allowed"  # Redis's answer to a write above maxmemory (noeviction)
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError)
DESCRIPTION = """Text-to-motion generation (MoMask, BAMM), concept unlearning and evaluation.

Long work runs as jobs: `POST` answers 202 with a job URL to poll (`POST /generate` waits up to
`wait_seconds` and answers 200 with the motion when it is done by then). Send the API key in `X-API-Key`
unless the server runs in open local mode (`GET /healthz` says which)."""


def _describe(error: RequestValidationError) -> tuple[str, list[dict]]:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in error.errors()]
    text = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
    return f"invalid request: {text}", errors


def install_error_handlers(app: FastAPI, retry_after_s: int, private_dirs: tuple[str, ...] = ()) -> None:
    """Clear JSON errors, 503 + Retry-After when Redis is down, never a stack trace or a server path."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        detail, errors = _describe(error)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException is a subclass
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == BODY_PARSE_ERROR:  # e.g. a body that is not UTF-8
            return JSONResponse({"detail": "invalid request: the body could not be decoded (send UTF-8 JSON, "
                                           "or a well-formed multipart form)"}, status_code=422)
        return JSONResponse({"detail": scrub_paths(str(error.detail), private_dirs)},
                            status_code=error.status_code, headers=error.headers)

    @app.exception_handler(registry.InvalidId)  # every route validates ids in its schema; this is a backstop
    async def invalid_id(_: Request, error: registry.InvalidId) -> JSONResponse:
        return JSONResponse({"detail": f"invalid request: {error}"}, status_code=422)

    for kind in UNAVAILABLE:
        @app.exception_handler(kind)
        async def unavailable(_: Request, error: Exception) -> JSONResponse:
            log.warning("Redis/broker unreachable: %s", error)
            return JSONResponse({"detail": "the job store (Redis) is unreachable; retry later"},
                                status_code=503, headers={"Retry-After": str(retry_after_s)})

    @app.exception_handler(redis.ResponseError)  # maxmemory reached under noeviction: nothing is dropped
    async def full(request: Request, error: redis.ResponseError) -> JSONResponse:
        if not isinstance(error, redis.exceptions.OutOfMemoryError) and OOM_ERROR not in str(error):
            return await internal(request, error)  # inside a Lua script the OOM error comes back as text
        log.warning("Redis is full (maxmemory): refusing writes")
        request.app.state.services.http_metrics.refused.labels("store_full").inc()
        return JSONResponse({"detail": "the job store (Redis) is full; retry later, once finished jobs expire"},
                            status_code=503, headers={"Retry-After": str(retry_after_s)})

    @app.exception_handler(Exception)
    async def internal(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": "internal server error (see the server log)"}, status_code=500)


LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # any other host name may resolve to a public address
        return False


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse to serve the whole (admin) API unauthenticated beyond this machine: a non-loopback address
    needs API keys, or `HMU_ALLOW_OPEN=1` to say that open mode there is intended."""
    if settings.open_mode and not settings.allow_open and not is_loopback(host):
        raise ValueError(f"refusing to listen on {host} without API keys: set HMU_API_KEYS_FILE (or "
                         "HMU_API_KEYS), listen on 127.0.0.1, or set HMU_ALLOW_OPEN=1 to run open on purpose")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway for `settings` (default: from the environment; HMU_REDIS_URL is required)."""
    settings = settings or get_settings()
    client = redis_client(require_redis_url(settings), settings.redis_timeout_s)
    registry = CollectorRegistry()
    registry.register(RedisCollector(client))
    store = JobStore(client, Path(settings.artifacts_dir), settings.job_ttl_s,
                     settings.result_inline_max_bytes, settings.server_dirs)
    services = Services(settings=settings, redis=client, store=store, celery=create_celery(settings),
                        registry=registry, http_metrics=HttpMetrics(registry),
                        limiter=RateLimiter(client, settings.rate_limit_per_minute))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if settings.open_mode:
            log.warning("no API keys configured (HMU_API_KEYS): open local mode, "
                        "every endpoint is unauthenticated")
        # created inside the running loop (asyncio connections belong to their loop)
        services.done_signals = async_redis_client(settings.redis_url, settings.redis_timeout_s, DONE_WAIT_MAX_S)
        try:
            yield
        finally:
            await services.done_signals.aclose()
            services.done_signals = None
            client.close()

    app = FastAPI(title="hmu", version=package_version(), description=DESCRIPTION, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app, settings.retry_after_s, store.private_dirs)
    app.add_middleware(RequestGuard, services=services)  # inside `observe`: its refusals are observed too

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            services.http_metrics.observe(getattr(route, "path", "unmatched"), request.method, status,
                                          time.perf_counter() - start)

    for module in (generate, motions, jobs, models, unlearn, evaluate, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")  # the web page (service/static)
    app.add_api_route("/", lambda: FileResponse(STATIC_DIR / "index.html"), include_in_schema=False)
    return app
