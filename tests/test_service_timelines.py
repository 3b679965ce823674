"""POST /generate timelines (`segments`) and edits (`edit`), POST /motions uploads: end to end with a worker."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from core.settings import Settings
from hmu.serve import embedded_redis
from tests.test_service import assert_clear_error, poll, running_stack

GEN = {"X-API-Key": "gen-key"}
OTHER = {"X-API-Key": "other-key"}
ADMIN = {"X-API-Key": "admin-key"}
KEYS = {"gen-key": ["generate"], "other-key": ["generate"], "admin-key": ["admin"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    from models.pipelines import default_model_dir

    root = tmp_path_factory.mktemp("timelines")
    shutil.copytree(default_model_dir("momask-small"), root / "models" / "momask-small")
    with embedded_redis(root / "redis") as url:
        settings = Settings(redis_url=url, models_dir=root / "models", weights_dir=root / "weights",
                            datasets_dir=root / "datasets", artifacts_dir=root / "artifacts", api_keys=KEYS,
                            batch_window_ms=50, heartbeat_interval_s=0.5, upload_max_bytes=2**20)
        yield from running_stack(settings)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_timeline_sync_with_segment_spans_and_one_seed(stack):
    _, http, _ = stack
    request = {"segments": [{"text": "a person walks forward", "seconds": 2},
                            {"text": "a person jumps", "seconds": 1.7}],
               "seed": 3, "format": "features", "wait_seconds": 60}
    response = http.post("/generate", json=request, headers=GEN)
    assert response.status_code == 200, response.text
    [sample] = response.json()["samples"]
    assert sample["length"] == 72 and np.asarray(sample["features"]).shape == (72, 263)
    assert sample["segments"] == [{"text": "a person walks forward", "start": 0, "end": 40},
                                  {"text": "a person jumps", "start": 40, "end": 72}]
    again = http.post("/generate", json=request, headers=GEN).json()["samples"][0]
    assert again["features"] == sample["features"]


def test_edit_a_generated_motion_keeps_the_kept_frames(stack):
    _, http, _ = stack
    source = http.post("/generate", headers=GEN, json={"text": "a person walks forward", "length_frames": 40,
                                                       "seed": 1, "format": "features", "wait_seconds": 60})
    assert source.status_code == 200, source.text
    source_features = np.asarray(source.json()["samples"][0]["features"])
    edit = {"source": source.json()["job_id"], "keep": [[28, 40], [0, 12]]}
    response = http.post("/generate", headers=GEN, json={"text": "a person jumps", "edit": edit, "seed": 2,
                                                         "format": "features", "wait_seconds": 60})
    assert response.status_code == 200, response.text
    [sample] = response.json()["samples"]
    features = np.asarray(sample["features"])
    assert sample["kept"] == [[0, 12], [28, 40]] and features.shape == (40, 263)
    np.testing.assert_array_equal(features[:12], source_features[:12])
    np.testing.assert_array_equal(features[28:], source_features[28:])
    assert not np.array_equal(features[12:28], source_features[12:28])


def test_uploaded_motion_is_an_edit_source_of_its_key_only(stack):
    _, http, _ = stack
    motion = np.random.default_rng(0).normal(0, 0.5, (50, 263)).astype(np.float32)
    files = {"motion": ("walk.npy", npy_bytes(motion), "application/octet-stream")}
    uploaded = http.post("/motions", files=files, headers=GEN)
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["frames"] == 50 and body["feature_dim"] == 263
    assert http.get(f"/jobs/{body['job_id']}", headers=GEN).json()["state"] == "succeeded"
    request = {"text": "a person waves", "edit": {"source": body["job_id"], "keep": [[0, 16]]},
               "format": "features", "wait_seconds": 0}
    accepted = http.post("/generate", json=request, headers=GEN)
    assert accepted.status_code == 202, accepted.text
    job = poll(http, accepted.json()["job_id"], GEN, timeout_s=60)
    assert job["state"] == "succeeded", job
    features = np.asarray(job["result"]["samples"][0]["features"])
    assert features.shape == (48, 263)                                  # 50 frames floored to 48
    np.testing.assert_array_equal(features[:16], np.round(motion[:16].astype(np.float64), 5))
    assert_clear_error(http.post("/generate", json=request, headers=OTHER), 404, "not found")
    assert http.post("/generate", json={**request, "wait_seconds": 60}, headers=ADMIN).status_code == 200
    too_long = {"motion": ("x.npy", npy_bytes(np.zeros((197, 263), np.float32)), "application/octet-stream")}
    assert_clear_error(http.post("/motions", files=too_long, headers=GEN), 422, "197 frames")
    wrong = {"motion": ("x.npy", npy_bytes(np.zeros((40, 22, 3), np.float32)), "application/octet-stream")}
    assert_clear_error(http.post("/motions", files=wrong, headers=GEN), 422, "shape")


def test_timeline_and_edit_requests_get_clear_errors(stack):
    _, http, _ = stack
    source = http.post("/generate", headers=GEN, json={"text": "walk", "length_frames": 40, "wait_seconds": 60})
    source_id = source.json()["job_id"]
    seg = {"text": "walk", "seconds": 10}
    cases = [
        ({"segments": [seg] * 7}, "at most 60 s"),
        ({"segments": [{"text": "walk", "seconds": 1}] * 13}, "segments"),
        ({"segments": [{"text": " ", "seconds": 2}]}, "non-blank"),
        ({"segments": [{"text": "walk", "seconds": 0.1}]}, "seconds"),
        ({"segments": [seg], "text": "walk"}, "exactly one"),
        ({}, "exactly one"),
        ({"segments": [seg], "length_frames": 80}, "length_frames"),
        ({"text": "jump", "edit": {"source": source_id, "keep": [[0, 20], [10, 30]]}}, "overlap"),
        ({"text": "jump", "edit": {"source": source_id, "keep": [[20, 20]]}}, "empty"),
        ({"text": "jump", "edit": {"source": source_id, "keep": [[0, 300]]}}, "keep"),
        ({"text": "jump", "edit": {"source": source_id, "keep": []}}, "keep"),
        ({"text": "jump", "edit": {"source": "nope", "keep": [[0, 8]]}}, "source"),
        ({"text": "jump", "edit": {"source": source_id, "keep": [[0, 44]]}}, "ends after the source's 40"),
        ({"text": "jump", "edit": {"source": source_id, "sample": 1, "keep": [[0, 8]]}}, "no sample 1"),
    ]
    for body, word in cases:
        assert_clear_error(http.post("/generate", json=body, headers=GEN), 422, word)
    unknown = {"text": "jump", "edit": {"source": "0" * 32, "keep": [[0, 8]]}}
    assert_clear_error(http.post("/generate", json=unknown, headers=GEN), 404, "not found")
