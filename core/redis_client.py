"""The Redis connection shared by the gateway and the workers (job records, metrics, worker presence)."""

from __future__ import annotations

import redis
import redis.asyncio

from core.settings import Settings


def require_redis_url(settings: Settings) -> str:
    """`settings.redis_url`, or a clear error when it is not set."""
    if not settings.redis_url:
        raise ValueError("HMU_REDIS_URL is not set (e.g. redis://localhost:6379/0); `hmu serve` without it "
                         "starts an embedded Redis")
    return settings.redis_url


def redis_client(url: str, timeout_s: float = 0.4, **options) -> redis.Redis:
    """A redis-py client for redis://, rediss:// or unix:// URLs with short timeouts (fail fast: a hung
    Redis, e.g. SIGSTOP, costs `timeout_s` per call, then the gateway answers 503)."""
    options = {"decode_responses": True, "socket_connect_timeout": timeout_s, "socket_timeout": timeout_s,
               "health_check_interval": 15, **options}
    return redis.Redis.from_url(url, **options)


def async_redis_client(url: str, timeout_s: float = 0.4, block_s: float = 1.0) -> redis.asyncio.Redis:
    """The asyncio counterpart of `redis_client` for blocking waits (BLPOP of at most `block_s`): its socket
    timeout leaves room for the block."""
    return redis.asyncio.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s,
                                        socket_timeout=timeout_s + block_s)
