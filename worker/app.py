"""`run_worker`: a Celery worker process (thread pool) that runs the hmu job bodies."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from celery.signals import task_received, worker_ready, worker_shutting_down

from core.cpus import ThreadPolicy, model_call_lanes, usable_cpus
from core.queue import create_celery
from core.settings import QUEUES, Settings, get_settings
from core.workers import worker_name
from worker.runtime import WorkerRuntime
from worker.tasks import register_tasks


def run_worker(queues: Sequence[str] = QUEUES, concurrency: int | None = None,
               settings: Settings | None = None, loglevel: str = "INFO") -> None:
    """Run a Celery worker in this process on `queues` (generate, unlearn, evaluate).

    The pool is threads: concurrent generate tasks share one cached model and are merged into batches.
    The model side is imported with this module (worker.tasks imports it at module level), so in the
    main thread before any task thread exists: concurrent first imports in task threads can race.
    """
    settings = settings or get_settings()
    queues = [q.strip() for q in queues if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if not queues or unknown:
        raise ValueError(f"unknown queues {unknown or queues}; choose from {', '.join(QUEUES)}")
    concurrency = concurrency or settings.worker_concurrency
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")

    policy = ThreadPolicy.compute(usable_cpus(), model_call_lanes(queues), settings.torch_threads)
    torch.set_num_threads(policy.intra_op)  # threads x concurrent model calls <= usable CPUs
    app = create_celery(settings)
    name = worker_name(queues, os.getpid())
    runtime = WorkerRuntime(settings, name=name, queues=queues)
    register_tasks(app, runtime)
    def on_ready(**_) -> None:  # announce the worker (and beat for its jobs) only once it consumes
        runtime.start()
        if "generate" in queues and settings.preload_default_model:
            runtime.preload(settings.default_model)

    def on_shutdown(**_) -> None:  # SIGTERM / SIGINT: running long jobs go back to their queues
        runtime.drain()

    def on_received(request=None, **_) -> None:  # a message taken from a queue, not started yet
        if request is not None:
            runtime.reserved(request.id)

    worker_ready.connect(on_ready, weak=False)
    task_received.connect(on_received, weak=False)
    worker_shutting_down.connect(on_shutdown, weak=False)
    try:
        app.worker_main([
            "worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency}", "--pool=threads",
            f"--hostname={name}", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
        ])
    finally:
        runtime.stop()
