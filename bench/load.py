"""Load test of `POST /generate` against `hmu serve` (embedded Redis + one worker + gateway).

Starts `hmu serve` in a fresh data folder, warms the default model up, then runs `--clients` asyncio
clients for `--seconds`: each sends `POST /generate` (waiting up to `wait_seconds`), follows a 202 by
polling the job until it ends, and starts its next request. Requests in flight when the time is up are
awaited and counted. An error is any non-2xx answer, a job that did not succeed, or a client timeout.

    python bench/load.py --clients 200 --seconds 60                  # dynamic batching on (default)
    python bench/load.py --clients 200 --seconds 60 --no-batching    # HMU_BATCH_MAX_SIZE=1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

TEXTS = ["a person walks forward", "a man jumps up and down", "someone waves with the right hand",
         "a person sits down on a chair", "a person runs in a circle", "a woman dances happily",
         "a person turns around and walks back", "a man kicks with his left leg"]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: Counter = field(default_factory=Counter)
    answered_202: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(folder: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    """`hmu serve` in embedded mode, its state in `folder`; returns once /readyz lists a worker."""
    env = {**os.environ, "HMU_DATA_DIR": str(folder / "redis"), "HMU_MODELS_DIR": str(folder / "models"),
           "HMU_ARTIFACTS_DIR": str(folder / "jobs"), "HMU_DATASETS_DIR": str(folder / "datasets"), **env}
    env.pop("HMU_REDIS_URL", None)
    hmu = Path(sys.executable).with_name("hmu")
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen([str(hmu), "serve", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hmu serve exited; see {folder / 'serve.log'}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
            if ready.get("workers"):
                return process
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    stop_service(process)
    raise RuntimeError("hmu serve did not become ready in 180 s")


def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn stops, then the worker and Redis are shut down
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def one_request(client: httpx.AsyncClient, tally: Tally, rng: random.Random, length: int | tuple[int, int],
                      timeout_s: float) -> None:
    frames = length if isinstance(length, int) else rng.randrange(length[0], length[1] + 1, 4)
    body = {"text": rng.choice(TEXTS), "length_frames": frames, "seed": rng.randrange(2**31),
            "wait_seconds": 60}
    start = time.perf_counter()
    try:
        response = await client.post("/generate", json=body)
        if response.status_code == 202:
            tally.answered_202 += 1
            url = response.json()["status_url"]
            while time.perf_counter() - start < timeout_s:
                await asyncio.sleep(0.5)
                response = await client.get(url)
                state = response.json().get("state") if response.status_code == 200 else None
                if state in ("succeeded", "failed", "cancelled"):
                    break
            else:
                tally.errors["timeout"] += 1
                return
            if state != "succeeded":
                tally.errors[f"job {state}"] += 1
                return
        elif response.status_code != 200:
            tally.errors[f"HTTP {response.status_code}"] += 1
            return
    except httpx.TimeoutException:
        tally.errors["timeout"] += 1
        return
    except httpx.HTTPError as error:
        tally.errors[type(error).__name__] += 1
        return
    tally.latencies.append(time.perf_counter() - start)


async def client_loop(base_url: str, stop_at: float, tally: Tally, seed: int, length: int | tuple[int, int],
                      timeout_s: float) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s) as client:
        while time.perf_counter() < stop_at:
            await one_request(client, tally, rng, length, timeout_s)


async def load(base_url: str, clients: int, seconds: float, length: int | tuple[int, int],
               timeout_s: float) -> dict:
    tally = Tally()
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(client_loop(base_url, stop_at, tally, i, length, timeout_s)
                           for i in range(clients)))
    elapsed = time.perf_counter() - start
    lat = np.asarray(tally.latencies) if tally.latencies else np.zeros(1)
    return {"clients": clients, "seconds": seconds, "elapsed_s": round(elapsed, 1),
            "succeeded": len(tally.latencies), "errors": sum(tally.errors.values()),
            "error_kinds": dict(tally.errors), "answered_202": tally.answered_202,
            "throughput_per_s": round(len(tally.latencies) / elapsed, 2),
            **{f"p{q}_s": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)},
            "max_s": round(float(lat.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--length", type=int, default=80, help="frames per motion (20 fps)")
    parser.add_argument("--length-range", type=int, nargs=2, metavar=("MIN", "MAX"),
                        help="instead of --length: each request draws its frames from MIN..MAX (step 4)")
    parser.add_argument("--no-batching", action="store_true", help="HMU_BATCH_MAX_SIZE=1")
    parser.add_argument("--worker-concurrency", type=int, default=32,
                        help="worker threads (jobs in flight, hence the largest possible batch)")
    parser.add_argument("--timeout", type=float, default=600, help="client timeout per request (s)")
    parser.add_argument("--out", type=Path, help="append the JSON result to this file")
    parser.add_argument("--busy-cores", type=int, default=0,
                        help="processes spinning on a core each while the clients run (a shared-box neighbour)")
    parser.add_argument("--env", nargs="*", default=[], metavar="HMU_X=V",
                        help="extra service settings, e.g. HMU_PRECISION=bf16 HMU_TORCH_THREADS=1")
    args = parser.parse_args()

    env = {"HMU_WORKER_CONCURRENCY": str(args.worker_concurrency)}
    env |= dict(item.split("=", 1) for item in args.env)
    if args.no_batching:
        env |= {"HMU_BATCH_MAX_SIZE": "1", "HMU_BATCH_WINDOW_MS": "0"}
    with tempfile.TemporaryDirectory(prefix="hmu-load-") as tmp:
        port = free_port()
        process = start_service(Path(tmp), port, env)
        try:
            base = f"http://127.0.0.1:{port}"
            warm = httpx.post(f"{base}/generate", json={"text": "a person walks", "length_frames": args.length,
                                                        "wait_seconds": 60}, timeout=300)
            assert warm.status_code == 200, f"warm-up failed: {warm.status_code} {warm.text[:200]}"
            load_before = [round(x, 2) for x in os.getloadavg()]
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy_cores)]
            try:
                lengths = tuple(args.length_range) if args.length_range else args.length
                result = asyncio.run(load(base, args.clients, args.seconds, lengths, args.timeout))
            finally:
                for spinner in busy:
                    spinner.kill()
                    spinner.wait()
        finally:
            stop_service(process)
    result |= {"batching": not args.no_batching, "worker_concurrency": args.worker_concurrency,
               "length_frames": args.length_range or args.length, "busy_cores": args.busy_cores, "env": args.env,
               "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(result))
    if args.out:
        with args.out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
