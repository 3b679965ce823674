"""Fault injection: SIGKILL the worker in the middle of generate, unlearn and evaluate jobs, many times.

Each round queues one job of each type through the gateway, waits until they run (or `--kill-after`
seconds), kills the worker process with SIGKILL, starts a fresh worker and waits for every job to end.
A job must end `succeeded` (after redelivery) or `failed` with a clear reason; a job still queued or
running after `--deadline` seconds counts as lost. The next round reuses the fresh worker.

    python bench/faults.py --rounds 20

Models are tiny random-weight ones (the point is the job life cycle, not the model); the evaluation sets
are real HumanML3D motions from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.settings import Settings  # noqa: E402
from hmu.serve import embedded_redis, worker_process  # noqa: E402
from service.main import create_app  # noqa: E402
from tests.test_service import humanml3d_folder, motion_archive, real_motion_set, tiny_evaluator  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for_worker(client: redis.Redis, process, name_before: set[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not (set(client.keys("hmu:worker:*")) - name_before):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not start")
        time.sleep(0.05)


def submit_round(http: TestClient, i: int, uploads: dict) -> dict[str, str]:
    """One job of each type; returns type -> job id."""
    generate = http.post("/generate", json={"text": "a person kicks", "num_samples": 8, "length_frames": 196,
                                            "timesteps": 40, "seed": i, "wait_seconds": 0})
    unlearn = http.post("/unlearn", json={"method": "lcr", "concept": "violence", "parameters": {"k": 2},
                                          "new_model_id": f"momask-small-nokick-{i}"})
    evaluate = http.post("/evaluate", files=uploads,
                         data={"models": "momask-small", "parameters": json.dumps({"repeats": 1,
                                                                                   "mm_batches": 0})})
    for response in (generate, unlearn, evaluate):
        assert response.status_code in (200, 202), response.text
    return {"generate": generate.json()["job_id"], "unlearn": unlearn.json()["job_id"],
            "evaluate": evaluate.json()["job_id"]}


def states(http: TestClient, jobs: dict[str, str]) -> dict[str, dict]:
    return {kind: http.get(f"/jobs/{job_id}").json() for kind, job_id in jobs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kill-after", type=float, default=8.0,
                        help="kill at the latest this long after queueing, even if not all jobs run")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds for the jobs to end")
    parser.add_argument("--out", type=Path, help="write the per-round results as JSON lines")
    args = parser.parse_args()

    from models.pipelines import MotionPipeline

    with tempfile.TemporaryDirectory(prefix="hmu-faults-") as tmp:
        root = Path(tmp)
        MotionPipeline.random("momask", "tiny", seed=0).save_pretrained(root / "models" / "momask-small")
        tiny_evaluator(root / "weights" / "evaluator")
        data = humanml3d_folder(root / "humanml3d")
        set_bytes = motion_archive(real_motion_set("a person kicks", "012314", 3))
        uploads = {"forget": ("f.zip", set_bytes), "retain": ("r.zip", set_bytes)}
        with embedded_redis(root / "redis") as url:
            settings = Settings(redis_url=url, models_dir=root / "models", weights_dir=root / "weights",
                                datasets_dir=root / "datasets", artifacts_dir=root / "artifacts",
                                unlearn_data_dir=data, api_keys={}, visibility_timeout_s=2,
                                job_stale_after_s=1.5, heartbeat_interval_s=0.3)
            client = redis.Redis.from_url(url, decode_responses=True)
            outcomes, killed_running, lost, rows = Counter(), Counter(), 0, []
            start = time.perf_counter()
            with TestClient(create_app(settings)) as http:
                worker_cm = worker_process(settings, concurrency=4)
                worker = worker_cm.__enter__()
                wait_for_worker(client, worker, set())
                for i in range(args.rounds):
                    jobs = submit_round(http, i, uploads)
                    deadline = time.monotonic() + args.kill_after
                    while time.monotonic() < deadline:  # kill once all three run (or at the deadline)
                        if all(s["state"] == "running" for s in states(http, jobs).values()):
                            break
                        time.sleep(0.05)
                    worker.kill()
                    worker.wait()
                    at_kill = {kind: s["state"] for kind, s in states(http, jobs).items()}
                    worker_cm.__exit__(None, None, None)
                    before = set(client.keys("hmu:worker:*"))
                    worker_cm = worker_process(settings, concurrency=4)
                    worker = worker_cm.__enter__()
                    wait_for_worker(client, worker, before)
                    end = time.monotonic() + args.deadline
                    while time.monotonic() < end:
                        final = states(http, jobs)
                        if all(s["state"] in TERMINAL for s in final.values()):
                            break
                        time.sleep(0.2)
                    row = {"round": i, "at_kill": at_kill, "final": {
                        k: {"state": s["state"], "attempts": s["attempts"], "error": s["error"]}
                        for k, s in final.items()}}
                    rows.append(row)
                    for kind, s in final.items():
                        outcomes[(kind, s["state"])] += 1
                        killed_running[kind] += at_kill[kind] == "running"
                        lost += s["state"] not in TERMINAL
                        if s["state"] == "failed":
                            assert s["error"] and s["error"]["message"], f"failed without a reason: {s}"
                    print(json.dumps(row), flush=True)
                worker_cm.__exit__(None, None, None)
    summary = {"rounds": args.rounds, "killed_while_running": dict(killed_running),
               "outcomes": {f"{k} {s}": n for (k, s), n in sorted(outcomes.items())}, "lost": lost,
               "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text("\n".join(json.dumps(r) for r in [*rows, summary]) + "\n")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
