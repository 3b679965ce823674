"""Resource bounds (issue 14): the embedded Redis has a memory limit and never evicts (a full Redis gives 503,
not 500), large results live in files rather than in Redis, and uploads have a per-job and a total disk quota
(413 with a clear message, counted in Prometheus); a job's uploads go when it ends or is cancelled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from bench.fuzz import fuzz_settings
from core.jobstore import UPLOADS_KEY, JobStore
from core.settings import Settings
from hmu.serve import embedded_redis
from service.main import create_app
from tests.conftest import RedisServer
from tests.test_service import motion_archive, real_motion_set
from worker.runtime import WorkerRuntime

ONE_SET = motion_archive(real_motion_set("a person kicks", "012314", 3))
ONE_SET_UNPACKED = sum(len(v) for v in real_motion_set("a person kicks", "012314", 3).values())


def evaluate(http: TestClient):
    return http.post("/evaluate", files={"forget": ("f.zip", ONE_SET), "retain": ("r.zip", ONE_SET)},
                     data={"models": "momask-small"})


def refused(http: TestClient, reason: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'hmu_requests_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


# ---------------------------------------------------------------------------------------------- Redis memory
def test_embedded_redis_has_a_memory_limit_and_never_evicts(tmp_path: Path):
    defaults = Settings(redis_url="redis://unused:1/0")
    assert defaults.redis_maxmemory_bytes == 512 * 2**20 and defaults.redis_maxmemory_policy == "noeviction"
    with embedded_redis(tmp_path) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("maxmemory")["maxmemory"] == str(512 * 2**20)  # before: 0 (unbounded)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.close()


def test_a_full_redis_gives_503_not_500(tmp_path: Path, tiny_model_dir: Path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis(port=server.port)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # already above: every write is refused
        settings = Settings(redis_url=server.url, models_dir=tmp_path / "models", artifacts_dir=tmp_path / "a",
                            weights_dir=tmp_path / "weights")
        (tmp_path / "models").mkdir()
        (tmp_path / "models" / "momask-small").symlink_to(tiny_model_dir)
        with TestClient(create_app(settings), raise_server_exceptions=False) as http:
            response = http.post("/generate", json={"text": "a person walks", "wait_seconds": 0})
            assert response.status_code == 503, response.text
            assert "full" in response.json()["detail"] and response.headers["retry-after"]
            assert refused(http, "store_full") == 1
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- results
def test_large_results_are_files_not_kept_in_redis(redis_url: str, tmp_path: Path):
    settings = Settings(redis_url=redis_url, artifacts_dir=tmp_path / "jobs")
    assert settings.result_inline_max_bytes == 256 * 2**10  # before: 2,000,000
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, settings.artifacts_dir, 3600, settings.result_inline_max_bytes)
    big = {"samples": [{"joints": [[0.12345] * 66] * 196}] * 8}  # about 8 x 196 frames of joints: ~0.8 MB
    small = {"samples": [{"joints": [[0.1] * 66] * 10}]}
    for result in (big, small):
        job = store.create("generate", {"text": "walk"})
        store.start(job["id"], "w", 30, 3)
        assert store.succeed(job["id"], result, "w")
        raw = client.hgetall(store.key(job["id"]))
        if result is big:
            assert "result" not in raw and raw["result_file"] == f"{job['id']}/result.json"
            assert client.memory_usage(store.key(job["id"])) < 4096
            assert (settings.artifacts_dir / job["id"] / "result.json").is_file()
        else:
            assert "result_file" not in raw and json.loads(raw["result"]) == result
        assert store.get(job["id"])["result"] == result  # the gateway reads the file back


# ---------------------------------------------------------------------------------------------- uploads
@pytest.fixture
def quota_gateway(tmp_path: Path, tiny_model_dir: Path):
    def make(**limits):
        root = tmp_path / f"g{len(list(tmp_path.iterdir()))}"
        with fuzz_settings(root, tiny_model_dir) as settings:
            settings = settings.model_copy(update=limits)
            with TestClient(create_app(settings), raise_server_exceptions=False) as http:
                yield settings, http
    return make


def test_per_job_upload_quota_covers_both_sets(quota_gateway):
    for settings, http in quota_gateway(upload_job_max_bytes=int(ONE_SET_UNPACKED * 1.5)):
        response = evaluate(http)  # each set alone fits; both together do not
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert "retain set" in detail and "per-job upload quota" in detail and str(settings.artifacts_dir) \
            not in detail
        assert refused(http, "upload_quota") == 1
        assert not any(Path(settings.artifacts_dir).rglob("*.npy")), "the refused job's files remain"


def test_total_upload_quota_and_cancel_frees_it(quota_gateway):
    for settings, http in quota_gateway(upload_total_max_bytes=int(ONE_SET_UNPACKED * 3)):
        first = evaluate(http)
        assert first.status_code == 202, first.text
        job_id = first.json()["job_id"]
        uploads = Path(settings.artifacts_dir) / job_id / "uploads"
        assert uploads.is_dir()
        second = evaluate(http)  # the first job is still queued: its sets count
        assert second.status_code == 413, second.text
        assert "upload storage is full" in second.json()["detail"]
        assert refused(http, "upload_quota") == 1
        assert http.delete(f"/jobs/{job_id}").status_code == 200
        assert not uploads.exists(), "a cancelled job's uploads stay on disk"  # before: kept for the TTL
        third = evaluate(http)
        assert third.status_code == 202, third.text


def test_the_worker_deletes_a_finished_jobs_uploads(redis_url: str, tmp_path: Path):
    settings = Settings(redis_url=redis_url, artifacts_dir=tmp_path / "jobs", models_dir=tmp_path / "models")
    runtime = WorkerRuntime(settings, name="w1")
    store = runtime.store
    job = store.create("evaluate", {"models": ["m"]})
    folder = store.uploads_dir(job["id"])
    (folder / "forget").mkdir(parents=True)
    (folder / "forget" / "a.npy").write_bytes(b"x" * 100)
    assert store.account_uploads(job["id"], 100, 10**6) == (True, 0)
    assert not store.release_uploads(job["id"])  # queued: kept
    assert runtime.execute(job["id"], lambda context: {"report": {}}) == "succeeded"
    assert not folder.exists() and (tmp_path / "jobs" / job["id"]).is_dir()
    assert not redis.Redis.from_url(redis_url).hexists(UPLOADS_KEY, job["id"])
