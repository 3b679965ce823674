"""Operations (issue 14): ids, upload parser errors, no server paths, job ownership, resource limits.

The gateway runs in-process on a private embedded Redis with no worker (accepted jobs stay queued), except
where a test needs a job to run.
"""

from __future__ import annotations

import io
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
    assert detail["status"] == "ready" and detail["redis"] is True and detail["workers"] == []


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
