"""Operations (issue 14): ids, upload parser errors, no server paths, job ownership, resource limits.

The gateway runs in-process on a private embedded Redis with no worker (accepted jobs stay queued), except
where a test needs a job to run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.fuzz import fuzz_settings
from core import registry
from core.jobstore import HIDDEN_PATH, JobStore, scrub_paths
from core.settings import Settings
from service.deps import key_fingerprint
from service.main import create_app
from service.uploads import UploadError, load_features

KEYS = {"gen-a": ["generate"], "gen-b": ["generate"], "eval-key": ["evaluate"], "admin-key": ["admin"],
        "download-key": ["generate", "models:download"]}
A, B, ADMIN = {"X-API-Key": "gen-a"}, {"X-API-Key": "gen-b"}, {"X-API-Key": "admin-key"}
DOTS = "momask..small"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    root = tmp_path_factory.mktemp("operations")
    with fuzz_settings(root, tiny_model_dir, KEYS) as settings, \
            TestClient(create_app(settings), raise_server_exceptions=False) as http:
        yield settings, http


def assert_status(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    for word in words:
        assert word in body["detail"], body
    return body


# ---------------------------------------------------------------------------------------------- ids
@pytest.mark.parametrize("name", [DOTS, "a..", "..", "a/b", "a\\b", ".hidden", "a.", "A", "x" * 65, "a b"])
def test_one_id_pattern_refuses_dots_and_separators(name: str):
    assert not registry.is_valid_id(name)
    with pytest.raises(registry.InvalidId):
        registry.check_id(name)


@pytest.mark.parametrize("name", ["momask-small", "momask-small-lcr-kick", "m.v2", "a_b.c-d", "0", "x" * 64])
def test_ids_that_stay_valid(name: str):
    assert registry.is_valid_id(name) and registry.check_id(name) == name


def test_resolve_in_stays_inside_its_root(tmp_path: Path):
    assert registry.resolve_in(tmp_path, "m.v2") == tmp_path / "m.v2"
    for name in (DOTS, "..", "a/../b"):
        with pytest.raises(registry.InvalidId):
            registry.resolve_in(tmp_path, name)


def test_ids_with_double_dots_get_422_everywhere(gateway):
    _, http = gateway
    assert_status(http.get(f"/models/{DOTS}", headers=ADMIN), 422, "model_id")
    assert_status(http.get(f"/models/{DOTS}/files", headers=ADMIN), 422, "model_id")
    assert_status(http.post("/generate", headers=ADMIN, json={"text": "walk", "model": DOTS}), 422, "model")
    for field in ("base_model", "new_model_id"):
        body = {"method": "uce", "concept": "kick", field: DOTS}
        assert_status(http.post("/unlearn", headers=ADMIN, json=body), 422, field)
    form = {"models": "momask-small", "dataset": DOTS}
    assert_status(http.post("/evaluate", headers=ADMIN, data=form), 422, "dataset")
    assert_status(http.post("/evaluate", headers=ADMIN, data={"models": DOTS, "dataset": "x"}), 422, "invalid")


# ---------------------------------------------------------------------------------------------- uploads
def raw_npy(header: bytes, data: bytes = b"\0" * 64) -> bytes:
    header = header.ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def shape_header(shape: tuple, descr: str = "<f4") -> bytes:
    return repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()


@pytest.mark.parametrize(("payload", "word"), [
    (raw_npy(b"{'descr': "), "malformed header"),
    (raw_npy(b"not a dict at all"), "malformed header"),
    (raw_npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1e400, 263)}"), "malformed header"),
    (b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 100, "malformed header"),
    (raw_npy(shape_header((10**8, 263))), "frames"),
    (raw_npy(shape_header((100, 263))), "size does not match"),
    (raw_npy(shape_header((2, 263), "|O")), "not a plain numeric"),
    (b"PK\x03\x04 not an npy", "not a valid .npy"),
])
def test_npy_parser_errors_are_upload_errors(tmp_path: Path, payload: bytes, word: str):
    path = tmp_path / "m.npy"
    path.write_bytes(payload)
    with pytest.raises(UploadError, match=word) as caught:
        load_features(path, max_frames=2000)
    assert caught.value.status == 422


def test_a_huge_declared_array_is_never_allocated(tmp_path: Path):
    path = tmp_path / "m.npy"
    path.write_bytes(raw_npy(shape_header((10**8, 263))))  # 105 GB declared in 192 bytes
    with pytest.raises(UploadError, match="size does not match"):
        load_features(path, max_frames=10**9)  # even when the frame limit would allow it


def test_a_good_npy_still_loads(tmp_path: Path):
    buffer = io.BytesIO()
    np.save(buffer, np.ones((60, 263), np.float32))
    path = tmp_path / "m.npy"
    path.write_bytes(buffer.getvalue())
    assert load_features(path, max_frames=200).shape == (60, 263)


# ---------------------------------------------------------------------------------------------- server paths
def test_scrub_paths_hides_server_folders_and_absolute_paths():
    text = ("wrote /tmp/pytest-7/models/.tmp-0123 and [Errno 17] File exists: 'artifacts/models/.tmp-ab' -> "
            "'artifacts/models/m1'; GET /models lists them")
    scrubbed = scrub_paths(text, ("artifacts/models",))
    assert "/tmp" not in scrubbed and "artifacts/" not in scrubbed and ".tmp-" not in scrubbed, scrubbed
    assert scrubbed.count(HIDDEN_PATH) == 3 and "GET /models lists them" in scrubbed, scrubbed


def test_job_messages_carry_no_server_paths(redis_url: str, tmp_path: Path):
    import redis

    settings = Settings(models_dir=tmp_path / "models", artifacts_dir=Path("artifacts/jobs"))
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True), settings.artifacts_dir, 600,
                     private_dirs=settings.server_dirs)
    job = store.create("unlearn", {}, "m", owner="key-x")
    store.start(job["id"], "w", 30, 3)
    store.progress(job["id"], 0.5, f"wrote {tmp_path / 'models' / '.tmp-1'}")
    assert store.get(job["id"])["message"] == f"wrote {HIDDEN_PATH}"
    store.fail(job["id"], "conflict", "File exists: 'artifacts/jobs/x/report' (see /var/lib/hmu/a.log)")
    message = store.get(job["id"])["error"]["message"]
    assert message == f"File exists: '{HIDDEN_PATH}' (see {HIDDEN_PATH})", message
    assert store.get(job["id"])["owner"] == "key-x"


def test_readyz_details_only_with_a_valid_key(gateway):
    _, http = gateway
    for headers in ({}, {"X-API-Key": "wrong"}):
        response = http.get("/readyz", headers=headers)
        assert response.status_code == 200 and response.json() == {"status": "ready"}, response.text
    detail = http.get("/readyz", headers=A).json()
    assert detail["status"] == "ready" and detail["redis"] is True
    assert [w["name"] for w in detail["workers"]] == ["fuzz-stand-in"]


# ---------------------------------------------------------------------------------------------- ownership
def test_jobs_belong_to_the_key_that_created_them(gateway):
    _, http = gateway
    job_id = http.post("/generate", headers=A, json={"text": "walk", "wait_seconds": 0}).json()["job_id"]
    assert http.get(f"/jobs/{job_id}", headers=A).status_code == 200
    assert_status(http.get(f"/jobs/{job_id}", headers=B), 404, "not found")  # not 403: existence is private
    assert_status(http.delete(f"/jobs/{job_id}", headers=B), 404, "not found")
    assert http.get(f"/jobs/{job_id}", headers=A).json()["state"] == "queued"  # B's cancel changed nothing
    assert http.get(f"/jobs/{job_id}", headers=ADMIN).json()["id"] == job_id  # admin reads every job
    assert http.delete(f"/jobs/{job_id}", headers=A).json()["state"] == "cancelled"
    assert "owner" not in http.get(f"/jobs/{job_id}", headers=A).json()  # the fingerprint stays internal


def test_key_fingerprint_is_stable_and_not_the_key():
    fingerprint = key_fingerprint("gen-a")
    assert fingerprint == key_fingerprint("gen-a") != key_fingerprint("gen-b")
    assert "gen-a" not in fingerprint and len(fingerprint) == 20


def test_model_download_needs_its_own_scope(gateway):
    _, http = gateway
    assert http.get("/models/momask-small", headers=A).status_code == 200  # reading the card stays open
    assert_status(http.get("/models/momask-small/files", headers=A), 403, "models:download")
    for headers in ({"X-API-Key": "download-key"}, ADMIN):
        response = http.get("/models/momask-small/files", headers=headers)
        assert response.status_code == 200 and response.headers["content-type"] == "application/x-tar"


# ---------------------------------------------------------------------------------------------- limits
MiB = 2**20


class CountingBody:
    """A request body of `chunks` MiB, produced lazily; counts how many chunks the server pulled."""

    def __init__(self, chunks: int, head: bytes = b""):
        self.chunks, self.head, self.pulled = chunks, head, 0

    def __iter__(self):
        block = b"x" * MiB
        for i in range(self.chunks):
            self.pulled += 1
            yield self.head + block if i == 0 else block


def metric(http: TestClient, reason: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'hmu_requests_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_auth_is_checked_before_the_body_is_read(gateway):
    _, http = gateway
    before = metric(http, "unauthenticated")
    body = CountingBody(120)  # 120 MiB, chunked
    response = http.post("/generate", content=body, headers={"content-type": "application/json"})
    assert_status(response, 401, "missing API key")
    assert body.pulled <= 1, f"{body.pulled} MiB of an unauthenticated body were read"
    sized = CountingBody(120)
    response = http.post("/evaluate", content=sized, headers={"X-API-Key": "wrong",
                                                              "content-length": str(120 * MiB)})
    assert_status(response, 401, "invalid API key")
    assert sized.pulled <= 1 and metric(http, "unauthenticated") == before + 2


def asgi_post(app, path: str, headers: dict[str, str], body: CountingBody) -> tuple[int, dict]:
    """POST `body` to the ASGI `app` chunk by chunk, as a server streams it (the test client reads it whole)."""
    import asyncio

    chunks = iter(body)
    sent: list[dict] = []

    async def receive() -> dict:
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("test", 80), "app": app}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def test_body_size_is_enforced_while_streaming(gateway):
    settings, http = gateway
    app = http.app
    before = metric(http, "body_too_large")
    limit = settings.body_max_bytes
    multipart = {**ADMIN, "content-type": "multipart/form-data; boundary=b", "transfer-encoding": "chunked"}
    chunked = CountingBody(limit // MiB + 20, head=b'--b\r\nContent-Disposition: form-data; name="forget"; '
                                                    b'filename="f.zip"\r\n\r\n')
    status, body = asgi_post(app, "/evaluate", multipart, chunked)
    assert status == 413 and f"larger than {limit} bytes" in body["detail"], body
    assert chunked.pulled <= limit // MiB + 2, f"read {chunked.pulled} MiB past a {limit // MiB} MiB limit"
    streamed = CountingBody(50, head=b'{"text": "')
    json_headers = {**A, "content-type": "application/json", "transfer-encoding": "chunked"}
    status, body = asgi_post(app, "/generate", json_headers, streamed)
    assert status == 413 and f"larger than {settings.json_max_bytes} bytes" in body["detail"], body
    assert streamed.pulled <= 2, f"read {streamed.pulled} MiB of a JSON body past its limit"
    big_json = b'{"text": "' + b"x" * (settings.json_max_bytes + 10) + b'"}'
    assert_status(http.post("/generate", content=big_json, headers={**A, "content-type": "application/json"}),
                  413, f"larger than {settings.json_max_bytes} bytes")
    assert metric(http, "body_too_large") == before + 3


def test_rate_limit_per_key_is_kept_in_redis(gateway):
    settings, _ = gateway
    limited = settings.model_copy(update={"rate_limit_per_minute": 5,
                                          "api_keys": {**settings.api_keys, "limited": ["generate"]}})
    key = {"X-API-Key": "limited"}
    with TestClient(create_app(limited)) as first, TestClient(create_app(limited)) as second:  # two replicas
        for http in (first, second, first, second, first):
            assert http.get("/models", headers=key).status_code == 200
        response = second.get("/models", headers=key)
        assert_status(response, 429, "rate limit", "5 requests")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert first.get("/models", headers=B).status_code == 200  # other keys are not affected
        assert metric(second, "rate_limited") == 1


def test_active_jobs_per_key_are_bounded_across_replicas(gateway):
    settings, _ = gateway
    busy = settings.model_copy(update={"max_active_jobs_per_key": 2,
                                       "api_keys": {**settings.api_keys, "busy": ["generate"]}})
    key, body = {"X-API-Key": "busy"}, {"text": "walk", "wait_seconds": 0}
    with TestClient(create_app(busy)) as first, TestClient(create_app(busy)) as second:
        ids = [first.post("/generate", headers=key, json=body).json()["job_id"] for _ in range(2)]
        assert_status(second.post("/generate", headers=key, json=body), 429, "2 queued or running", "limit 2")
        assert second.post("/generate", headers=B, json=body).status_code == 202  # B has its own budget
        assert first.delete(f"/jobs/{ids[0]}", headers=key).status_code == 200
        assert second.post("/generate", headers=key, json=body).status_code == 202  # a slot was freed
        assert metric(second, "too_many_jobs") == 1


def test_a_hung_redis_gives_503_within_a_second(tmp_path: Path, tiny_model_dir: Path):
    import os
    import shutil
    import signal
    import time

    from tests.conftest import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "momask-small")
    settings = Settings(redis_url=server.url, models_dir=tmp_path / "models", weights_dir=tmp_path / "weights",
                        artifacts_dir=tmp_path / "artifacts", api_keys=KEYS)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as http:
            assert http.get("/readyz").json()["status"] == "no_worker"  # Redis answers (and no worker runs)
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                for method, path, options in [("get", "/readyz", {}), ("get", "/jobs/" + "0" * 32, {}),
                                              ("post", "/generate", {"json": {"text": "walk", "wait_seconds": 0}})]:
                    start = time.monotonic()
                    response = getattr(http, method)(path, headers=A, **options)
                    elapsed = time.monotonic() - start
                    assert response.status_code == 503, (path, response.text)
                    assert elapsed <= 1.0, f"{path}: 503 after {elapsed:.2f} s"
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert http.get("/readyz").json()["status"] == "no_worker"
    finally:
        server.stop()


def test_results_are_scrubbed_recursively(tmp_path: Path):
    import redis

    store = JobStore(redis.Redis(), tmp_path, 600)  # no Redis call is made
    report = {"data": {"data_dir": str(tmp_path / "uploads"), "sets": [{"path": "/srv/x/forget", "items": 3}]},
              "score": 0.5, "name": "momask-small"}
    assert store.scrub_tree(report) == {"data": {"data_dir": HIDDEN_PATH, "sets": [{"path": HIDDEN_PATH,
                                                                                     "items": 3}]},
                                        "score": 0.5, "name": "momask-small"}


def test_public_endpoints_need_no_key_even_with_a_body(gateway):
    _, http = gateway
    response = http.request("GET", "/healthz", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
