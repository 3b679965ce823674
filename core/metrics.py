"""Prometheus metrics.

HTTP metrics live in the gateway process. Job, batch and model-load metrics are produced by the workers,
which may be many processes on many machines, so they are accumulated in Redis hashes (`RedisMetrics`)
and exported by the gateway's `/metrics` at scrape time (`RedisCollector`) together with the queue depths.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core.settings import QUEUES
from core.workers import live_workers

log = logging.getLogger(__name__)

KEY = "hmu:metrics"

# name -> (help, label names, bucket upper bounds)
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    "hmu_job_duration_seconds": ("Run time of finished jobs", ("type", "state"),
                                 (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)),
    "hmu_generate_batch_size": ("Motions generated per model call (dynamic batching)", ("model",),
                                (1, 2, 4, 8, 16, 32, 64, 128, 256)),
    "hmu_model_load_seconds": ("Time to load a model into a worker's cache", ("model",),
                               (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)),
}


class HttpMetrics:
    """Requests and latency by route template, method and status (one instance per app)."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("hmu_http_requests_total", "HTTP requests", ("route", "method", "status"),
                                registry=registry)
        self.latency = Histogram("hmu_http_request_duration_seconds", "HTTP request latency",
                                 ("route", "method"), registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.refused = Counter("hmu_requests_refused", "Requests refused by a limit, by reason "
                               "(unauthenticated body, body_too_large, rate_limited, too_many_jobs, upload_too_large, "
                               "upload_quota, store_full)",
                               ("reason",), registry=registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class RedisMetrics:
    """Counters and histograms shared by all workers, kept in Redis hashes."""

    def __init__(self, client: redis.Redis):
        self.r = client

    def inc_job(self, job_type: str, state: str) -> None:
        self._safe(lambda: self.r.hincrby(f"{KEY}:jobs", f"{job_type}|{state}", 1))

    def inc_guard(self, model: str, counts: dict[str, int]) -> None:
        """Safety-guard checks, resamples and refusals of one guarded model call."""
        def write() -> None:
            with self.r.pipeline(transaction=False) as pipe:
                for outcome, n in counts.items():
                    pipe.hincrby(f"{KEY}:guard", f"{model}|{outcome}", int(n))
                pipe.execute()

        self._safe(write)

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Add one observation to the Redis histogram `name` (per-bucket counts, sum and count)."""
        _, label_names, buckets = HISTOGRAMS[name]
        if len(labels) != len(label_names):
            raise ValueError(f"{name} takes labels {label_names}, got {labels}")
        bucket = next((str(b) for b in buckets if value <= b), "+Inf")
        prefix = ",".join(labels)

        def write() -> None:
            with self.r.pipeline(transaction=False) as pipe:
                pipe.hincrby(f"{KEY}:{name}", f"{prefix}|{bucket}", 1)
                pipe.hincrbyfloat(f"{KEY}:{name}", f"{prefix}|sum", float(value))
                pipe.hincrby(f"{KEY}:{name}", f"{prefix}|count", 1)
                pipe.execute()

        self._safe(write)

    @staticmethod
    def _safe(write) -> None:
        try:
            write()
        except redis.RedisError as error:  # metrics must never fail a job
            log.warning("could not record a metric: %s", error)


class RedisCollector:
    """Exports the workers' Redis metrics and the Celery queue depths; `hmu_redis_up` says if it could."""

    def __init__(self, client: redis.Redis):
        self.r = client

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("hmu_redis_up", "1 when the gateway could read Redis at scrape time")
        try:
            families = list(self._families())
        except redis.RedisError as error:
            log.warning("metrics scrape could not read Redis: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator:
        jobs = CounterMetricFamily("hmu_jobs", "Job state transitions by job type and state",
                                   labels=["type", "state"])
        for field, count in sorted(self.r.hgetall(f"{KEY}:jobs").items()):
            job_type, state = field.split("|", 1)
            jobs.add_metric([job_type, state], float(count))
        yield jobs

        guard = CounterMetricFamily("hmu_safety_guard", "Safety-guard outcomes of guarded models (checks, "
                                    "resamples, refusals)", labels=["model", "outcome"])
        for field, count in sorted(self.r.hgetall(f"{KEY}:guard").items()):
            model, outcome = field.rsplit("|", 1)
            guard.add_metric([model, outcome], float(count))
        yield guard

        depth = GaugeMetricFamily("hmu_queue_depth", "Messages waiting in each Celery queue",
                                  labels=["queue"])
        with self.r.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue)
            for queue, n in zip(QUEUES, pipe.execute(), strict=True):
                depth.add_metric([queue], n)
        yield depth

        live = GaugeMetricFamily("hmu_workers_live", "Workers with a live heartbeat consuming each queue",
                                 labels=["queue"])
        workers = live_workers(self.r)
        for queue in QUEUES:
            live.add_metric([queue], sum(queue in w.get("queues", ()) for w in workers))
        yield live

        for name, (help_text, label_names, buckets) in HISTOGRAMS.items():
            family = HistogramMetricFamily(name, help_text, labels=list(label_names))
            raw = self.r.hgetall(f"{KEY}:{name}")
            for prefix in sorted({field.rsplit("|", 1)[0] for field in raw}):
                labels = prefix.split(",") if label_names else []
                cumulative, points = 0.0, []
                for bound in [*map(str, buckets), "+Inf"]:
                    cumulative += float(raw.get(f"{prefix}|{bound}", 0))
                    points.append((bound, cumulative))
                family.add_metric(labels, points, sum_value=float(raw.get(f"{prefix}|sum", 0)))
            yield family
