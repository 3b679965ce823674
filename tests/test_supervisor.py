"""`hmu serve` as a supervisor and the recovery of a dead worker's jobs (issue 14).

Unit tests drive the job store and the worker runtime on a private Redis; the end-to-end tests start
`hmu serve` in a subprocess (embedded Redis, one worker, tiny model) and send it signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from core.jobstore import RUNNING_SET, JobStore
from core.settings import Settings
from core.workers import WORKER_KEY, live_workers, uncovered_queues, worker_name
from tests.conftest import free_port
from worker.runtime import JobContext, WorkerRuntime

REQUEST = {"text": "a person walks", "length_frames": 40, "num_samples": 1, "seed": 5, "format": "joints",
           "sampling": {}}


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


# ---------------------------------------------------------------------------------------------- units
@pytest.fixture
def runtime(redis_url: str, tmp_path: Path):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    settings = Settings(redis_url=redis_url, artifacts_dir=tmp_path / "jobs", models_dir=tmp_path / "models",
                        heartbeat_interval_s=0.2)
    runtime = WorkerRuntime(settings, name="w-new", queues=["generate"])
    published: list[tuple[str, str]] = []
    runtime.publish = lambda job_id, job_type: published.append((job_id, job_type))
    yield runtime, client, published
    client.flushdb()


def running_on(store: JobStore, worker: str) -> str:
    job = store.create("unlearn", REQUEST, model="momask-small")
    assert store.start(job["id"], worker, stale_after_s=30, max_attempts=3) == ("run", 1)
    return job["id"]


def test_jobs_of_a_worker_without_heartbeat_are_requeued_once(runtime):
    runtime, client, published = runtime
    store = runtime.store
    dead, alive = running_on(store, "w-dead"), running_on(store, "w-alive")
    client.set(WORKER_KEY + "w-alive", "{}", ex=60)
    time.sleep(0.45)  # both job heartbeats are now older than two intervals
    assert runtime.reap_lost_jobs() == [dead]
    assert published == [(dead, "unlearn")]
    record = store.get(dead)
    assert record["state"] == "queued" and record["worker"] is None and record["attempts"] == 1
    assert store.get(alive)["state"] == "running"  # its worker is present: never taken (no double run)
    # the dead worker, if it comes back, can no longer touch the record (fenced by worker name)
    assert not store.progress(dead, 0.5, "late", worker="w-dead")
    assert not store.succeed(dead, {"late": True}, worker="w-dead")
    assert store.is_cancelled(dead, "w-dead")
    client.delete("hmu:reaper")
    assert runtime.reap_lost_jobs() == []  # nothing left to reap: the queued job is not reaped again
    assert store.start(dead, "w-new", stale_after_s=30, max_attempts=3) == ("run", 2)
    assert client.sismember(RUNNING_SET, dead)


def test_a_job_reserved_by_a_dead_worker_is_published_again(runtime):
    runtime, client, published = runtime
    store = runtime.store
    lost = store.create("generate", REQUEST, model="momask-small")["id"]
    kept = store.create("generate", REQUEST, model="momask-small")["id"]
    assert store.reserve(lost, "w-dead") and store.reserve(kept, "w-alive")
    client.set(WORKER_KEY + "w-alive", "{}", ex=60)
    time.sleep(0.45)
    assert runtime.reap_lost_jobs() == [lost] and published == [(lost, "generate")]
    assert store.get(lost)["state"] == "queued"  # a second message now; whichever starts first runs it
    assert store.start(lost, "w-new", stale_after_s=30, max_attempts=3) == ("run", 1)
    assert store.start(lost, "w-other", stale_after_s=30, max_attempts=3)[0] == "duplicate"


def test_a_job_still_beating_is_not_requeued_even_without_presence_key(runtime):
    runtime, _, published = runtime
    job_id = running_on(runtime.store, "w-gone")
    assert runtime.reap_lost_jobs() == [] and published == []  # heartbeat fresh: maybe only a slow beat
    assert runtime.store.get(job_id)["state"] == "running"


def test_a_draining_worker_gives_its_job_back_without_counting_the_attempt(runtime):
    runtime, _, published = runtime
    store = runtime.store
    job = store.create("evaluate", REQUEST)

    def body(context: JobContext) -> dict:
        context.progress(0.1, "step 1")
        runtime.drain()  # SIGTERM arrives (Celery's worker_shutting_down)
        context.progress(0.2, "step 2")
        raise AssertionError("the body must stop at the progress report after the drain")

    assert runtime.execute(job["id"], body) == "requeued"
    record = store.get(job["id"])
    assert record["state"] == "queued" and record["attempts"] == 0 and "shut down" in record["message"]
    assert published == [(job["id"], "evaluate")]


def test_queue_coverage_of_live_workers(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.set(WORKER_KEY + "a", json.dumps({"name": "a", "queues": ["generate"]}), ex=60)
    assert uncovered_queues(live_workers(client), ("generate", "unlearn")) == ["unlearn"]
    client.set(WORKER_KEY + "b", json.dumps({"name": "b", "queues": ["unlearn", "evaluate"]}), ex=60)
    assert uncovered_queues(live_workers(client), ("generate", "unlearn", "evaluate")) == []
    assert worker_name(["generate", "unlearn"], 42, "box") == "hmu-generate-unlearn-42@box"
    client.flushdb()


# ---------------------------------------------------------------------------------------------- hmu serve
class Service:
    """`hmu serve` in a subprocess on a free port, its state in `root` (default settings but for the folders
    and `env`); also used by bench/faults.py."""

    def __init__(self, root: Path, tiny_model_dir: Path, env: dict[str, str] | None = None):
        self.root = root
        models = root / "models" / "momask-small"
        if not models.exists():
            shutil.copytree(tiny_model_dir, models)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HMU_")}
        self.env.update({"HMU_DATA_DIR": str(root / "local"), "HMU_MODELS_DIR": str(root / "models"),
                         "HMU_WEIGHTS_DIR": str(root / "weights"), "HMU_ARTIFACTS_DIR": str(root / "jobs"),
                         **(env or {})})
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180) -> Service:
        self.port = free_port()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        log = (self.root / "serve.log").open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "hmu.cli", "serve", "--port", str(self.port)],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        wait_for(self.ready, timeout_s, "hmu serve to be ready")
        return self

    def ready(self) -> dict | None:
        assert self.process.poll() is None, (self.root / "serve.log").read_text()[-3000:]
        try:
            response = self.http.get("/readyz")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def redis_servers(self) -> list[psutil.Process]:
        """The embedded redis-server (a daemon: not a child of hmu serve), found by its working folder."""
        found = []
        for process in psutil.process_iter(["name", "cwd"]):
            if process.info["name"] and "redis-server" in process.info["name"] and \
                    str(process.info["cwd"] or "").startswith(str(self.root / "local")):
                found.append(process)
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(90)
        self.http.close()


def gone(process: psutil.Process, timeout_s: float = 10) -> bool:
    """True once `process` has exited (a zombie waiting for a parent that does not reap it counts as gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


TEST_ENV = {"HMU_PRELOAD_DEFAULT_MODEL": "false", "HMU_WORKER_CONCURRENCY": "2"}


def finished(http: httpx.Client, job_id: str, timeout_s: float) -> dict:
    return wait_for(lambda: (r := http.get(f"/jobs/{job_id}").json())["state"] in ("succeeded", "failed") and r,
                    timeout_s, f"job {job_id} to finish")


def restarted_runs(tmp_path: Path, tiny_model_dir: Path, job: str | None = None) -> bool:
    """A new `hmu serve` on the same folder finishes `job` (None: a new generate job) and stops with status 0."""
    again = Service(tmp_path, tiny_model_dir, TEST_ENV)
    try:
        again.start()
        if job is None:
            job = again.http.post("/generate", json={"text": "a person walks", "length_frames": 40, "seed": 2,
                                                     "wait_seconds": 0}).json()["job_id"]
        assert finished(again.http, job, 120)["state"] == "succeeded"
    finally:
        again.stop()
    return again.process.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigterm_stops_everything_in_order_and_loses_no_job(tmp_path: Path, tiny_model_dir: Path):
    service = Service(tmp_path, tiny_model_dir, TEST_ENV).start()
    try:
        worker = psutil.Process(service.ready()["workers"][0]["pid"])
        servers = service.redis_servers()
        assert len(servers) == 1, servers
        job = service.http.post("/generate", json={"text": "a person walks", "length_frames": 40, "seed": 2,
                                                   "wait_seconds": 0}).json()["job_id"]
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(90) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        # before: SIGTERM exited in 0.3 s and left the worker and redis-server running
        assert gone(worker), "the worker outlived hmu serve"
        assert all(gone(server) for server in servers), "the embedded redis-server outlived hmu serve"
    finally:
        service.stop()
    assert restarted_runs(tmp_path, tiny_model_dir, job)  # done before the stop, or after the restart


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_killed_worker_is_restarted_and_readyz_says_503_meanwhile(tmp_path: Path, tiny_model_dir: Path):
    service = Service(tmp_path, tiny_model_dir, TEST_ENV).start()
    try:
        first = service.ready()["workers"][0]
        os.kill(first["pid"], signal.SIGKILL)
        # the supervisor reaps the worker and drops its presence key: /readyz answers 503 until the new one runs
        body = wait_for(lambda: (r := service.http.get("/readyz")).status_code == 503 and r.json(), 30,
                        "/readyz to answer 503")
        assert body["status"] == "no_worker" and "generate" in body["detail"], body
        assert not psutil.pid_exists(first["pid"]), "the dead worker was not reaped (<defunct>)"
        job = service.http.post("/generate", json={"text": "a person runs", "length_frames": 40, "seed": 3,
                                                   "wait_seconds": 0}).json()["job_id"]
        second = wait_for(service.ready, 120, "a restarted worker")["workers"][0]
        assert second["pid"] != first["pid"]
        assert finished(service.http, job, 120)["state"] == "succeeded"
        assert "restarting it" in (tmp_path / "serve.log").read_text()
    finally:
        service.stop()
    assert service.process.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigkill_of_serve_leaves_no_orphans(tmp_path: Path, tiny_model_dir: Path):
    """`hmu serve` killed outright (no handler runs): its watchdog stops the worker and the embedded Redis,
    and the next `hmu serve` on the same folder starts and runs jobs."""
    service = Service(tmp_path, tiny_model_dir, TEST_ENV).start()
    try:
        worker = psutil.Process(service.ready()["workers"][0]["pid"])
        servers = service.redis_servers()
        assert len(servers) == 1, servers
        service.process.kill()
        service.process.wait(30)
        assert gone(worker, 60), "the worker outlived a killed hmu serve"
        assert all(gone(server, 30) for server in servers), "the embedded redis-server outlived a killed hmu serve"
    finally:
        service.stop()
    assert restarted_runs(tmp_path, tiny_model_dir)
