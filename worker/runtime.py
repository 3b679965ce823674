"""Per-process worker state: Redis job store, metrics, model cache, batcher, heartbeats, job execution."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.cpus import CpuBudget, ForeignLoad, model_call_lanes, usable_cpus
from core.jobstore import JobError, JobStore
from core.metrics import RedisMetrics
from core.redis_client import redis_client, require_redis_url
from core.settings import QUEUES, Settings
from core.workers import WORKER_KEY, presence_ttl_s
from worker.batching import MicroBatcher
from worker.cache import ModelCache

log = logging.getLogger(__name__)
REAPER_KEY = "hmu:reaper"  # held for one heartbeat interval by the worker that looked for lost jobs last
SWEEP_KEY = "hmu:artifacts-sweep"  # held for one sweep interval by the worker that swept last


class JobCancelled(Exception):
    """Raised inside a job body when the client cancelled the job (or it was taken over by another worker)."""


class JobInterrupted(Exception):
    """Raised inside a job body when the worker shuts down: the job goes back to its queue."""


@dataclass
class JobContext:
    """What a job body sees: its record, and progress reporting that notices cancellation and shutdown."""

    record: dict[str, Any]
    store: JobStore
    worker: str = ""
    interrupted: Callable[[], bool] = lambda: False

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def request(self) -> dict[str, Any]:
        return self.record["request"]

    def progress(self, fraction: float, message: str = "") -> None:
        if self.interrupted():
            raise JobInterrupted(self.id)
        if not self.store.progress(self.id, fraction, message, self.worker):
            raise JobCancelled(self.id)

    def check_cancelled(self) -> None:
        if self.interrupted():
            raise JobInterrupted(self.id)
        if self.store.is_cancelled(self.id, self.worker):
            raise JobCancelled(self.id)


class WorkerRuntime:
    """Everything one worker process shares between its task threads."""

    def __init__(self, settings: Settings, name: str | None = None, queues: list[str] | None = None):
        self.settings = settings
        self.name = name or f"hmu-{os.getpid()}"
        self.queues = list(queues or [])
        self.redis = redis_client(require_redis_url(settings), settings.redis_timeout_s)
        self.store = JobStore(self.redis, Path(settings.artifacts_dir), settings.job_ttl_s,
                              settings.result_inline_max_bytes, settings.server_dirs)
        self.metrics = RedisMetrics(self.redis)
        self.models = ModelCache(settings, self.metrics)
        self.cpus = CpuBudget(usable_cpus(), model_call_lanes(self.queues or list(QUEUES)), torch.set_num_threads,
                              settings.torch_threads, ForeignLoad())  # torch threads per model call (core/cpus.py)
        self.batcher: MicroBatcher | None = None  # set by the generate task wiring
        self.publish: Callable[[str, str], None] | None = None  # (job id, type) -> queue it again (tasks wiring)
        self._draining = threading.Event()
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ heartbeats
    def start(self) -> None:
        """Start the heartbeat thread (worker presence for /readyz and liveness of running jobs)."""
        self._thread = threading.Thread(target=self._beat, name="hmu-heartbeat", daemon=True)
        self._thread.start()

    def drain(self) -> None:
        """The worker is shutting down: running unlearn/evaluate jobs stop at their next progress report and go
        back to their queue (generate jobs are short: the warm shutdown lets them finish)."""
        self._draining.set()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.redis.delete(WORKER_KEY + self.name)
        except Exception as error:  # Redis may already be gone at shutdown
            log.debug("could not remove the worker key: %s", error)

    def _beat(self) -> None:
        interval = self.settings.heartbeat_interval_s
        info = json.dumps({"name": self.name, "queues": self.queues, "pid": os.getpid(),
                           "started_at": time.time()})
        while not self._stop.is_set():
            try:
                self.redis.set(WORKER_KEY + self.name, info, ex=presence_ttl_s(interval))
                with self._lock:
                    active = list(self._active)
                self.store.heartbeat(active, self.name)
                self.reap_lost_jobs()
            except Exception as error:  # keep beating once Redis is back
                log.warning("heartbeat failed: %s", error)
            self._stop.wait(interval)

    def reserved(self, job_id: str) -> None:
        """The worker took a job's message (Celery's task_received): note it on the job record, so that the job
        is given to another worker if this one dies before running it."""
        try:
            self.store.reserve(job_id, self.name)
        except Exception as error:  # the broker's visibility timeout still redelivers it
            log.warning("could not note job %s as reserved: %s", job_id, error)

    def reap_lost_jobs(self) -> list[str]:
        """Re-queue the running jobs of workers that stopped beating (presence key expired, job heartbeat older
        than two intervals), at most once per heartbeat interval across all workers; much sooner than the
        broker's visibility timeout. A job still beating is never taken (no double execution)."""
        interval = self.settings.heartbeat_interval_s
        if self.publish is None or not self.redis.set(REAPER_KEY, self.name, nx=True,
                                                       px=max(1, int(interval * 1000))):
            return []
        reaped = self.store.reap(2 * interval, WORKER_KEY)
        for job_id, job_type in reaped:
            log.warning("job %s (%s) re-queued: its worker stopped beating", job_id, job_type)
            self.publish(job_id, job_type)
        return [job_id for job_id, _ in reaped]

    def maybe_sweep_artifacts(self) -> list[str]:
        """Delete the files of expired jobs, at most once per `artifacts_sweep_interval_s` across all
        workers (a Redis key with that expiry decides who sweeps). Returns the job ids removed."""
        interval = self.settings.artifacts_sweep_interval_s
        try:
            if not self.redis.set(SWEEP_KEY, self.name, nx=True, ex=interval):
                return []
            removed = self.store.sweep_artifacts(min_age_s=interval)
        except Exception as error:  # housekeeping must never fail a job or the worker
            log.warning("artifacts sweep failed: %s", error)
            return []
        if removed:
            log.info("removed the files of %d expired jobs", len(removed))
        return removed

    def preload(self, model_id: str) -> None:
        """Load a model into the cache in the background, so the first requests do not wait for it."""

        def load() -> None:
            try:
                self.models.get(model_id)
                log.info("model %s loaded", model_id)
            except Exception as error:  # a missing model fails its jobs clearly later; the worker runs on
                log.warning("could not preload model %s: %s", model_id, error)

        threading.Thread(target=load, name="hmu-preload", daemon=True).start()

    # ------------------------------------------------------------------ execution
    def execute(self, job_id: str, body: Callable[[JobContext], dict[str, Any]]) -> str:
        """Run one delivered job through its life cycle; returns the final state (or why it was skipped)."""
        decision, attempt = self.store.start(job_id, self.name, self.settings.job_stale_after_s,
                                             self.settings.job_max_attempts)
        if decision != "run":
            log.info("job %s not run: %s", job_id, decision)
            if decision == "exhausted":
                record = self.store.get(job_id)
                if record:
                    self.metrics.inc_job(record["type"], "failed")
                self._release_uploads(job_id)
            return decision
        record = self.store.get(job_id)
        if record is None:
            return "missing"
        job_type = record["type"]
        with self._lock:
            self._active.add(job_id)
        self.metrics.inc_job(job_type, "running")
        log.info("job %s (%s) started, attempt %d", job_id, job_type, attempt)
        start, state = time.perf_counter(), "failed"
        try:
            result = body(JobContext(record, self.store, self.name, self._draining.is_set))
        except JobCancelled:
            state = "cancelled"
        except JobInterrupted:
            state = self._give_back(job_id, job_type)
        except JobError as error:
            state = "failed" if self.store.fail(job_id, error.code, error.message, self.name) else "cancelled"
        except ValueError as error:  # the model side's convention for a bad input
            state = "failed" if self.store.fail(job_id, "bad_request", str(error), self.name) else "cancelled"
        except Exception as error:
            log.exception("job %s failed", job_id)
            failed = self.store.fail(job_id, "internal", f"{type(error).__name__}: {error}", self.name)
            state = "failed" if failed else "cancelled"
        else:
            state = "succeeded" if self.store.succeed(job_id, result, self.name) else "cancelled"
        finally:
            with self._lock:
                self._active.discard(job_id)
        if state in ("succeeded", "failed", "cancelled"):  # a re-queued or taken-over job keeps its uploads
            self._release_uploads(job_id)
        if state not in ("cancelled", "requeued"):  # the gateway counts cancellations when it records them
            self.metrics.inc_job(job_type, state)
            self.metrics.observe("hmu_job_duration_seconds", (job_type, state), time.perf_counter() - start)
        log.info("job %s %s", job_id, state)
        self.maybe_sweep_artifacts()
        return state

    def _give_back(self, job_id: str, job_type: str) -> str:
        """A job interrupted by the shutdown goes back to its queue (the attempt does not count)."""
        if not self.store.requeue(job_id, self.name, "re-queued: its worker shut down"):
            return "cancelled"
        if self.publish is not None:
            self.publish(job_id, job_type)
        return "requeued"

    def _release_uploads(self, job_id: str) -> None:
        """Delete the uploads of a job that ended (release_uploads keeps them while it is queued or running,
        e.g. taken over by another worker)."""
        try:
            self.store.release_uploads(job_id)
        except Exception as error:  # housekeeping: the artifacts sweep removes them later
            log.warning("could not delete the uploads of job %s: %s", job_id, error)
