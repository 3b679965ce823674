"""Gateway memory under oversized request bodies (issue 14): a real uvicorn gateway with API keys on a private
Redis; its RSS and peak RSS (VmHWM) before and after each crafted request.

    python bench/big_bodies.py [--tree PATH]   # PATH: another checkout to compare (e.g. an older commit)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import RedisServer, free_port  # noqa: E402

MiB = 2**20
FORM_HEAD = b'--b\r\nContent-Disposition: form-data; name="forget"; filename="f.zip"\r\n\r\n'


def memory_mib(pid: int) -> tuple[int, int]:
    """(RSS, peak RSS) of a process in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def chunks(n_mib: int, head: bytes = b""):
    block = b"x" * MiB
    for i in range(n_mib):
        yield head + block if i == 0 else block


def cases() -> list[tuple[str, str, dict, object]]:
    """(label, path, headers, body) of each crafted request."""
    big_json = b'{"text": "' + b"x" * (120 * MiB) + b'"}'
    return [
        ("120 MiB JSON body, no key", "/generate", {"content-type": "application/json"}, big_json),
        ("120 MiB JSON body, valid key", "/generate", {"content-type": "application/json", "X-API-Key": "k"},
         big_json),
        ("chunked 300 MiB multipart, valid key", "/evaluate",
         {"content-type": "multipart/form-data; boundary=b", "X-API-Key": "k"}, chunks(300, FORM_HEAD)),
    ]


def run(tree: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hmu-bodies-"))
    redis = RedisServer(tmp / "redis").start()
    port = free_port()
    env = {**os.environ, "HMU_REDIS_URL": redis.url, "HMU_API_KEYS": json.dumps({"k": ["admin"]}),
           "HMU_ARTIFACTS_DIR": str(tmp / "artifacts"), "HMU_MODELS_DIR": str(tmp / "models"),
           "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--port", str(port)]
    gateway = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"{tree}: idle RSS / peak {memory_mib(gateway.pid)} MiB")
        for label, path, headers, body in cases():
            start = time.monotonic()
            try:
                response = httpx.post(url + path, content=body, headers=headers, timeout=120)
                answer = f"{response.status_code} {response.json()['detail'][:60]!r}"
            except httpx.TransportError as error:
                answer = f"connection {type(error).__name__}"
            seconds = time.monotonic() - start
            print(f"  {label}: {answer}, {seconds:.2f} s, RSS / peak after {memory_mib(gateway.pid)} MiB")
    finally:
        gateway.terminate()
        gateway.wait(10)
        redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose gateway to run")
    run(parser.parse_args().tree.resolve())
