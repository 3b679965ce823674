"""Per-worker LRU cache of loaded models (each model is loaded once even when many threads ask for it)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from core.jobstore import JobError
from core.metrics import RedisMetrics
from core.registry import NotFound, model_dir
from core.settings import Settings
from models.evaluator.safety_guard import SafetyGuard
from models.pipelines import MotionPipeline


class ModelCache:
    """`get(model_id)` returns a loaded `MotionPipeline`, keeping at most `size` models in memory."""

    def __init__(self, settings: Settings, metrics: RedisMetrics | None = None, size: int | None = None):
        self.settings = settings
        self.metrics = metrics
        self.size = size or settings.model_cache_size
        self._models: OrderedDict[str, MotionPipeline] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._guards: dict[str, SafetyGuard | None] = {}

    def get(self, model_id: str) -> MotionPipeline:
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        with load_lock:
            with self._lock:
                if model_id in self._models:
                    return self._models[model_id]
            pipeline, guard = self._load(model_id)
            with self._lock:
                self._models[model_id] = pipeline
                self._guards[model_id] = guard
                while len(self._models) > self.size:
                    evicted, _ = self._models.popitem(last=False)
                    self._guards.pop(evicted, None)
        return pipeline

    def guard(self, model_id: str) -> SafetyGuard | None:
        """The safety guard the model carries (load the model with `get` first)."""
        with self._lock:
            return self._guards.get(model_id)

    def _load(self, model_id: str) -> tuple[MotionPipeline, SafetyGuard | None]:
        try:
            path = model_dir(self.settings, model_id)
        except NotFound as error:
            raise JobError("not_found", str(error)) from error
        start = time.perf_counter()
        pipeline = MotionPipeline.from_pretrained(path, device=self.settings.device)
        pipeline.set_precision(self.settings.precision)
        if self.metrics is not None:
            self.metrics.observe("hmu_model_load_seconds", (model_id,), time.perf_counter() - start)
        return pipeline, SafetyGuard.from_model_dir(path)

    def __contains__(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._models
