"""CPU budget of a worker process: how many CPUs it may use, and how many torch intra-op threads each concurrent
model call gets so that threads x concurrent calls never exceed them.

Oversubscribing a shared CPU is what makes generation slow under load (BENCHMARKS.md issue 15: with 2 torch
threads on 2 cores while another process held one, small GEMMs ran 12x slower than with 1 thread); so the policy
divides the usable CPUs among the model calls that can run at once, rounding down, never below one thread
(`CpuBudget`: generation gets what the running unlearn / evaluate jobs leave).
Usable CPUs = the process's affinity set (`os.sched_getaffinity`), capped by a cgroup CPU quota (v2 `cpu.max`,
v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) rounded down to whole CPUs (at least 1).
Generate calls also leave out the CPUs other processes keep busy (`ForeignLoad`: busy time of the affinity set's
CPUs in /proc/stat minus this process's own, over the last second), so a neighbour spinning on one core costs a
thread instead of making every GEMM wait on the preempted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (quota / period), or None when there is no quota or no cgroup file."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or 100_000)
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text().strip())
            return None if quota <= 0 else quota / int(period_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return None


def usable_cpus(affinity: set[int] | None = None, quota: float | None = None) -> int:
    """Whole CPUs this process may use: its affinity set, capped by the cgroup quota (floored, >= 1).

    affinity / quota: given (tests) or read from the system (`os.sched_getaffinity`, `cgroup_cpu_limit`)."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cpus = max(1, len(affinity))
    if quota is None:
        quota = cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus


def _machine_busy_ticks(cpus: set[int], stat: Path = Path("/proc/stat")) -> int:
    """Busy clock ticks (all but idle and iowait) of `cpus` since boot."""
    busy = 0
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(f) for f in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy


def _own_busy_ticks(stat: Path = Path("/proc/self/stat")) -> int:
    """Clock ticks this process has run (user + system, all threads)."""
    fields = stat.read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


class ForeignLoad:
    """CPUs of the affinity set that other processes kept busy over roughly the last `window_s` (a float, e.g.
    0.97 for one spinning neighbour); 0.0 where /proc cannot be read. Sampled at most once per `window_s`."""

    def __init__(self, cpus: set[int] | None = None, window_s: float = 1.0,
                 machine: Callable[[], int] | None = None, own: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cpus = cpus if cpus is not None else (
            os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1)))
        self.window_s = window_s
        self.machine = machine or (lambda: _machine_busy_ticks(self.cpus))
        self.own = own or _own_busy_ticks
        self.clock = clock
        self.ticks_per_s = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._lock = threading.Lock()
        self._last: tuple[float, int, int] | None = None
        self.value = 0.0

    def __call__(self) -> float:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last[0] < self.window_s:
                return self.value  # within the window: no /proc read
            try:
                machine, own = self.machine(), self.own()
            except (OSError, ValueError, IndexError):
                return 0.0
            if self._last is not None:
                elapsed = now - self._last[0]
                foreign = (machine - self._last[1]) - (own - self._last[2])
                self.value = max(0.0, foreign / self.ticks_per_s / elapsed)
            self._last = (now, machine, own)
            return self.value


@dataclass(frozen=True)
class ThreadPolicy:
    """`intra_op` torch threads for each of `concurrent_calls` model calls on `cpus` CPUs."""

    cpus: int
    concurrent_calls: int
    intra_op: int

    @classmethod
    def compute(cls, cpus: int, concurrent_calls: int, requested: int | None = None) -> ThreadPolicy:
        """threads = floor(cpus / concurrent_calls), at least 1; `requested` (a setting) is capped to the same
        budget, so that threads x concurrent calls <= cpus whenever cpus >= concurrent_calls."""
        if cpus < 1 or concurrent_calls < 1:
            raise ValueError(f"cpus and concurrent_calls must be >= 1, got {cpus} and {concurrent_calls}")
        budget = max(1, cpus // concurrent_calls)
        threads = budget if requested is None else max(1, min(int(requested), budget))
        return cls(cpus=cpus, concurrent_calls=concurrent_calls, intra_op=threads)


def model_call_lanes(queues: list[str] | tuple[str, ...]) -> int:
    """Model calls a worker consuming `queues` can run at once: one generate call at a time (the batcher feeds
    it), plus one for each of the unlearn and evaluate queues."""
    return max(1, ("generate" in queues) + ("unlearn" in queues) + ("evaluate" in queues))


class CpuBudget:
    """Shares a worker's CPUs between its model calls, each call setting the torch threads of its own thread
    (`set_threads`, e.g. torch.set_num_threads: OpenMP thread counts are per calling thread).

    * long jobs (unlearn, evaluate: `long_call`) take a fixed share, usable CPUs / lanes (`ThreadPolicy`);
    * generate calls (`generate_call`) run one at a time (the batcher merges the waiting requests meanwhile) on
      the CPUs no running long job holds, all of them when none runs.

    So the threads of concurrent calls add up to at most the usable CPUs (when there are at least as many CPUs as
    lanes), and an idle worker still generates with every CPU. `max_threads` (HMU_TORCH_THREADS) caps each call.
    `foreign_load` (e.g. `ForeignLoad()`): CPUs busy with other processes; a generate call leaves out each CPU
    that is at least `BUSY_CPU` busy.
    """

    BUSY_CPU = 0.6  # share of a CPU's time other processes must take for it to count as taken

    def __init__(self, cpus: int, lanes: int, set_threads: Callable[[int], None] = lambda n: None,
                 max_threads: int | None = None, foreign_load: Callable[[], float] = lambda: 0.0):
        self.policy = ThreadPolicy.compute(cpus, lanes, max_threads)
        self.max_threads = max_threads
        self.set_threads = set_threads
        self.foreign_load = foreign_load
        self.reserved = 0  # threads held by running long jobs
        self._lock = threading.Lock()
        self._generate = threading.Lock()

    def generate_threads(self) -> int:
        """Threads a generate call starting now gets."""
        taken = math.floor(self.foreign_load() + 1 - self.BUSY_CPU)
        with self._lock:
            free = max(1, self.policy.cpus - self.reserved - taken)
        return free if self.max_threads is None else max(1, min(free, self.max_threads))

    @contextlib.contextmanager
    def generate_call(self) -> Iterator[int]:
        """One generate model call at a time, with `generate_threads()` threads; yields the thread count."""
        with self._generate:
            threads = self.generate_threads()
            self.set_threads(threads)
            yield threads

    @contextlib.contextmanager
    def long_call(self) -> Iterator[int]:
        """An unlearn / evaluate job: its fixed share of threads, held until it ends; yields the thread count."""
        threads = self.policy.intra_op
        with self._lock:
            self.reserved += threads
        try:
            self.set_threads(threads)
            yield threads
        finally:
            with self._lock:
                self.reserved -= threads
