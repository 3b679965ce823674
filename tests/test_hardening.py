"""Hardening (issue 7): crafted uploads, gateway restarts and Redis outages, with real processes.

SIGKILL of a worker mid-job is in tests/test_service_recovery.py (once) and bench/faults.py (20 times per
job type); schemathesis fuzzing is in tests/test_fuzz_api.py.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from bench.fuzz import fuzz_settings
from core.settings import Settings
from hmu.serve import embedded_redis, worker_process
from service.main import create_app
from service.uploads import MAX_TAR_METADATA_BYTES
from tests.conftest import RedisServer

pytestmark = pytest.mark.slow
TERMINAL = {"succeeded", "failed", "cancelled"}


# ---------------------------------------------------------------------------------------------- uploads
def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_with_header(header: bytes, data: bytes = b"\0" * 64) -> bytes:
    """A version 1.0 .npy file with a raw (possibly malformed) header dictionary and a few data bytes."""
    header = header.ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def zip_of(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # symlink
            archive.writestr(info, target)
    return buffer.getvalue()


def tar_of(entries: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
    return buffer.getvalue()


def pax_bomb(size: int) -> bytes:
    """A tar.gz whose first record is a `size`-byte pax header (a few KB compressed)."""
    body = b" comment=" + b"a" * size + b"\n"
    length = len(body) + len(str(len(body) + len(str(len(body)))))
    record = str(length).encode() + body
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(record)
    data = info.tobuf(format=tarfile.USTAR_FORMAT) + record + b"\0" * (-len(record) % 512) + b"\0" * 1024
    return gzip.compress(data)


def motion_set(array: np.ndarray | None = None, name: str = "m1") -> dict[str, bytes]:
    features = np.random.default_rng(0).standard_normal((60, 263)).astype(np.float32)
    return {f"set/new_joint_vecs/{name}.npy": npy(features if array is None else array),
            f"set/texts/{name}.txt": b"a person walks#a/DET person/NOUN#0.0#0.0\n"}


def crafted_uploads(outside: Path) -> dict[str, tuple[bytes, int, str]]:
    """name -> (forget archive, expected status, word in the error)."""
    zeros = b"\0" * (8 * 2**20)  # compresses to a few KB; the limit below is 4 MiB unpacked
    good = motion_set()
    npz = io.BytesIO()
    np.savez(npz, a=np.zeros((60, 263), np.float32))
    return {
        "pickled npy": (zip_of(motion_set(np.array([{"x": 1}], dtype=object))), 422, "not a plain numeric"),
        "npz as npy": (zip_of({**good, "set/new_joint_vecs/m1.npy": npz.getvalue()}), 422, "not a valid .npy"),
        "malformed npy header": (zip_of({**good, "set/new_joint_vecs/m1.npy": npy_with_header(b"{'descr': ")}),
                                 422, "malformed header"),
        "huge declared shape": (zip_of({**good, "set/new_joint_vecs/m1.npy": npy_with_header(
            repr({"descr": "<f4", "fortran_order": False, "shape": (10**8, 263)}).encode())}), 422, "frames"),
        "zip bomb": (zip_of({**good, "set/zeros.bin": zeros}), 413, "unpacks to more than"),
        "tar.gz bomb": (tar_of({**good, "set/zeros.bin": zeros}), 413, "unpacks to more than"),
        "pax header bomb": (pax_bomb(4 * MAX_TAR_METADATA_BYTES), 413, "header record"),
        "zip of many entries": (zip_of({**good, **{f"set/x{i}": b"" for i in range(150)}}), 413, "entries"),
        "tar of many entries": (tar_of({**good, **{f"set/x{i}": b"" for i in range(150)}}), 413, "entries"),
        "zip traversal": (zip_of({**good, "../../evil.npy": b"x"}), 422, "'..'"),
        "tar absolute path": (tar_of({**good, str(outside / "evil.txt"): b"x"}), 422, "absolute"),
        "tar symlink": (tar_of(good, {"set/texts/m2.txt": (tarfile.SYMTYPE, "/etc/passwd")}), 422, "link"),
        "tar hardlink": (tar_of(good, {"set/texts/m2.txt": (tarfile.LNKTYPE, "set/texts/m1.txt")}), 422,
                         "link"),
        "zip symlink": (zip_of(good, {"set/texts/m2.txt": str(outside)}), 422, "link"),
        "NaN": (zip_of(motion_set(np.full((60, 263), np.nan, np.float32))), 422, "NaN"),
        "inf": (zip_of(motion_set(np.full((60, 263), np.inf, np.float64))), 422, "infinite"),
        "integers": (zip_of(motion_set(np.zeros((60, 263), np.int64))), 422, "float array"),
        "wrong width": (zip_of(motion_set(np.zeros((60, 262), np.float32))), 422, "shape"),
        "one-dimensional": (zip_of(motion_set(np.zeros(263, np.float32))), 422, "shape"),
        "too many frames": (zip_of(motion_set(np.zeros((201, 263), np.float32))), 422, "frames"),
        "bad file name": (zip_of(motion_set(name="bad name$")), 422, "bad motion file name"),
        "oversize upload": (np.random.default_rng(1).bytes(2**20 + 1), 413, "larger than"),
        "not an archive": (b"%PDF-1.4 not an archive", 400, "not a .zip"),
    }


def files_under(folder: Path, skip: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and skip not in p.parents}


def test_crafted_uploads_are_refused_and_leave_nothing_behind(tmp_path: Path, tiny_model_dir: Path):
    root, outside = tmp_path / "service", tmp_path / "outside"
    outside.mkdir()
    with fuzz_settings(root, tiny_model_dir) as settings:
        settings = settings.model_copy(update={"upload_max_unpacked_bytes": 4 * 2**20,
                                               "upload_max_frames": 200, "upload_max_files": 100})
        before = files_under(tmp_path, root / "redis")
        good = zip_of(motion_set())
        with TestClient(create_app(settings), raise_server_exceptions=False) as http:
            for name, (payload, status, word) in crafted_uploads(outside).items():
                files = {"forget": ("forget.bin", payload), "retain": ("retain.zip", good)}
                response = http.post("/evaluate", files=files, data={"models": "momask-small"})
                assert response.status_code == status, (name, response.text)
                detail = response.json()["detail"]
                assert word in detail and detail.startswith("forget set"), (name, detail)
            accepted = http.post("/evaluate", files={"forget": ("f.zip", good), "retain": ("r.zip", good)},
                                 data={"models": "momask-small"})
            assert accepted.status_code == 202, accepted.text  # the same good archive is accepted
        after = files_under(tmp_path, root / "redis")
    job_dir = Path(settings.artifacts_dir) / accepted.json()["job_id"]
    assert {p for p in after - before if job_dir not in p.parents} == set(), "refused uploads left files"
    assert not any(outside.iterdir()) and not (tmp_path / "evil.npy").exists()


# ---------------------------------------------------------------------------------------------- processes
@pytest.fixture(scope="module")
def tcp_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """(settings, Redis server, worker process) on a Redis server this module may stop and restart."""
    root = tmp_path_factory.mktemp("hardening")
    shutil.copytree(tiny_model_dir, root / "models" / "momask-small")
    server = RedisServer(root / "redis").start()
    settings = Settings(redis_url=server.url, models_dir=root / "models", weights_dir=root / "weights",
                        artifacts_dir=root / "artifacts", datasets_dir=root / "datasets", api_keys={},
                        heartbeat_interval_s=0.5, retry_after_s=3)
    try:
        with worker_process(settings, concurrency=4) as worker:
            client = redis.Redis.from_url(server.url)
            deadline = time.monotonic() + 60
            while not client.keys("hmu:worker:*"):
                assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
                time.sleep(0.1)
            yield settings, server, worker
    finally:
        server.stop()


def finished(http: TestClient, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := http.get(f"/jobs/{job_id}").json())["state"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout_s} s"
        time.sleep(0.1)
    return job


def test_gateway_restart_while_jobs_run_loses_nothing(tcp_stack):
    settings, _, _ = tcp_stack
    request = {"text": "a person walks", "length_frames": 40, "num_samples": 2, "wait_seconds": 0}
    with TestClient(create_app(settings)) as first:
        ids = [first.post("/generate", json={**request, "seed": i}).json()["job_id"] for i in range(6)]
    with TestClient(create_app(settings)) as second:  # a new gateway process would see the same
        jobs = [finished(second, job_id, 60) for job_id in ids]
    assert [j["state"] for j in jobs] == ["succeeded"] * len(ids), [j["error"] for j in jobs]
    assert [j["result"]["samples"][0]["seed"] for j in jobs] == list(range(6))


def test_redis_outage_gives_503_with_retry_after_and_recovers_by_itself(tcp_stack, tmp_path: Path):
    settings, server, worker = tcp_stack
    good = zip_of(motion_set())
    uploads = {"forget": ("f.zip", good), "retain": ("r.zip", good)}
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        server.stop()
        calls = [("post", "/generate", {"json": {"text": "walk", "wait_seconds": 0}}),
                 ("post", "/unlearn", {"json": {"method": "lcr", "concept": "violence"}}),
                 ("post", "/evaluate", {"data": {"models": "momask-small"}, "files": uploads}),
                 ("get", "/jobs/" + "0" * 32, {}), ("delete", "/jobs/" + "0" * 32, {}), ("get", "/readyz", {})]
        for method, path, options in calls:
            response = getattr(http, method)(path, **options)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.headers["retry-after"] == "3", path
        assert http.get("/healthz").status_code == 200 and http.get("/models").status_code == 200
        artifacts = Path(settings.artifacts_dir)
        # finished generate jobs of earlier tests keep their motions (motion_<i>.npy, for edits): not uploads
        leftovers = [p for p in artifacts.rglob("*.npy") if not p.name.startswith("motion_")] \
            if artifacts.exists() else []
        assert not leftovers, f"uploads of a refused job remain: {leftovers[:3]}"
        server.start()  # same port, empty database: the gateway and the worker reconnect on their own
        assert http.get("/readyz").json()["status"] in ("ready", "no_worker")  # Redis answers again
        deadline = time.monotonic() + 60
        while not (ready := http.get("/readyz").json())["workers"]:  # the worker beats again
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not come back"
            time.sleep(0.2)
        response = http.post("/generate", json={"text": "a person jumps", "length_frames": 40, "seed": 1,
                                                "wait_seconds": 0})
        assert response.status_code == 202, response.text
        job = finished(http, response.json()["job_id"], 60)
        assert job["state"] == "succeeded", job
    assert ready["status"] == "ready"


def test_embedded_redis_stops_even_while_clients_are_connected(tmp_path: Path):
    """`hmu serve` exits with the gateway's connection pools still open: its Redis must stop anyway."""
    with embedded_redis(tmp_path) as url:
        client = redis.Redis.from_url(url)
        client.set("job", "kept")  # this connection stays open
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    client.close()
    with embedded_redis(tmp_path) as url:  # and the data survived the shutdown
        assert redis.Redis.from_url(url).get("job") == b"kept"
