"""Deployment (issue 14): the gateway refuses to run open beyond loopback, API keys come from a secrets file,
and docker-compose.yml wires worker healthchecks, a Prometheus volume and alert rules, and the dataset the
LCR / FT methods need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from bench.fuzz import fuzz_settings
from core.settings import REPO_ROOT, Settings, settings_env
from core.workers import WORKER_KEY
from service.main import check_exposure, create_app, is_loopback
from worker.health import ping_local_workers

URL = "redis://127.0.0.1:1/0"


# ---------------------------------------------------------------------------------------------- exposure
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_open_mode_is_fine_on_loopback(host: str):
    assert is_loopback(host)
    check_exposure(host, Settings(redis_url=URL))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gateway.example.org"])
def test_open_mode_beyond_loopback_needs_keys_or_allow_open(host: str):
    assert not is_loopback(host)
    with pytest.raises(ValueError, match="HMU_ALLOW_OPEN"):
        check_exposure(host, Settings(redis_url=URL))
    check_exposure(host, Settings(redis_url=URL, allow_open=True))
    check_exposure(host, Settings(redis_url=URL, api_keys={"k": ["admin"]}))


def test_hmu_serve_refuses_to_start_open_on_all_interfaces(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HMU_DATA_DIR": str(tmp_path / "local")}
    done = subprocess.run([sys.executable, "-m", "hmu.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr
    assert not (tmp_path / "local").exists()  # nothing was started (no embedded Redis)


# ---------------------------------------------------------------------------------------------- keys file
def test_api_keys_from_a_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secret = tmp_path / "keys.json"
    secret.write_text(json.dumps({"s3cret": ["admin"], "gen": ["generate"]}))
    monkeypatch.setenv("HMU_API_KEYS_FILE", str(secret))
    monkeypatch.delenv("HMU_API_KEYS", raising=False)
    settings = Settings(redis_url=URL)
    assert settings.api_keys == {"s3cret": ["admin"], "gen": ["generate"]} and not settings.open_mode
    assert "HMU_API_KEYS_FILE" not in settings_env(settings)
    monkeypatch.setenv("HMU_API_KEYS", '{"other": ["admin"]}')
    with pytest.raises(ValueError, match="not both"):
        Settings(redis_url=URL)
    monkeypatch.delenv("HMU_API_KEYS")
    secret.write_text('{"bad": ["root"]}')
    with pytest.raises(ValueError):
        Settings(redis_url=URL)
    secret.write_text("not json")
    with pytest.raises(ValueError, match="HMU_API_KEYS_FILE"):
        Settings(redis_url=URL)


# ---------------------------------------------------------------------------------------------- compose
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_keeps_keys_in_a_secret_for_the_gateway_only():
    services = compose()["services"]
    for name, service in services.items():
        assert "HMU_API_KEYS" not in (service.get("environment") or {}), f"{name} has the keys in its env"
    gateway = services["gateway"]
    assert gateway["environment"]["HMU_API_KEYS_FILE"] == "/run/secrets/hmu_api_keys"
    assert gateway["secrets"] == ["hmu_api_keys"] and "hmu_api_keys" in compose()["secrets"]
    assert "HMU_ALLOW_OPEN" in gateway["environment"]
    example = json.loads((REPO_ROOT / "secrets" / "api_keys.example.json").read_text())
    assert Settings(redis_url=URL, api_keys=example).api_keys  # the example is a valid keys file


def test_compose_worker_healthchecks_ping_celery():
    services = compose()["services"]
    for name in ("worker", "worker-jobs"):
        test = services[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "hmu", "worker", "--ping"], (name, test)


def test_compose_builds_and_mounts_the_unlearning_dataset():
    services = compose()["services"]
    data_dir = services["worker-jobs"]["environment"]["HMU_UNLEARN_DATA_DIR"]
    assert data_dir.startswith("/data/")  # on the shared volume
    command = " ".join(services["dataset"]["command"])
    assert "hmu data build" in command and f"--out {data_dir}" in command
    assert any(str(v).endswith(":/data") for v in services["dataset"]["volumes"])
    assert services["worker-jobs"]["depends_on"]["dataset"]["condition"] == "service_completed_successfully"


def test_prometheus_has_a_volume_and_alert_rules_on_exported_metrics(tmp_path: Path, tiny_model_dir: Path):
    prometheus = compose()["services"]["prometheus"]
    volumes = [str(v) for v in prometheus["volumes"]]
    assert any(v.endswith(":/prometheus") for v in volumes)
    assert "./prometheus-alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    config = yaml.safe_load((REPO_ROOT / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    rules = yaml.safe_load((REPO_ROOT / "prometheus-alerts.yml").read_text())
    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    assert {"HmuWorkerDown", "HmuQueueBacklog", "HmuJobFailureRate", "HmuRedisDown"} <= set(alerts)
    with fuzz_settings(tmp_path, tiny_model_dir) as settings, TestClient(create_app(settings)) as http:
        metrics = http.get("/metrics").text
    assert 'hmu_workers_live{queue="unlearn"} 1.0' in metrics  # the stand-in worker consumes every queue
    for name in ("hmu_workers_live", "hmu_queue_depth", "hmu_jobs_total", "hmu_redis_up",
                 "hmu_requests_refused_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in metrics, name
    assert "hmu_workers_live" in alerts["HmuWorkerDown"] and "hmu_redis_up" in alerts["HmuRedisDown"]
    assert "hmu_queue_depth" in alerts["HmuQueueBacklog"] and "hmu_jobs_total" in alerts["HmuJobFailureRate"]


def test_worker_ping_without_a_local_worker_fails(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(WORKER_KEY + "hmu-x-1@elsewhere", json.dumps({"name": "hmu-x-1@elsewhere", "queues": []}), ex=60)
    try:
        assert ping_local_workers(Settings(redis_url=redis_url), timeout_s=0.5) == []  # not this host's
    finally:
        client.delete(WORKER_KEY + "hmu-x-1@elsewhere")
