"""The Celery application (torch-free: the gateway imports it to publish tasks) and `run_worker`."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import redis
from celery import Celery
from celery.signals import worker_ready

from core.settings import QUEUES, Settings, get_settings

TASKS = {"generate": "hmu.generate", "unlearn": "hmu.unlearn", "evaluate": "hmu.evaluate"}


def require_redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ValueError("HMU_REDIS_URL is not set (e.g. redis://localhost:6379/0); `hmu serve` without it "
                         "starts an embedded Redis")
    return settings.redis_url


def redis_client(url: str, **options) -> redis.Redis:
    """A redis-py client for redis://, rediss:// or unix:// URLs with short timeouts (fail fast: 503)."""
    options = {"decode_responses": True, "socket_connect_timeout": 2, "socket_timeout": 10,
               "health_check_interval": 15, **options}
    return redis.Redis.from_url(url, **options)


def broker_url(url: str) -> str:
    """Celery/kombu spell a unix-socket Redis `redis+socket:///path`."""
    if url.startswith("unix://"):
        path, _, query = url[len("unix://"):].partition("?")
        return f"redis+socket://{path}" + (f"?{query}" if query else "")
    return url


def create_celery(settings: Settings) -> Celery:
    """Celery app on the Redis broker: one queue per job type, late acks, redelivery when a worker dies.

    No result backend: job state and results live in our job records (core.jobstore).
    """
    app = Celery("hmu", broker=broker_url(require_redis_url(settings)), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes={name: {"queue": queue} for queue, name in TASKS.items()},
        task_default_queue="generate",
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # sweep for messages of dead workers every few seconds (a cheap sorted-set range query)
            "unacked_restore_interval": min(5, max(1, settings.visibility_timeout_s // 4)),
            "unacked_restore_throttle": 1,
            # the sweep's lock: a worker killed while holding it must not stop redelivery for kombu's
            # default 5 minutes (a sweep takes milliseconds; a second sweeper only restores duplicates,
            # which WorkerRuntime.execute skips)
            "unacked_mutex_expire": 10,
            "socket_connect_timeout": 2,
        },
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for Redis to come back
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                   "interval_max": 0.5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def run_worker(queues: Sequence[str] = QUEUES, concurrency: int | None = None,
               settings: Settings | None = None, loglevel: str = "INFO") -> None:
    """Run a Celery worker in this process on `queues` (generate, unlearn, evaluate).

    The pool is threads: concurrent generate tasks share one cached model and are merged into batches.
    """
    settings = settings or get_settings()
    queues = [q.strip() for q in queues if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if not queues or unknown:
        raise ValueError(f"unknown queues {unknown or queues}; choose from {', '.join(QUEUES)}")
    concurrency = concurrency or settings.worker_concurrency
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")

    from worker.adapters import warm_imports
    from worker.runtime import WorkerRuntime
    from worker.tasks import register_tasks

    warm_imports()  # before the task threads exist (concurrent first imports race)

    app = create_celery(settings)
    name = f"hmu-{'-'.join(queues)}-{os.getpid()}@{socket.gethostname()}"
    runtime = WorkerRuntime(settings, name=name, queues=queues)
    register_tasks(app, runtime)
    def on_ready(**_) -> None:  # announce the worker (and beat for its jobs) only once it consumes
        runtime.start()
        if "generate" in queues and settings.preload_default_model:
            runtime.preload(settings.default_model)

    worker_ready.connect(on_ready, weak=False)
    try:
        app.worker_main([
            "worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency}", "--pool=threads",
            f"--hostname={name}", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
        ])
    finally:
        runtime.stop()
