"""Stops what `hmu serve` started when `hmu serve` itself dies without cleaning up (SIGKILL, the OOM killer).

`hmu serve` starts this watchdog in a session of its own; it polls its parent. When the parent is gone (the
watchdog was re-parented), it stops the worker whose pid the supervisor keeps in `--worker-pidfile` (SIGTERM:
Celery's warm shutdown gives running jobs back; SIGKILL after `--grace` seconds), then shuts the embedded Redis
down with a save (`--redis-socket`). A clean stop of `hmu serve` terminates the watchdog first.

    python -m hmu.watchdog --parent PID --worker-pidfile PATH --redis-socket PATH [--grace 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from pathlib import Path

import redis

POLL_S = 0.5


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def stop_pid(pid: int, grace_s: float) -> None:
    """SIGTERM `pid`, SIGKILL it after `grace_s` seconds if it still runs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def clean_up(worker_pidfile: Path, redis_socket: str | None, grace_s: float) -> None:
    """Stop the worker named in `worker_pidfile`, then the Redis server on `redis_socket`."""
    try:
        pid = int(worker_pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        stop_pid(pid, grace_s)
    if redis_socket:
        client = redis.Redis(unix_socket_path=redis_socket, socket_timeout=5)
        with contextlib.suppress(redis.RedisError):
            try:
                client.shutdown(save=True)
            except redis.ResponseError:
                client.shutdown(nosave=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--worker-pidfile", type=Path, required=True)
    parser.add_argument("--redis-socket", default=None)
    parser.add_argument("--grace", type=float, default=20.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the clean stop of hmu serve
    while os.getppid() == args.parent and alive(args.parent):
        time.sleep(POLL_S)
    clean_up(args.worker_pidfile, args.redis_socket, args.grace)


if __name__ == "__main__":
    main()
