"""One settings object for the gateway, the workers and the CLI (environment variables `HMU_*`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.common.package_data import shipped_path

Scope = Literal["generate", "evaluate", "models:download", "admin"]
SCOPES: tuple[Scope, ...] = ("generate", "evaluate", "models:download", "admin")  # README: "API keys and scopes"
QUEUES: tuple[str, ...] = ("generate", "unlearn", "evaluate")
REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Service configuration. Every field can be set as `HMU_<FIELD>` (e.g. `HMU_REDIS_URL`).

    `api_keys` is JSON: `HMU_API_KEYS='{"secret-1": ["generate"], "secret-2": ["admin"]}'`.
    No keys configured means open local mode (every endpoint is unauthenticated).
    """

    model_config = SettingsConfigDict(env_prefix="HMU_", extra="ignore", env_ignore_empty=True)

    # Where things live
    redis_url: str | None = Field(None, description="redis://host:port/db or unix:///x.sock; None = embedded")
    models_dir: Path = Field(Path("artifacts/models"), description="registered (e.g. unlearned) models")
    weights_dir: Path = Field(shipped_path("weights"), description="shipped models, read-only")
    datasets_dir: Path = Field(Path("artifacts/datasets"), description="<name>/{forget,retain} sets")
    artifacts_dir: Path = Field(Path("artifacts/jobs"), description="results, uploads (shared)")
    data_dir: Path = Field(Path("artifacts/local"), description="embedded Redis database (`hmu serve`)")
    unlearn_data_dir: Path | None = Field(None, description="HumanML3D-format data for LCR / FT / ESD")
    default_model: str = "momask-small"
    device: str = "cpu"
    verify_max_prompts: int | None = Field(None, ge=1, le=1000, description="POST /unlearn verification: at "
                                           "most this many prompts per frozen set (None: all)")

    # Auth
    api_keys: dict[str, list[Scope]] = Field(default_factory=dict)
    api_keys_file: Path | None = Field(None, description="JSON file with the keys (same layout as HMU_API_KEYS), "
                                       "e.g. a Docker secret; instead of HMU_API_KEYS")
    allow_open: bool = Field(False, description="let the gateway listen on a non-loopback address with no API "
                                                "key (open mode); refused otherwise")

    @model_validator(mode="before")
    @classmethod
    def _keys_from_file(cls, values: Any) -> Any:
        """Read `api_keys_file` into `api_keys` (a secrets file keeps the keys out of the environment)."""
        if not isinstance(values, dict) or not values.get("api_keys_file"):
            return values
        if values.get("api_keys"):
            raise ValueError("set HMU_API_KEYS or HMU_API_KEYS_FILE, not both")
        path = Path(values["api_keys_file"])
        try:
            keys = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"HMU_API_KEYS_FILE: cannot read a JSON object of keys ({type(error).__name__})") \
                from error
        return {**values, "api_keys": keys}

    # Jobs
    job_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    artifacts_sweep_interval_s: int = Field(
        3600, ge=60, description="at most this often a worker deletes the files of jobs whose record expired "
                    "and that were not touched for as long")
    result_inline_max_bytes: int = Field(256 * 2**10, ge=1024, description="larger results are stored as files "
                                         "under artifacts_dir (read back by the gateway), not in Redis")
    job_max_attempts: int = Field(3, ge=1, le=20, description="deliveries before a job fails as worker-lost")
    heartbeat_interval_s: float = Field(5.0, gt=0)
    job_stale_after_s: float = Field(30.0, gt=0, description="no heartbeat this long: worker presumed dead")
    visibility_timeout_s: int = Field(300, ge=1, description="unacked messages are redelivered after this")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503 when Redis is unreachable")
    redis_timeout_s: float = Field(0.4, gt=0, le=30, description="Redis connect and socket timeout: a hung "
                                   "Redis costs at most this per call (a request makes at most two: 503 < 1 s)")

    # Limits (refused with 413 / 429 and counted in hmu_requests_refused_total)
    request_max_bytes: int | None = Field(None, ge=1024, description="largest request body, checked while it "
                                          "streams (chunked too); None: 2 x upload_max_bytes + 1 MiB")
    json_max_bytes: int = Field(2**20, ge=1024, description="largest JSON request body")
    rate_limit_per_minute: int = Field(600, ge=0, description="requests per API key per minute, counted in "
                                       "Redis across gateway replicas; 0: no limit")
    max_active_jobs_per_key: int = Field(32, ge=0, description="queued + running jobs per API key; 0: no limit")

    # Workers
    worker_concurrency: int = Field(4, ge=1, le=64)
    batch_window_ms: float = Field(10.0, ge=0, le=1000, description="time to gather a generate batch")
    batch_max_size: int = Field(32, ge=1, le=512, description="most motions generated in one call")
    batch_length_bucket_frames: int = Field(
        40, ge=0, le=1000, description="requests share a generate batch only when their lengths fall in the "
                                       "same bucket of this many frames (less padding); 0: any lengths")
    model_cache_size: int = Field(2, ge=1, le=16)
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="torch intra-op threads per model call; None: the usable CPUs (affinity, "
                                        "cgroup quota) divided by the model calls a worker can run at once")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="token generation: fp32 (exact), bf16 autocast or int8 dynamic quantisation (CPU); "
                            "BENCHMARKS.md issue 15 gives the speed and token agreement of each")
    preload_default_model: bool = True

    # `hmu serve` as a supervisor (embedded mode)
    worker_stop_timeout_s: float = Field(30.0, gt=0, description="on shutdown, time the worker has to finish "
                                         "or give back its jobs (re-queued) before it is killed")
    worker_restart_backoff_s: float = Field(1.0, gt=0, description="first wait before restarting a worker "
                                            "that died; doubles on each quick death")
    worker_restart_backoff_max_s: float = Field(30.0, gt=0, description="longest wait between worker restarts")
    gateway_drain_s: float = Field(10.0, ge=0, description="on SIGTERM / SIGINT, time the gateway has to "
                                   "finish the requests in flight")

    # Uploads (evaluation sets)
    upload_max_bytes: int = Field(64 * 2**20, ge=1024)
    upload_max_files: int = Field(20_000, ge=2)
    upload_max_unpacked_bytes: int = Field(512 * 2**20, ge=1024, description="unpacked bytes of one archive")
    upload_job_max_bytes: int = Field(512 * 2**20, ge=1024, description="unpacked bytes of one job's uploads "
                                      "(forget + retain); more: 413")
    upload_total_max_bytes: int = Field(8 * 2**30, ge=1024, description="unpacked uploads of all queued and "
                                        "running evaluate jobs together (deleted when a job ends); more: 413")

    # Embedded Redis (`hmu serve` without HMU_REDIS_URL)
    redis_maxmemory_bytes: int = Field(512 * 2**20, ge=0, description="memory limit of the embedded Redis "
                                       "(0: none); when full, writes fail (503) rather than evict anything")
    redis_maxmemory_policy: Literal["noeviction"] = Field(
        "noeviction", description="the only policy that never evicts job records (they all carry a TTL, so "
                                  "every volatile-* policy could drop them)")
    upload_max_frames: int = Field(2_000, ge=1)

    @property
    def server_dirs(self) -> tuple[Path, ...]:
        """The configured folders: never shown to clients (job messages are scrubbed of them)."""
        folders = (self.models_dir, self.weights_dir, self.datasets_dir, self.artifacts_dir, self.data_dir,
                   self.unlearn_data_dir)
        return tuple(Path(f) for f in folders if f is not None)

    @property
    def body_max_bytes(self) -> int:
        """The request body limit (`request_max_bytes`, or room for two uploads and the form fields)."""
        return self.request_max_bytes or 2 * self.upload_max_bytes + 2**20

    @property
    def open_mode(self) -> bool:
        """True when no API key is configured (local use: nothing is authenticated)."""
        return not self.api_keys


def settings_env(settings: Settings) -> dict[str, str]:
    """`HMU_*` environment variables that reproduce `settings` in another process (paths made absolute)."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None or name == "api_keys_file":  # the keys themselves travel (already read)
            continue
        if isinstance(value, Path):
            value = str(value.resolve())
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        env[f"HMU_{name.upper()}"] = str(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
