"""End-to-end service tests: a private Redis, a real Celery worker subprocess, the gateway in-process.

The model is a tiny random-weight MoMask saved as the default model id, so generation is fast.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from core.queue import create_celery
from core.settings import Settings
from hmu.serve import embedded_redis, worker_process
from service.main import create_app
from tests.conftest import RedisServer, free_port

GEN = {"X-API-Key": "gen-key"}
EVAL = {"X-API-Key": "eval-key"}
ADMIN = {"X-API-Key": "admin-key"}
KEYS = {"gen-key": ["generate"], "eval-key": ["evaluate"], "admin-key": ["admin"]}
HUMANML3D = Path(__file__).resolve().parents[2] / "shared" / "data" / "humanml3d"
TERMINAL = {"succeeded", "failed", "cancelled"}


def humanml3d_folder(root: Path) -> Path:
    """A tiny HumanML3D-format dataset (train/val splits, stats) from the real motions in shared/data."""
    captions = {"012314": "a person kicks with the right leg", "000612": "a person walks forward"}
    for sub in ("texts", "new_joint_vecs"):
        (root / sub).mkdir(parents=True)
    for clip, caption in captions.items():
        (root / "new_joint_vecs" / f"{clip}.npy").write_bytes((HUMANML3D / "new_joint_vecs" / f"{clip}.npy")
                                                              .read_bytes())
        (root / "texts" / f"{clip}.txt").write_text(f"{caption}#x#0.0#0.0\n")
    for name in ("Mean.npy", "Std.npy"):
        (root / name).write_bytes((HUMANML3D / name).read_bytes())
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("\n".join(captions) + "\n")
    return root


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """(settings, client, worker name): what `hmu serve` runs (embedded Redis on a unix socket, a worker
    process on every queue, the gateway), with the shipped default model and evaluator (weights/)."""
    from models.pipelines import default_model_dir

    root = tmp_path_factory.mktemp("service")
    shutil.copytree(default_model_dir("momask-small"), root / "models" / "momask-small")
    shutil.copytree(default_model_dir("evaluator"), root / "weights" / "evaluator")
    shutil.copytree(default_model_dir("violence-classifier"), root / "weights" / "violence-classifier")
    data = humanml3d_folder(root / "humanml3d")
    with embedded_redis(root / "redis") as url:
        settings = Settings(
            redis_url=url, models_dir=root / "models", weights_dir=root / "weights",
            datasets_dir=root / "datasets", artifacts_dir=root / "artifacts", unlearn_data_dir=data,
            api_keys=KEYS, batch_window_ms=150, heartbeat_interval_s=0.5, upload_max_bytes=2**20,
            verify_max_prompts=2,
        )
        yield from running_stack(settings)


def running_stack(settings: Settings):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    with worker_process(settings, concurrency=4) as process:
        deadline = time.monotonic() + 60
        while not (names := client.keys("hmu:worker:*")):
            assert process.poll() is None, "the worker process exited"
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        with TestClient(create_app(settings), raise_server_exceptions=False) as http:
            yield settings, http, names[0].removeprefix("hmu:worker:")


def poll(http: TestClient, job_id: str, headers: dict, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = http.get(f"/jobs/{job_id}", headers=headers).json()
        if body["state"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def assert_clear_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "Traceback" not in response.text
    for word in words:
        assert word in detail, detail


# ---------------------------------------------------------------------------------------------- generate
def test_generate_sync_is_seeded_and_well_formed(stack):
    _, http, _ = stack
    request = {"text": "a person walks forward", "length_frames": 40, "seed": 7, "wait_seconds": 60}
    first = http.post("/generate", json=request, headers=GEN)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["model"] == "momask-small" and body["format"] == "joints" and body["fps"] == 20
    [sample] = body["samples"]
    joints = np.asarray(sample["joints"])
    assert joints.shape == (40, 22, 3) and np.isfinite(joints).all()
    assert sample["seed"] == 7 and sample["text"] == request["text"]
    again = http.post("/generate", json=request, headers=GEN).json()
    assert again["samples"][0]["joints"] == sample["joints"]
    other = http.post("/generate", json={**request, "seed": 8}, headers=GEN).json()
    assert other["samples"][0]["joints"] != sample["joints"]


def test_generate_async_returns_job_url(stack):
    _, http, _ = stack
    response = http.post("/generate", headers=GEN, json={"text": "a man jumps", "num_samples": 2, "seed": 1,
                                                         "format": "features", "wait_seconds": 0})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["status_url"]
    assert accepted["status_url"].endswith(f"/jobs/{accepted['job_id']}")
    job = poll(http, accepted["job_id"], GEN)
    assert job["state"] == "succeeded", job
    assert job["progress"] == 1.0 and job["created_at"] <= job["started_at"] <= job["finished_at"]
    samples = job["result"]["samples"]
    assert [s["seed"] for s in samples] == [1, 2]
    for sample in samples:  # length estimated: a multiple of 4 frames
        features = np.asarray(sample["features"])
        assert features.shape == (sample["length"], 263) and sample["length"] % 4 == 0


def test_concurrent_requests_are_batched(stack):
    settings, http, _ = stack
    texts = [f"a person waves {i}" for i in range(4)]
    before = batch_calls(http)
    requests = [{"text": t, "length_frames": 40, "seed": 3, "wait_seconds": 0} for t in texts]
    ids = [http.post("/generate", headers=GEN, json=r).json()["job_id"] for r in requests]
    jobs = [poll(http, job_id, GEN) for job_id in ids]
    assert [j["result"]["samples"][0]["text"] for j in jobs] == texts  # each job gets its own motion back
    calls = batch_calls(http) - before
    assert 1 <= calls < len(texts), f"{len(texts)} concurrent requests took {calls} model calls"


def batch_calls(http: TestClient) -> int:
    text = http.get("/metrics").text
    match = re.search(r'^hmu_generate_batch_size_count\{model="momask-small"\} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0


def test_bad_inputs_get_clear_4xx(stack):
    _, http, _ = stack
    cases = [
        ({"text": ""}, "text"),
        ({"text": "   "}, "non-blank"),
        ({"text": "x" * 513}, "512"),
        ({"text": "walk", "length_frames": 20}, "length_frames"),
        ({"text": "walk", "num_samples": 9}, "num_samples"),
        ({"text": "walk", "format": "fbx"}, "format"),
        ({"text": "walk", "wait_seconds": 61}, "wait_seconds"),
        ({"text": "walk", "cond_scale": -1}, "cond_scale"),
        ({"text": "walk", "temprature": 1.0}, "temprature"),
        ({"text": "walk", "model": "../etc"}, "model"),
    ]
    for body, word in cases:
        assert_clear_error(http.post("/generate", json=body, headers=GEN), 422, word)
    unknown_model = http.post("/generate", json={"text": "walk", "model": "nope"}, headers=GEN)
    assert_clear_error(unknown_model, 404, "nope")
    json_headers = {**GEN, "content-type": "application/json"}
    not_json = http.post("/generate", content=b"{not json", headers=json_headers)
    assert_clear_error(not_json, 422, "JSON")
    assert_clear_error(http.get("/jobs/" + "0" * 32, headers=GEN), 404, "not found")
    assert_clear_error(http.get("/jobs/bad-id", headers=GEN), 422, "job_id")


def test_generate_bvh(stack):
    _, http, _ = stack
    response = http.post("/generate", headers=GEN, json={"text": "walk", "length_frames": 40, "format": "bvh",
                                                         "wait_seconds": 60})
    assert response.status_code == 200, response.text
    bvh = response.json()["samples"][0]["bvh"]
    assert bvh.startswith("HIERARCHY") and "Frames: 40" in bvh


def test_generate_glb_is_a_download_of_the_job_owner(stack, tmp_path: Path):
    from models.motion.gltf_export import read_glb
    from tests.gltf_validator import serious, validate

    _, http, _ = stack
    request = {"text": "a person walks forward", "length_frames": 40, "seed": 2, "format": "glb",
               "skeleton": "mixamo", "fps": 30, "root_motion": "in_place", "wait_seconds": 60}
    response = http.post("/generate", headers=GEN, json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "glb" and body["fps"] == 30
    [sample] = body["samples"]
    assert sample["length"] == 59  # 40 frames at 20 fps span 1.95 s: 59 frames at 30 fps
    info = sample["file"]
    assert info["url"] == f"/jobs/{body['job_id']}/artifacts/sample-0.glb" and sample["joints"] is None
    download = http.get(info["url"], headers=GEN)
    assert download.status_code == 200 and download.headers["content-type"] == "model/gltf-binary"
    assert download.content[:4] == b"glTF" and len(download.content) == info["bytes"]
    glb = read_glb(download.content)
    assert "mixamorig:Hips" in glb["names"] and len(glb["times"]) == 59
    trajectory = np.asarray(sample["root_trajectory"])
    assert trajectory.shape == (59, 3) and np.abs(trajectory[:, 1]).max() == 0
    np.testing.assert_allclose(glb["trajectory"], trajectory, atol=1e-4)
    path = tmp_path / "walk.glb"
    path.write_bytes(download.content)
    issues = validate([path])[str(path)]
    assert issues["numErrors"] == 0 and serious(issues) == [], issues["messages"]
    # the same rule as GET /jobs/{id}: another key sees nothing, an admin key sees it
    assert_clear_error(http.get(info["url"], headers=EVAL), 404, "not found")
    assert http.get(info["url"], headers=ADMIN).status_code == 200
    assert http.get(info["url"]).status_code == 401
    assert_clear_error(http.get(info["url"].replace("sample-0", "sample-1"), headers=GEN), 404, "sample-1.glb")
    assert http.get(info["url"].replace("sample-0.glb", "..%2Fresult.json"), headers=GEN).status_code in (404, 422)


def test_generate_bvh_on_a_rig_at_60_fps(stack):
    from models.data.bvh import parse_bvh

    _, http, _ = stack
    response = http.post("/generate", headers=GEN, json={
        "text": "a person jumps", "length_frames": 40, "seed": 1, "format": "bvh", "skeleton": "ue5_mannequin",
        "fps": 60, "loop": True, "wait_seconds": 0})
    assert response.status_code == 202, response.text
    job = poll(http, response.json()["job_id"], GEN)
    assert job["state"] == "succeeded", job
    assert job["result"]["fps"] == 60
    [sample] = job["result"]["samples"]
    bvh = parse_bvh(sample["bvh"])
    assert bvh.names[:2] == ["root", "pelvis"] and bvh.n_frames == sample["length"] == 118
    assert bvh.fps == pytest.approx(60) and sample.get("root_trajectory") is None  # world root motion


def test_export_fields_are_validated(stack):
    _, http, _ = stack
    cases = [
        ({"text": "walk", "format": "glb", "skeleton": "unity"}, "skeleton"),
        ({"text": "walk", "format": "glb", "fps": 25}, "fps"),
        ({"text": "walk", "format": "bvh", "root_motion": "local"}, "root_motion"),
        ({"text": "walk", "format": "bvh", "loop": "sometimes"}, "loop"),
        ({"text": "walk", "format": "joints", "fps": 60}, "fps"),
        ({"text": "walk", "skeleton": "mixamo"}, "skeleton"),
        ({"text": "walk", "format": "features", "root_motion": "in_place", "loop": True}, "root_motion"),
    ]
    for body, word in cases:
        assert_clear_error(http.post("/generate", json=body, headers=GEN), 422, word)


# ---------------------------------------------------------------------------------------------- auth
def test_auth_refusals_and_scopes(stack):
    settings, http, _ = stack
    body = {"text": "walk", "length_frames": 40, "wait_seconds": 30}
    assert_clear_error(http.post("/generate", json=body), 401, "missing API key")
    wrong = {"X-API-Key": "wrong"}
    assert_clear_error(http.post("/generate", json=body, headers=wrong), 401, "invalid API key")
    assert_clear_error(http.post("/generate", json=body, headers=EVAL), 403, "generate")
    unlearn = {"method": "lcr", "concept": "kick"}
    assert_clear_error(http.post("/unlearn", json=unlearn, headers=GEN), 403, "admin")
    assert_clear_error(http.get("/models"), 401, "API key")
    assert http.post("/generate", json=body, headers=ADMIN).status_code == 200  # admin has every scope
    assert http.get("/healthz").json() == {"status": "ok", "version": http.get("/healthz").json()["version"],
                                           "auth": "api-keys"}
    with TestClient(create_app(settings.model_copy(update={"api_keys": {}}))) as open_http:
        assert open_http.get("/healthz").json()["auth"] == "open"
        assert open_http.post("/generate", json=body).status_code == 200


# ---------------------------------------------------------------------------------------------- models
def test_models_list_detail_and_bundle_download(stack):
    settings, http, _ = stack
    models = http.get("/models", headers=GEN).json()
    default = next(m for m in models if m["id"] == "momask-small")
    assert default["default"] is True and default["kind"] == "momask"
    detail = http.get("/models/momask-small", headers=GEN).json()
    names = {f["name"] for f in detail["files"]}
    assert "config.json" in names and any(n.endswith(".safetensors") for n in names)
    assert_clear_error(http.get("/models/momask-small/files", headers=GEN), 403, "models:download")
    response = http.get("/models/momask-small/files", headers=ADMIN)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert set(members) == {f"momask-small/{n}" for n in names}
    folder = Path(settings.models_dir) / "momask-small"
    assert all(members[f"momask-small/{n}"] == (folder / n).read_bytes() for n in names)
    assert_clear_error(http.get("/models/nope", headers=GEN), 404, "nope")
    assert_clear_error(http.get("/models/Bad..Id", headers=GEN), 422, "model_id")


# ---------------------------------------------------------------------------------------------- jobs
def test_cancel_queued_job_is_never_run(stack):
    settings, http, worker = stack
    celery = create_celery(settings)
    replies = celery.control.cancel_consumer("generate", destination=[worker], reply=True, timeout=5)
    assert replies, "the worker did not answer the control command"
    try:
        queued = http.post("/generate", headers=GEN, json={"text": "a person sits", "wait_seconds": 0})
        job_id = queued.json()["job_id"]
        assert http.get(f"/jobs/{job_id}", headers=GEN).json()["state"] == "queued"
        assert_clear_error(http.delete(f"/jobs/{job_id}", headers=EVAL), 404, "not found")  # another key's job
        cancelled = http.delete(f"/jobs/{job_id}", headers=GEN)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["error"]["code"] == "cancelled"
        assert_clear_error(http.delete(f"/jobs/{job_id}", headers=GEN), 409, "already cancelled")
    finally:
        assert celery.control.add_consumer("generate", destination=[worker], reply=True, timeout=5)
    # the message is still delivered once the worker consumes again; the job must stay cancelled
    done = http.post("/generate", headers=GEN, json={"text": "walk", "length_frames": 40, "wait_seconds": 60})
    assert done.status_code == 200
    job = http.get(f"/jobs/{job_id}", headers=GEN).json()
    assert job["state"] == "cancelled" and job["result"] is None and job["attempts"] == 0


# ---------------------------------------------------------------------------------------------- unlearn
def test_unlearn_then_generate_with_the_new_model(stack):
    settings, http, _ = stack
    request = {"method": "lcr", "concept": "violence", "parameters": {"k": 2},
               "new_model_id": "momask-small-nokick", "guard": False}  # verified on 2 prompts per set
    response = http.post("/unlearn", headers=ADMIN, json=request)
    assert response.status_code == 202, response.text
    job = poll(http, response.json()["job_id"], ADMIN, timeout_s=45)
    assert job["state"] == "succeeded", job
    assert str(Path(settings.models_dir).parent) not in json.dumps(job), "a server path in the job record"
    assert job["result"]["model_id"] == "momask-small-nokick" and job["progress"] == 1.0
    detail = http.get("/models/momask-small-nokick", headers=GEN).json()
    assert detail["provenance"]["method"] == "lcr" and detail["parent"] == "momask-small"
    assert isinstance(job["result"]["safety"]["verified"], bool)
    assert detail["verified"] is job["result"]["safety"]["verified"]
    assert detail["safety"]["profile"]["prompts"]["explicit"] == 2 and "Safety verification" in detail["card"]
    assert detail["provenance"]["safety_guard"] is None
    bundle = http.get("/models/momask-small-nokick/files", headers=ADMIN)
    with tarfile.open(fileobj=io.BytesIO(bundle.content)) as archive:
        names = archive.getnames()
    assert "momask-small-nokick/vq.safetensors" in names
    assert not any("private" in name or "overlay" in name for name in names)  # LCR's private rows stay home
    request = {"text": "a person kicks", "model": "momask-small-nokick", "length_frames": 40,
               "wait_seconds": 60}
    generated = http.post("/generate", headers=GEN, json=request)
    assert generated.status_code == 200 and generated.json()["model"] == "momask-small-nokick"


def test_unlearn_bad_requests(stack):
    _, http, _ = stack
    lcr = {"method": "lcr", "concept": "violence"}
    cases = [({"method": "lcr"}, 422, "exactly one"), ({**lcr, "method": "magic"}, 422, "method"),
             ({**lcr, "concept": "kick"}, 422, "unknown concept"),
             ({"method": "lcr", "keywords": ["kick"], "parameters": {"bad key!": 1}}, 422, "bad key"),
             ({**lcr, "base_model": "nope"}, 404, "nope"),
             ({**lcr, "new_model_id": "momask-small"}, 409, "exists")]
    for body, status, word in cases:
        assert_clear_error(http.post("/unlearn", headers=ADMIN, json=body), status, word)


# ---------------------------------------------------------------------------------------------- evaluate
def motion_archive(entries: dict[str, bytes], kind: str = "zip") -> bytes:
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def real_motion_set(caption: str, clip: str = "012314", n: int = 1) -> dict[str, bytes]:
    """`n` 60-frame crops of a real HumanML3D motion with a caption, in an archive's layout."""
    features = np.load(HUMANML3D / "new_joint_vecs" / f"{clip}.npy")
    entries = {}
    for i in range(n):
        entries[f"set/new_joint_vecs/{clip}_{i}.npy"] = npy_bytes(features[10 * i: 10 * i + 60])
        entries[f"set/texts/{clip}_{i}.txt"] = f"{caption} {i}#a/DET person/NOUN#0.0#0.0\n".encode()
    return entries


def test_evaluate_uploaded_sets(stack):
    settings, http, _ = stack
    files = {"forget": ("forget.zip", motion_archive(real_motion_set("a person kicks", "012314", 3))),
             "retain": ("retain.tgz", motion_archive(real_motion_set("a person walks", "000612", 3), "tar"))}
    data = {"models": "momask-small", "parameters": json.dumps({"repeats": 1, "mm_batches": 0})}
    response = http.post("/evaluate", headers=EVAL, files=files, data=data)
    assert response.status_code == 202, response.text
    job = poll(http, response.json()["job_id"], EVAL, timeout_s=45)
    assert job["state"] == "succeeded", job
    report = job["result"]["report"]
    assert str(Path(settings.artifacts_dir).parent) not in json.dumps(job), "a server path in the job record"
    assert "artifacts_dir" not in job["result"]
    assert "momask-small" in report["models"]
    assert report["data"]["sets"]["forget"]["items"] == 3 and report["data"]["sets"]["retain"]["items"] == 3


def test_evaluate_rejects_bad_uploads(stack):
    _, http, _ = stack
    walk = real_motion_set("walk")
    good = motion_archive(walk)

    def with_motion(array: np.ndarray) -> bytes:
        return motion_archive({**walk, "set/new_joint_vecs/012314_0.npy": npy_bytes(array)})

    big = np.random.default_rng(0).bytes(2**20 + 10)
    bad_sets = {
        "escapes": (motion_archive({"../evil.txt": b"x", **walk}), 422, "'..'"),
        "absolute": (motion_archive({"/etc/evil.txt": b"x", **walk}, "tar"), 422, "absolute"),
        "pickle": (with_motion(np.array([{"a": 1}], dtype=object)), 422, "not a plain numeric"),
        "nan": (with_motion(np.full((10, 263), np.nan, np.float32)), 422, "NaN"),
        "shape": (with_motion(np.zeros((10, 22, 3), np.float32)), 422, "shape"),
        "layout": (motion_archive({"readme.txt": b"hello"}), 422, "texts/ and new_joint_vecs/"),
        "not-archive": (b"just some bytes", 400, "not a .zip"),
        "too-big": (motion_archive({"set/big.bin": big}), 413, "larger"),
    }
    for name, (payload, status, word) in bad_sets.items():
        files = {"forget": ("f.zip", payload), "retain": ("r.zip", good)}
        response = http.post("/evaluate", headers=EVAL, files=files, data={"models": "momask-small"})
        assert response.status_code == status, (name, response.text)
        assert word in response.json()["detail"] and "forget set" in response.json()["detail"], name
    both = {"forget": ("f.zip", good), "retain": ("r.zip", good)}
    only_forget = http.post("/evaluate", headers=EVAL, files={"forget": both["forget"]},
                            data={"models": "momask-small"})
    assert_clear_error(only_forget, 422, "retain")
    assert_clear_error(http.post("/evaluate", headers=EVAL, files=both, data={"models": "nope"}), 404, "nope")
    by_name = http.post("/evaluate", headers=EVAL, data={"models": "momask-small", "dataset": "nope"})
    assert_clear_error(by_name, 404, "dataset 'nope' not found")


# ---------------------------------------------------------------------------------------------- ops
def test_health_ready_and_metrics(stack):
    _, http, worker = stack
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").json() == {"status": "ready"}  # no key: no detail
    ready = http.get("/readyz", headers=GEN).json()
    assert ready["status"] == "ready" and worker in [w["name"] for w in ready["workers"]]
    text = http.get("/metrics").text
    for needle in ['hmu_http_requests_total{method="POST",route="/generate",status="200"}',
                   'hmu_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/jobs/{job_id}"}',
                   'hmu_jobs_total{state="succeeded",type="generate"}',
                   'hmu_jobs_total{state="queued",type="generate"}',
                   'hmu_queue_depth{queue="unlearn"} 0.0',
                   'hmu_job_duration_seconds_count{state="succeeded",type="generate"}',
                   'hmu_model_load_seconds_count{model="momask-small"} 1.0', "hmu_redis_up 1.0"]:
        assert needle in text, needle


def test_redis_down_gives_503_then_recovers(tmp_path: Path, tiny_model_dir: Path):
    server = RedisServer(tmp_path / "redis", port=free_port())
    settings = Settings(redis_url=server.url, artifacts_dir=tmp_path / "artifacts",
                        models_dir=tmp_path / "models", weights_dir=tmp_path / "weights", api_keys={})
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "momask-small")  # no worker runs here
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for response in (http.post("/generate", json={"text": "walk", "wait_seconds": 0}),
                         http.get("/jobs/" + "0" * 32), http.get("/readyz")):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == str(settings.retry_after_s)
        assert http.get("/healthz").status_code == 200
        assert "hmu_redis_up 0.0" in http.get("/metrics").text
        server.start()
        try:
            assert http.get("/readyz").json()["status"] == "no_worker"  # Redis is back; no worker here
            queued = http.post("/generate", json={"text": "walk", "wait_seconds": 0})
            assert queued.status_code == 202, queued.text  # no worker on this Redis: the job waits queued
            assert 'hmu_queue_depth{queue="generate"} 1.0' in http.get("/metrics").text
        finally:
            server.stop()


def test_worker_healthcheck_pings_the_local_worker(stack):
    """`hmu worker --ping` (the compose healthcheck): the worker of this host answers a Celery ping."""
    from worker.health import ping_local_workers

    settings, _, worker = stack
    assert worker in ping_local_workers(settings, timeout_s=5)


# Last: it loads two more models, which may evict the default one from the worker's cache.
def test_a_guarded_model_refuses_flagged_output_with_422_and_counts_it(stack):
    from models.evaluator.safety_guard import GuardPolicy, SafetyGuard
    from models.pipelines import default_model_dir

    settings, http, _ = stack
    for name, threshold in (("guarded-strict", 0.0), ("guarded-lax", 1.01)):
        model = Path(settings.models_dir) / name
        shutil.copytree(Path(settings.models_dir) / "momask-small", model)
        folder = SafetyGuard.attach(model, default_model_dir("violence-classifier"), GuardPolicy(max_resamples=1))
        config = json.loads((folder / "config.json").read_text())
        config["config"]["threshold"] = threshold  # 0: every motion flagged; > 1: none
        (folder / "config.json").write_text(json.dumps(config))
    request = {"text": "a person walks forward", "length_frames": 40, "seed": 7, "wait_seconds": 60}
    refused = http.post("/generate", json={**request, "model": "guarded-strict"}, headers=GEN)
    assert_clear_error(refused, 422, "unsafe_output", "safety guard")
    assert set(refused.json()) == {"detail"}  # no motion in the answer
    passed = http.post("/generate", json={**request, "model": "guarded-lax"}, headers=GEN)
    assert passed.status_code == 200, passed.text
    plain = http.post("/generate", json=request, headers=GEN).json()
    assert passed.json()["samples"][0]["joints"] == plain["samples"][0]["joints"]
    text = http.get("/metrics").text
    assert 'hmu_safety_guard_total{model="guarded-strict",outcome="refusals"} 1.0' in text
    assert 'hmu_safety_guard_total{model="guarded-strict",outcome="resamples"} 1.0' in text
    assert 'hmu_safety_guard_total{model="guarded-lax",outcome="checks"} 1.0' in text
