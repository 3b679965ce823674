"""Worker presence in Redis: each worker process keeps `hmu:worker:<name>` alive (a key with a short TTL,
refreshed by its heartbeat thread). The gateway's /readyz, the job reaper and `hmu serve` read it."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

import redis

WORKER_KEY = "hmu:worker:"


def worker_name(queues: Sequence[str], pid: int, host: str | None = None) -> str:
    """The Celery node name of a worker process (also its presence key): `hmu-<queues>-<pid>@<host>`."""
    return f"hmu-{'-'.join(queues)}-{pid}@{host or socket.gethostname()}"


def presence_ttl_s(heartbeat_interval_s: float) -> int:
    """Seconds a worker's presence key outlives its last beat (three missed beats, at least 3 s)."""
    return max(3, int(3 * heartbeat_interval_s))


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The workers whose presence key has not expired: {name, queues, pid, started_at} each."""
    keys = sorted(client.scan_iter(WORKER_KEY + "*", count=100))
    return [json.loads(v) for v in client.mget(keys) if v] if keys else []


def uncovered_queues(workers: list[dict[str, Any]], queues: Sequence[str]) -> list[str]:
    """The queues of `queues` that no live worker consumes."""
    consumed = {queue for worker in workers for queue in worker.get("queues", ())}
    return [queue for queue in queues if queue not in consumed]


def forget_worker(client: redis.Redis, name: str) -> None:
    """Remove a worker's presence key (its process is known to be dead): its jobs are re-queued at once."""
    client.delete(WORKER_KEY + name)
