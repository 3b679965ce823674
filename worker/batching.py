"""Dynamic batching inside one worker process.

Celery delivers each generate job to its own worker thread. The threads hand their request to a
`MicroBatcher`; requests with the same key (model + sampling knobs) that arrive within `window_s` of each
other, or while the model is busy with an earlier batch, are run as one call. The first waiting thread
acts as the leader and runs batches until its own request is done; then leadership passes on. A batch starts
with the oldest waiting request and takes the later ones of its group only (e.g. its length bucket, so that
short motions are not padded to the longest one); the other groups follow in the next batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Slot:
    payload: Any
    size: int
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class MicroBatcher:
    """Merge concurrent `submit(key, payload)` calls into `run(key, payloads) -> results` (same order).

    `size_of(payload)` counts rows (e.g. samples) toward `max_size`; a single payload larger than
    `max_size` still runs, alone. `group_of(payload)`: payloads of one batch share it (None: all may share).
    """

    run: Callable[[Hashable, list[Any]], list[Any]]
    window_s: float = 0.01
    max_size: int = 32
    size_of: Callable[[Any], int] = lambda payload: 1
    group_of: Callable[[Any], Hashable] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _pending: dict[Hashable, list[_Slot]] = field(default_factory=dict, init=False)
    _leaders: set[Hashable] = field(default_factory=set, init=False)

    def submit(self, key: Hashable, payload: Any) -> Any:
        """Block until the batch holding `payload` ran; return its result or raise its error."""
        slot = _Slot(payload, max(1, int(self.size_of(payload))))
        with self._cond:
            self._pending.setdefault(key, []).append(slot)
            while not slot.done and key in self._leaders:
                self._cond.wait()
            if not slot.done:
                self._leaders.add(key)
        if not slot.done:
            self._lead(key, slot)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, key: Hashable, own: _Slot) -> None:
        try:
            while not own.done:
                with self._cond:
                    waiting = sum(s.size for s in self._pending.get(key, []))
                if waiting < self.max_size and self.window_s > 0:
                    time.sleep(self.window_s)  # let concurrent requests join this batch
                with self._cond:
                    batch = self._take(key)
                self._run_batch(key, batch)
                with self._cond:
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leaders.discard(key)
                self._cond.notify_all()

    def _take(self, key: Hashable) -> list[_Slot]:
        queue = self._pending[key]
        group = self.group_of(queue[0].payload) if self.group_of else None
        batch, rows = [queue[0]], queue[0].size
        for slot in queue[1:]:
            if self.group_of is not None and self.group_of(slot.payload) != group:
                continue
            if rows + slot.size > self.max_size:
                break
            batch.append(slot)
            rows += slot.size
        taken = {id(slot) for slot in batch}
        queue[:] = [slot for slot in queue if id(slot) not in taken]
        if not queue:
            del self._pending[key]
        return batch

    def _run_batch(self, key: Hashable, batch: list[_Slot]) -> None:
        try:
            results = self.run(key, [s.payload for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function gave {len(results)} results for {len(batch)} requests")
        except Exception as error:  # every request of a failed batch gets the error
            for slot in batch:
                slot.error, slot.done = error, True
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result, slot.done = result, True
