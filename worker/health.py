"""`hmu worker --ping`: the container healthcheck of a worker (a Celery ping to the workers of this host)."""

from __future__ import annotations

import socket

from core.queue import create_celery
from core.redis_client import redis_client, require_redis_url
from core.settings import Settings
from core.workers import live_workers


def ping_local_workers(settings: Settings, timeout_s: float = 5.0, host: str | None = None) -> list[str]:
    """Names of this host's workers (by their presence key) that answer a Celery ping within `timeout_s`."""
    host = host or socket.gethostname()
    client = redis_client(require_redis_url(settings), settings.redis_timeout_s)
    try:
        names = [w["name"] for w in live_workers(client) if str(w.get("name", "")).endswith(f"@{host}")]
    finally:
        client.close()
    if not names:
        return []
    replies = create_celery(settings).control.ping(destination=names, timeout=timeout_s) or []
    return sorted(name for reply in replies for name in reply)
