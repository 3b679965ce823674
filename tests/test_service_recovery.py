"""Hardening: a worker killed with SIGKILL in the middle of a job must lead to redelivery (or a clear
failure), never to a job stuck in `running`. Real Redis, real Celery worker processes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

from core.jobstore import JobStore
from core.queue import create_celery
from core.settings import Settings
from hmu.serve import embedded_redis, worker_process

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_job_of_a_killed_worker_is_redelivered_and_finishes(tmp_path: Path, tiny_model_dir: Path):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "momask-small")
    with embedded_redis(tmp_path / "redis") as url:
        settings = Settings(redis_url=url, models_dir=tmp_path / "models", weights_dir=tmp_path / "weights",
                            artifacts_dir=tmp_path / "artifacts", visibility_timeout_s=2,
                            job_stale_after_s=1.5, heartbeat_interval_s=0.3, preload_default_model=False)
        store = JobStore(redis.Redis.from_url(url, decode_responses=True), settings.artifacts_dir, 3600)
        job = store.create("generate", {"text": "a person walks", "length_frames": 40, "num_samples": 1,
                                        "seed": 5, "format": "joints", "sampling": {}}, model="momask-small")
        create_celery(settings).send_task("hmu.generate", args=[job["id"]], task_id=job["id"])
        with worker_process(settings, concurrency=2) as first:
            # the first job of a cold worker spends seconds loading torch and the model: kill it then
            wait_for(lambda: store.get(job["id"])["state"] == "running", 60, "the job to start")
            first.kill()
            first.wait()
        assert store.get(job["id"])["state"] == "running"  # nobody will finish it ...
        with worker_process(settings, concurrency=2):  # ... until the message is redelivered
            record = wait_for(lambda: (r := store.get(job["id"]))["state"] in ("succeeded", "failed") and r,
                              90, "the redelivered job to finish")
        assert record["state"] == "succeeded", record
        assert record["attempts"] == 2
        assert len(record["result"]["samples"][0]["joints"]) == 40
