"""Shared helpers of the side-by-side speed benchmarks (`ab.py`, `vs_official.py`): interleaved timing in one
process, load average before and after, one JSON line per setting.

A contender is a function `run(batch) -> tokens`; every contender of a setting gets the same inputs. Repeats are
interleaved (A, B, A, B, ... with the order alternating each round), so that a change in the machine's load hits
every contender alike; the figure is the ratio of the medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

Contender = Callable[[int], torch.Tensor]


def import_package_from(tree: Path, package: str, names: list[str]) -> dict[str, ModuleType]:
    """Import the modules `names` of the package `package` found in `tree` and return every module of that
    package so imported; `sys.modules` is left as it was (so another package of the same name, e.g. this
    project's `models`, can live in the same process)."""
    def inside(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if inside(k)}
    sys.path.insert(0, str(tree))
    try:
        for name in names:
            __import__(name)
        return {k: sys.modules.pop(k) for k in list(sys.modules) if inside(k)}
    finally:
        sys.path.remove(str(tree))
        for k in [k for k in sys.modules if inside(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def interleaved(contenders: dict[str, Contender], batch: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, `repeats` interleaved rounds after one warm-up call each."""
    names = list(contenders)
    for name in names:
        contenders[name](batch)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            contenders[name](batch)
            times[name].append(time.perf_counter() - start)
    return times


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of equal token ids (a and b of one shape)."""
    return float((a == b).float().mean()) if a.shape == b.shape else float("nan")


def measure(contenders: dict[str, Contender], batch: int, threads: int, repeats: int,
            reference: str, compare: bool = True) -> dict:
    """Time every contender at one batch size and thread count; ratios are reference median / contender median
    (> 1: the contender is faster). With `compare`, the token agreement with the reference on one batch is
    recorded too (the first call of each contender, which is also its warm-up)."""
    torch.set_num_threads(threads)
    tokens = {name: run(batch) for name, run in contenders.items()}
    before = loadavg()
    times = interleaved(contenders, batch, repeats)
    after = loadavg()
    medians = {name: statistics.median(t) for name, t in times.items()}
    record = {
        "batch": batch, "threads": threads, "repeats": repeats, "loadavg_before": before, "loadavg_after": after,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "per_motion_s": {k: round(v / batch, 4) for k, v in medians.items()},
        "speedup_vs_" + reference: {k: round(medians[reference] / v, 3) for k, v in medians.items()},
    }
    if compare:
        record["token_agreement_with_" + reference] = {k: round(agreement(tokens[reference], t), 4)
                                                       for k, t in tokens.items()}
    return record


def emit(record: dict, out: Path | None) -> None:
    """Print one JSON line; append it to `out` as well."""
    record = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": platform.machine(),
              "cpus": len(os.sched_getaffinity(0)), "torch": torch.__version__, **record}
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(line + "\n")
