"""Per-API-key request rate limit, counted in Redis so that it holds across gateway replicas.

(The per-key limit of queued and running jobs is enforced atomically when a job is created:
`core.jobstore.JobStore.create(max_active=...)`.)
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)
WINDOW_S = 60


class RateLimiter:
    """Fixed one-minute windows: `INCR hmu:rate:<owner>:<minute>`. Fails open when Redis is unreachable
    (the request then fails, or not, on its own Redis calls)."""

    def __init__(self, client: redis.Redis, per_minute: int):
        self.r = client
        self.per_minute = int(per_minute)

    def retry_after(self, owner: str, now: float | None = None) -> int | None:
        """None when `owner` may send this request; else the seconds until its window ends."""
        if self.per_minute <= 0 or not owner:
            return None
        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        key = f"hmu:rate:{owner}:{window}"
        try:
            with self.r.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S + 1)
                count, _ = pipe.execute()
        except redis.RedisError as error:
            log.warning("rate limit not checked (Redis unreachable): %s", error)
            return None
        if int(count) <= self.per_minute:
            return None
        return max(1, int((window + 1) * WINDOW_S - now + 0.999))
