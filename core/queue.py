"""The Celery application (torch-free): task names, one queue per job type, the Redis broker.

The gateway publishes tasks by name (`TASKS`); the workers bind the task bodies to the same names.
"""

from __future__ import annotations

from celery import Celery

from core.redis_client import require_redis_url
from core.settings import Settings

TASKS = {"generate": "hmu.generate", "unlearn": "hmu.unlearn", "evaluate": "hmu.evaluate"}


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
