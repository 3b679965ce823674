"""The workers' thread policy: torch threads x concurrent model calls never exceed the usable CPUs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.cpus import CpuBudget, ForeignLoad, ThreadPolicy, cgroup_cpu_limit, model_call_lanes, usable_cpus


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_and_missing_files(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("garbage")
    assert cgroup_cpu_limit(tmp_path) is None


def test_usable_cpus_is_affinity_capped_by_quota() -> None:
    assert usable_cpus({0, 1, 2, 3}, None) == 4
    assert usable_cpus({0, 1, 2, 3}, 2.5) == 2
    assert usable_cpus({0, 1}, 8.0) == 2
    assert usable_cpus({3}, 0.2) == 1
    assert usable_cpus() >= 1  # this machine


@pytest.mark.parametrize(("cpus", "calls", "requested", "threads"), [
    (2, 1, None, 2), (2, 2, None, 1), (2, 3, None, 1), (16, 3, None, 5), (8, 1, 4, 4), (8, 2, 16, 4), (1, 1, 3, 1),
])
def test_policy_never_oversubscribes(cpus: int, calls: int, requested: int | None, threads: int) -> None:
    policy = ThreadPolicy.compute(cpus, calls, requested)
    assert policy.intra_op == threads
    if cpus >= calls:
        assert policy.intra_op * calls <= cpus


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        ThreadPolicy.compute(0, 1)
    with pytest.raises(ValueError):
        ThreadPolicy.compute(2, 0)


def test_model_call_lanes_per_queue_set() -> None:
    assert model_call_lanes(["generate"]) == 1
    assert model_call_lanes(["generate", "unlearn", "evaluate"]) == 3
    assert model_call_lanes(["evaluate"]) == 1
    assert model_call_lanes([]) == 1


def test_generate_calls_run_one_at_a_time() -> None:
    budget = CpuBudget(2, 1)
    running, seen = [0], []

    def call() -> None:
        with budget.generate_call():
            running[0] += 1
            seen.append(running[0])
            time.sleep(0.05)
            running[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and max(seen) == 1


def test_long_jobs_hold_a_share_and_generation_gets_the_rest() -> None:
    calls: list[int] = []
    budget = CpuBudget(8, 3, calls.append)
    with budget.generate_call() as threads:
        assert threads == 8  # idle worker: every CPU
    with budget.long_call() as unlearn:
        assert unlearn == 2  # 8 CPUs / 3 lanes
        with budget.long_call() as evaluate, budget.generate_call() as generate:
            assert unlearn + evaluate + generate <= 8
            assert generate == 4
        with budget.generate_call() as generate:
            assert generate == 6
    assert budget.reserved == 0
    assert calls == [8, 2, 2, 4, 6]


def test_thread_cap_and_a_failing_long_job_releases_its_share() -> None:
    budget = CpuBudget(16, 1, max_threads=4)
    with budget.generate_call() as threads:
        assert threads == 4
    with pytest.raises(RuntimeError), budget.long_call():
        assert budget.reserved == 4
        raise RuntimeError("job failed")
    assert budget.reserved == 0


def test_worker_runtime_budget_sets_torch_threads_of_the_calling_thread() -> None:
    import torch

    budget = CpuBudget(usable_cpus(), 1, torch.set_num_threads, max_threads=1)
    seen = []

    def call() -> None:
        with budget.generate_call():
            seen.append(torch.get_num_threads())

    t = threading.Thread(target=call)
    t.start()
    t.join()
    assert seen == [1]


def test_foreign_load_is_machine_busy_time_minus_our_own() -> None:
    ticks = {"machine": 1000, "own": 400, "now": 0.0}
    load = ForeignLoad({0, 1}, window_s=1.0, machine=lambda: ticks["machine"], own=lambda: ticks["own"],
                       clock=lambda: ticks["now"])
    load.ticks_per_s = 100
    assert load() == 0.0  # first sample: nothing to compare with yet
    ticks.update(machine=1000 + 190, own=400 + 95, now=1.0)  # 1.9 CPUs busy, 0.95 of them ours
    assert abs(load() - 0.95) < 1e-9
    ticks.update(machine=1190 + 400, own=495 + 1, now=1.5)  # within the window: the last value stands
    assert abs(load() - 0.95) < 1e-9
    ticks.update(now=2.0)
    assert abs(load() - (400 - 1) / 100 / 1.0) < 1e-9


def test_foreign_load_reads_this_machine() -> None:
    load = ForeignLoad(window_s=0.05)
    load()
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # our own busy loop must not count as foreign
        pass
    value = load()
    assert 0.0 <= value <= len(load.cpus)


@pytest.mark.parametrize(("foreign", "threads"), [(0.0, 4), (0.3, 4), (0.7, 3), (1.0, 3), (1.5, 3), (2.8, 1),
                                                  (9.0, 1)])
def test_generate_leaves_out_cpus_that_neighbours_keep_busy(foreign: float, threads: int) -> None:
    calls: list[int] = []
    budget = CpuBudget(4, 1, calls.append, foreign_load=lambda: foreign)
    with budget.generate_call() as got:
        assert got == threads and calls == [threads]
