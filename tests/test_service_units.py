"""Unit tests of the service parts that need no worker: job store, batcher, uploads, schemas, files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import redis
import yaml

from core.jobstore import JobStore
from core.queue import broker_url
from core.settings import REPO_ROOT, Settings, settings_env
from hmu.serve import embedded_redis
from models.common.sampling_config import SamplingConfig
from service.schemas import GenerateRequest, UnlearnRequest
from service.uploads import Limits, UploadError, extract_archive
from worker.batching import MicroBatcher

LIMITS = Limits(max_files=50, max_unpacked_bytes=10_000, max_frames=200)


@pytest.fixture
def store(redis_url: str, tmp_path: Path) -> JobStore:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2", decode_responses=True)
    client.flushdb()
    return JobStore(client, tmp_path, ttl_s=600, inline_max_bytes=1024)


# ---------------------------------------------------------------------------------------------- job store
def test_job_lifecycle_and_large_results_on_disk(store: JobStore):
    job = store.create("generate", {"text": "walk"}, model="m")
    assert store.get(job["id"])["state"] == "queued" and 0 < store.r.ttl(store.key(job["id"])) <= 600
    assert store.start(job["id"], "w1", stale_after_s=30, max_attempts=3) == ("run", 1)
    assert store.progress(job["id"], 0.5, "half")
    assert store.get(job["id"])["progress"] == 0.5
    result = {"samples": ["x" * 2000]}  # above inline_max_bytes: stored as a file
    assert store.succeed(job["id"], result)
    record = store.get(job["id"])
    assert record["state"] == "succeeded" and record["result"] == result
    assert (store.artifacts_dir / job["id"] / "result.json").is_file()
    assert store.start(job["id"], "w2", 30, 3)[0] == "terminal"  # a redelivered finished job is not rerun


def test_cancelled_job_cannot_be_finished_by_a_late_worker(store: JobStore):
    job = store.create("unlearn", {}, model="m")
    store.start(job["id"], "w1", 30, 3)
    changed, record = store.cancel(job["id"])
    assert changed and record["state"] == "cancelled"
    assert not store.progress(job["id"], 0.9)
    assert not store.succeed(job["id"], {"ok": True})
    assert not store.fail(job["id"], "internal", "boom")
    assert store.get(job["id"])["state"] == "cancelled" and store.get(job["id"])["result"] is None
    assert store.cancel(job["id"])[0] is False


def test_redelivery_after_worker_loss(store: JobStore):
    job = store.create("generate", {}, model="m")
    assert store.start(job["id"], "w1", stale_after_s=30, max_attempts=2) == ("run", 1)
    # the same message delivered again while w1 still heart-beats: a duplicate, not run twice
    assert store.start(job["id"], "w2", stale_after_s=30, max_attempts=2)[0] == "duplicate"
    store.r.hset(store.key(job["id"]), "heartbeat_at", time.time() - 60)  # w1 died a minute ago
    assert store.start(job["id"], "w2", stale_after_s=30, max_attempts=2) == ("run", 2)
    store.r.hset(store.key(job["id"]), "heartbeat_at", time.time() - 60)
    assert store.start(job["id"], "w3", stale_after_s=30, max_attempts=2)[0] == "exhausted"
    record = store.get(job["id"])
    assert record["state"] == "failed" and record["error"]["code"] == "worker_lost"
    assert "interrupted 2 times" in record["error"]["message"]


def test_sweep_deletes_only_the_files_of_expired_jobs(store: JobStore):
    live = store.create("evaluate", {}, model="m")["id"]
    expired, fresh = "a" * 32, "b" * 32
    for job_id in (live, expired, fresh, "not-a-job"):
        (store.artifacts_dir / job_id / "uploads").mkdir(parents=True)
        (store.artifacts_dir / job_id / "uploads" / "forget.zip").write_bytes(b"x")
    old = time.time() - 7200
    for job_id in (live, expired, "not-a-job"):
        for path in (store.artifacts_dir / job_id).rglob("*"):
            os.utime(path, (old, old))
        os.utime(store.artifacts_dir / job_id, (old, old))
    # `fresh` has no record yet but was just written (uploads unpacked before the job is created): kept
    assert store.sweep_artifacts(min_age_s=3600) == [expired]
    assert not (store.artifacts_dir / expired).exists()
    for kept in (live, fresh, "not-a-job"):
        assert (store.artifacts_dir / kept / "uploads" / "forget.zip").is_file()
    store.r.delete(store.key(live))  # the record expires: its files go at the next sweep
    assert store.sweep_artifacts(min_age_s=3600) == [live]


def test_workers_sweep_at_most_once_per_interval(redis_url: str, tmp_path: Path):
    from worker.runtime import SWEEP_KEY, WorkerRuntime

    settings = Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/2", artifacts_dir=tmp_path,
                        artifacts_sweep_interval_s=60)
    first, second = WorkerRuntime(settings, name="w1"), WorkerRuntime(settings, name="w2")
    first.redis.flushdb()
    stale = tmp_path / ("c" * 32)
    stale.mkdir()
    os.utime(stale, (time.time() - 120, time.time() - 120))
    assert first.maybe_sweep_artifacts() == ["c" * 32] and not stale.exists()
    assert 0 < first.redis.ttl(SWEEP_KEY) <= 60 and first.redis.get(SWEEP_KEY) == "w1"
    stale.mkdir()
    os.utime(stale, (time.time() - 120, time.time() - 120))
    assert second.maybe_sweep_artifacts() == [] and stale.exists()  # w1 swept less than 60 s ago
    first.redis.delete(SWEEP_KEY)
    assert second.maybe_sweep_artifacts() == ["c" * 32]


def test_gateway_fails_a_running_job_whose_worker_vanished(redis_url: str, tmp_path: Path):
    from service import dispatch
    from service.main import create_app

    settings = Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/2", artifacts_dir=tmp_path,
                        visibility_timeout_s=5, job_stale_after_s=2)
    services = create_app(settings).state.services
    job = services.store.create("evaluate", {}, model=None)
    services.store.start(job["id"], "w1", 2, 3)
    assert dispatch._read(services, job["id"])["state"] == "running"  # fresh heartbeat: still running
    old = time.time() - dispatch.lost_after(services) - 1  # no heartbeat and no redelivery for too long
    services.store.r.hset(services.store.key(job["id"]), "heartbeat_at", old)
    record = dispatch._read(services, job["id"])
    assert record["state"] == "failed" and record["error"]["code"] == "worker_lost"


def test_gateway_wait_wakes_when_the_job_ends(redis_url: str, tmp_path: Path):
    """POST /generate's wait blocks on the job's done signal: it answers right after the job ends (a poll with a
    growing delay answered up to 250 ms late), and every terminal transition signals, the exhausted start too."""
    import asyncio

    from core.redis_client import async_redis_client
    from service import dispatch
    from service.main import create_app

    settings = Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/2", artifacts_dir=tmp_path)
    services = create_app(settings).state.services
    services.redis.flushdb()

    async def wait_while(finish) -> tuple[dict, float]:  # noqa: ANN001
        services.done_signals = async_redis_client(settings.redis_url)
        try:
            task = asyncio.create_task(dispatch.wait(services, job["id"], 10))
            await asyncio.sleep(1.2)  # past one whole block: the waiter re-armed
            assert not task.done()
            await asyncio.to_thread(finish)
            ended = time.monotonic()
            record = await task
            return record, time.monotonic() - ended
        finally:
            await services.done_signals.aclose()

    job = services.store.create("generate", {"text": "walk"}, model="m")
    services.store.start(job["id"], "w1", 30, 3)
    record, late = asyncio.run(wait_while(lambda: services.store.succeed(job["id"], {"ok": True}, "w1")))
    assert record["state"] == "succeeded" and late < 0.1, late
    assert services.redis.llen(services.store.done_key(job["id"])) == 0  # the waiter took the signal

    job = services.store.create("generate", {"text": "walk"}, model="m")
    services.store.start(job["id"], "w1", 30, 3)
    services.store.r.hset(services.store.key(job["id"]), "heartbeat_at", 0)  # stale: the next start counts
    record, late = asyncio.run(wait_while(lambda: services.store.start(job["id"], "w2", 30, 1)))
    assert record["state"] == "failed" and record["error"]["code"] == "worker_lost" and late < 0.1, late


def test_sampling_config_travels_from_request_to_batch_key():
    body = GenerateRequest(text="walk", timesteps=5, cond_scale=4)
    stored = body.sampling().to_dict()  # what the route puts into the job record
    assert stored == {"timesteps": 5, "cond_scale": 4.0}
    assert SamplingConfig.from_dict(json.loads(json.dumps(stored))) == body.sampling()
    assert hash(SamplingConfig.from_dict(stored)) == hash(SamplingConfig(cond_scale=4.0, timesteps=5))
    assert GenerateRequest(text="walk").sampling().to_dict() == {}


def test_worker_imports_the_model_side_with_its_entry_module():
    """Task threads must not be the first to import the model code (concurrent first imports race)."""
    code = ("import sys, worker.app; "
            "need = ('models.pipelines', 'models.unlearn.run', 'models.eval.run', 'models.motion.bvh_export'); "
            "missing = [m for m in need if m not in sys.modules]; print(missing); sys.exit(1 if missing else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------- batching
def test_micro_batcher_merges_waiting_requests_and_keeps_order():
    calls: list[list[int]] = []
    release = threading.Event()

    def run(key, payloads):
        calls.append(list(payloads))
        if len(calls) == 1:
            release.wait(5)  # hold the model busy so the next requests pile up
        return [(key, p * 10) for p in payloads]

    batcher = MicroBatcher(run=run, window_s=0, max_size=3)
    results: dict[int, object] = {}

    def submit(i: int, key: str = "a") -> None:
        results[i] = batcher.submit(key, i)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    while not calls:
        time.sleep(0.001)
    others = [threading.Thread(target=submit, args=(i,)) for i in range(1, 6)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while sum(len(v) for v in batcher._pending.values()) < 5 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert results == {i: ("a", i * 10) for i in range(6)}
    assert calls[0] == [0] and sorted(calls[1] + calls[2]) == [1, 2, 3, 4, 5]
    assert [len(c) for c in calls] == [1, 3, 2]  # max_size respected, waiting requests merged


def test_micro_batcher_batches_by_group_oldest_first():
    """Requests of other length buckets wait for the next batch; the oldest request always leads a batch."""
    from worker.tasks import length_bucket

    calls: list[list[int | None]] = []
    release = threading.Event()

    def run(key, payloads):
        calls.append(list(payloads))
        if len(calls) == 1:
            release.wait(5)
        return list(payloads)

    batcher = MicroBatcher(run=run, window_s=0, max_size=8, group_of=lambda frames: length_bucket(frames, 40))
    first = threading.Thread(target=batcher.submit, args=("a", 60))
    first.start()
    while not calls:
        time.sleep(0.001)
    lengths = [200, 44, 196, 80, None, 161, 41, None]  # buckets 4, 1, 4, 1, -1, 4, 1, -1
    threads = []
    for frames in lengths:  # queued in this order
        threads.append(threading.Thread(target=batcher.submit, args=("a", frames)))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while sum(len(v) for v in batcher._pending.values()) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(5)
    assert calls == [[60], [200, 196, 161], [44, 80, 41], [None, None]]
    assert [length_bucket(n, 0) for n in (40, None)] == [None, None]  # bucket 0: one group


def test_micro_batcher_gives_every_request_the_batch_error():
    def run(key, payloads):
        raise ValueError("model exploded")

    batcher = MicroBatcher(run=run, window_s=0.001)
    with pytest.raises(ValueError, match="model exploded"):
        batcher.submit("k", 1)


# ---------------------------------------------------------------------------------------------- uploads
def zip_bytes(entries: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (0o120777 << 16)  # a symlink entry
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def tar_bytes(build) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        build(archive)
    return buffer.getvalue()


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def extract(tmp_path: Path, payload: bytes, limits: Limits = LIMITS) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "upload.bin"
    archive.write_bytes(payload)
    extract_archive(archive, tmp_path / "out", limits)
    return tmp_path / "out"


def test_safe_extraction_refuses_links_escapes_and_bombs(tmp_path: Path):
    out = extract(tmp_path, zip_bytes({"a/texts/1.txt": b"walk", "./a/b.txt": b"x"}))
    assert (out / "a" / "texts" / "1.txt").read_bytes() == b"walk" and (out / "a" / "b.txt").exists()

    def symlink(archive):
        info = tarfile.TarInfo("evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)

    def hardlink(archive):
        add_file(archive, "real", b"x")
        info = tarfile.TarInfo("evil")
        info.type, info.linkname = tarfile.LNKTYPE, "real"
        archive.addfile(info)

    def device(archive):
        info = tarfile.TarInfo("dev")
        info.type = tarfile.CHRTYPE
        archive.addfile(info)

    refused = {
        "zip link": (zip_bytes({}, link="evil"), "link"),
        "tar symlink": (tar_bytes(symlink), "link"),
        "tar hardlink": (tar_bytes(hardlink), "link"),
        "device": (tar_bytes(device), "not a regular file"),
        "dotdot": (tar_bytes(lambda a: add_file(a, "x/../../evil", b"x")), "'..'"),
        "absolute": (tar_bytes(lambda a: add_file(a, "/tmp/evil", b"x")), "absolute"),
        "backslash": (zip_bytes({"..\\evil": b"x"}), "Windows"),
        "duplicate": (tar_bytes(lambda a: (add_file(a, "d", b"1"), add_file(a, "d", b"2"))), "twice"),
        "many files": (zip_bytes({f"f{i}": b"" for i in range(51)}), "more than 50 entries"),
        "bomb": (zip_bytes({"big": b"\0" * 10_001}), "more than 10000 bytes"),
    }
    for name, (payload, word) in refused.items():
        with pytest.raises(UploadError, match=word):
            extract(tmp_path / name.replace(" ", "_"), payload)
    assert not Path("/tmp/evil").exists()


# ---------------------------------------------------------------------------------------------- schemas
def test_schema_bounds():
    assert GenerateRequest(text="walk").wait_seconds == 10
    for bad in ({"text": "walk", "seed": -1}, {"text": "walk", "topk_filter_thres": 1.5},
                {"text": "walk", "timesteps": 0}, {"text": "walk", "temperature": 0}):
        with pytest.raises(ValueError):
            GenerateRequest(**bad)
    with pytest.raises(ValueError, match="at most 32"):
        UnlearnRequest(method="lcr", concept="kick", parameters={f"p{i}": i for i in range(33)})
    with pytest.raises(ValueError, match="1..64 characters"):
        UnlearnRequest(method="lcr", keywords=["ok", " "])
    assert UnlearnRequest(method="uce", keywords=[" kick "]).keywords == ["kick"]


def test_settings_round_trip_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = Settings(redis_url="redis://x:1/0", models_dir=tmp_path, api_keys={"k": ["admin"]},
                        batch_max_size=7)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    loaded = Settings()
    assert settings_env(loaded) == settings_env(settings)
    assert loaded.api_keys == {"k": ["admin"]} and loaded.batch_max_size == 7
    assert loaded.models_dir == tmp_path
    assert broker_url("unix:///run/r.sock?db=1") == "redis+socket:///run/r.sock?db=1"
    assert broker_url("redis://h:1/0") == "redis://h:1/0"


# ---------------------------------------------------------------------------------------------- processes
def test_gateway_never_imports_torch():
    code = ("import sys; from core.settings import Settings; from service.main import create_app; "
            "create_app(Settings(redis_url='redis://127.0.0.1:1/0')); "
            "from service.routes.unlearn import check_concept; from service.schemas import UnlearnRequest; "
            "check_concept(UnlearnRequest(method='lcr', concept='violence')); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'models') "
            "and m not in ('models', 'models.version', 'models.common', 'models.common.sampling_config', "
            "'models.common.package_data', "
            "'models.data', 'models.data.concepts')); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_embedded_redis_keeps_data_across_restarts(tmp_path: Path):
    with embedded_redis(tmp_path) as url:
        assert url.startswith("unix://")
        redis.Redis.from_url(url).set("job", "kept")
    assert (tmp_path / "appendonly.aof").is_file()  # AOF on
    with embedded_redis(tmp_path) as url:
        assert redis.Redis.from_url(url).get("job") == b"kept"


# ---------------------------------------------------------------------------------------------- repo files
def test_openapi_yaml_is_up_to_date():
    from service.openapi import OPENAPI_PATH, openapi_yaml

    assert OPENAPI_PATH.read_text() == openapi_yaml(), "run `python -m service.openapi`, commit openapi.yaml"


def test_compose_and_prometheus_files():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "gateway", "worker", "prometheus"} <= set(services)
    assert "--appendonly" in " ".join(map(str, services["redis"]["command"]))
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices)
    for name in ("gateway", "worker"):
        env = services[name]["environment"]
        assert env["HMU_REDIS_URL"].startswith("redis://redis:")
        assert any(str(v).endswith(":/data") for v in services[name]["volumes"])  # shared artefacts volume
    prometheus = yaml.safe_load((REPO_ROOT / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert "gateway:8000" in targets
    dockerfile = (REPO_ROOT / "Dockerfile.gpu").read_text()
    assert "nvidia/cuda" in dockerfile and "download.pytorch.org/whl/cu" in dockerfile
    assert os.path.basename(services["worker"]["build"]["dockerfile"]) == "Dockerfile.gpu"


def test_docker_compose_config_validates():
    """`docker compose config` (or the standalone docker-compose that .ci/run installs) accepts the file."""
    import shutil
    import subprocess

    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", "docker-compose.yml", "config", "-q"]
    else:
        command = ["docker", "compose", "-f", "docker-compose.yml", "config", "-q"]
    assert shutil.which(command[0]), "install docker-compose (Debian package) or the docker compose plugin"
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
