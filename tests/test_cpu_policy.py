"""The workers' thread policy: torch threads x concurrent model calls never exceed the usable CPUs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.cpus import ThreadPolicy, cgroup_cpu_limit, model_call_lanes, usable_cpus


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


def test_generate_batches_of_different_keys_do_not_run_at_once(tmp_path: Path) -> None:
    """worker.tasks.generate_batch holds the cache's call lock: two batches never overlap."""
    from core.settings import Settings
    from worker.cache import ModelCache
    from worker.tasks import GenerateItem, generate_batch

    running, overlaps = [0], []

    class SlowPipeline:
        def generate(self, texts, lengths, seeds, sampling):  # noqa: ANN001, ANN202
            running[0] += 1
            overlaps.append(running[0])
            time.sleep(0.05)
            running[0] -= 1
            return [object()] * len(texts)

    cache = ModelCache(Settings(models_dir=tmp_path))
    cache.get = lambda model_id: SlowPipeline()
    item = GenerateItem(text="a person walks", length=40, num_samples=1, seed=0)
    threads = [threading.Thread(target=generate_batch, args=(cache, (f"m{i}", None), [item])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps and max(overlaps) == 1
