"""Fault injection against `hmu serve` (embedded mode) with the default settings.

Phase 1, `--kill-rounds` (20): each round queues one generate, one unlearn (LCR) and one evaluate job
through the gateway, waits until none is queued and one runs (after `--kill-after` s: one runs), kills the worker
with SIGKILL and lets `hmu serve` restart it. Every job must end `succeeded` (or `failed` with a reason); for
every job that was running at the kill, the time from the kill to its end is recorded (target: <= 60 s).

Phase 2, `--term-rounds` (5): each round queues the same three jobs, waits until they run, sends SIGTERM to
`hmu serve`, checks its exit status (0) and that neither its worker nor its redis-server outlived it, then
starts it again on the same data and waits for the jobs.

A job neither succeeded nor failed after `--deadline` seconds counts as lost.

    python bench/faults.py --kill-rounds 20 --term-rounds 5 --out bench/results/faults.jsonl

The generation model is a tiny random-weight one (the point is the job life cycle, not the model), the
evaluator the shipped one; the evaluation sets are
real HumanML3D motions from ../shared/data. Only the folders are set; every other setting is the default
(heartbeat 5 s, visibility timeout 300 s, worker concurrency 4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_service import humanml3d_folder, motion_archive, real_motion_set  # noqa: E402
from tests.test_supervisor import Service, gone  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}


def submit_round(http: httpx.Client, i: int, uploads: dict) -> dict[str, str]:
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


def states(http: httpx.Client, jobs: dict[str, str]) -> dict[str, dict]:
    return {kind: http.get(f"/jobs/{job_id}").json() for kind, job_id in jobs.items()}


def wait_running(http: httpx.Client, jobs: dict[str, str], seconds: float) -> None:
    """Return once all jobs run, or once none is queued any more and one still runs (the others finished), or
    after `seconds` at the first moment one runs: the signal always hits a running job when it can."""
    start = time.monotonic()
    while time.monotonic() < start + 3 * seconds:
        found = [s["state"] for s in states(http, jobs).values()]
        running = "running" in found
        if running and ("queued" not in found or time.monotonic() > start + seconds):
            return
        time.sleep(0.05)


def wait_done(http: httpx.Client, jobs: dict[str, str], since: float, deadline_s: float) -> dict[str, dict]:
    """Poll until every job is terminal; each final record gets `done_after_s` (seconds after `since`)."""
    done: dict[str, dict] = {}
    end = time.monotonic() + deadline_s
    while len(done) < len(jobs) and time.monotonic() < end:
        for kind, record in states(http, jobs).items():
            if kind not in done and record["state"] in TERMINAL:
                done[kind] = {**record, "done_after_s": round(time.monotonic() - since, 2)}
        time.sleep(0.2)
    for kind, record in states(http, jobs).items():
        done.setdefault(kind, {**record, "done_after_s": None})
    return done


def worker_pid(service: Service, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = service.ready()
        if ready and ready.get("workers"):
            return int(ready["workers"][0]["pid"])
        time.sleep(0.1)
    raise RuntimeError("no worker became ready")


def summarise(rows: list[dict], phase: str) -> dict:
    outcomes, lost, after_kill, attempts = Counter(), 0, [], Counter()
    for row in rows:
        for kind, record in row["final"].items():
            outcomes[f"{kind} {record['state']}"] += 1
            attempts[record["attempts"]] += 1
            lost += record["state"] not in TERMINAL
            if record["state"] == "failed":
                assert record["error"] and record["error"]["message"], f"failed without a reason: {record}"
            if row["at_kill"][kind] == "running" and record["done_after_s"] is not None:
                after_kill.append(record["done_after_s"])
    summary = {"phase": phase, "rounds": len(rows), "outcomes": dict(sorted(outcomes.items())), "lost": lost,
               "attempts": dict(sorted(attempts.items())),
               "killed_while_running": sum(s == "running" for r in rows for s in r["at_kill"].values())}
    if after_kill:
        summary["done_after_signal_s"] = {"median": round(statistics.median(after_kill), 1),
                                          "max": round(max(after_kill), 1), "n": len(after_kill)}
    return summary


def kill_rounds(service: Service, rounds: int, uploads: dict, args) -> list[dict]:
    rows = []
    for i in range(rounds):
        pid = worker_pid(service)
        jobs = submit_round(service.http, i, uploads)
        wait_running(service.http, jobs, args.kill_after)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        at_kill = {kind: s["state"] for kind, s in states(service.http, jobs).items()}
        final = wait_done(service.http, jobs, killed_at, args.deadline)
        row = {"phase": "sigkill-worker", "round": i, "killed_pid": pid, "at_kill": at_kill,
               "restarted_pid": worker_pid(service),
               "final": {k: {key: s[key] for key in ("state", "attempts", "error", "done_after_s")}
                         for k, s in final.items()}}
        assert row["restarted_pid"] != pid
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def term_rounds(service: Service, rounds: int, uploads: dict, args) -> list[dict]:
    rows = []
    for i in range(rounds):
        worker = psutil.Process(worker_pid(service))
        servers = service.redis_servers()
        jobs = submit_round(service.http, 100 + i, uploads)
        wait_running(service.http, jobs, args.kill_after)
        at_kill = {kind: s["state"] for kind, s in states(service.http, jobs).items()}
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        code = service.process.wait(120)
        stop_s = round(time.monotonic() - started, 2)
        orphans = [p.pid for p in [worker, *servers] if not gone(p)]
        service.http.close()
        service.start()
        final = wait_done(service.http, jobs, started, args.deadline)
        row = {"phase": "sigterm-serve", "round": i, "exit_code": code, "stop_s": stop_s, "orphans": orphans,
               "redis_servers": len(servers), "at_kill": at_kill,
               "final": {k: {key: s[key] for key in ("state", "attempts", "error", "done_after_s")}
                         for k, s in final.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-rounds", type=int, default=20)
    parser.add_argument("--term-rounds", type=int, default=5)
    parser.add_argument("--kill-after", type=float, default=20.0,
                        help="after this long, signal as soon as one job runs (even if another is still queued)")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds for the jobs to end")
    parser.add_argument("--out", type=Path, help="write the per-round results and summaries as JSON lines")
    args = parser.parse_args()

    from models.pipelines import MotionPipeline, default_model_dir

    with tempfile.TemporaryDirectory(prefix="hmu-faults-") as tmp:
        root = Path(tmp)
        model = root / "tiny-momask"
        MotionPipeline.random("momask", "tiny", seed=0).save_pretrained(model)
        shutil.copytree(default_model_dir("evaluator"), root / "weights" / "evaluator")  # the shipped one
        data = humanml3d_folder(root / "humanml3d")
        set_bytes = motion_archive(real_motion_set("a person kicks", "012314", 3))
        uploads = {"forget": ("f.zip", set_bytes), "retain": ("r.zip", set_bytes)}
        service = Service(root, model, {"HMU_UNLEARN_DATA_DIR": str(data)})
        start, load = time.perf_counter(), os.getloadavg()
        service.start()
        try:
            rows = kill_rounds(service, args.kill_rounds, uploads, args)
            rows += term_rounds(service, args.term_rounds, uploads, args)
        finally:
            service.stop()
        summaries = [summarise([r for r in rows if r["phase"] == phase], phase)
                     for phase in ("sigkill-worker", "sigterm-serve")]
        term = [r for r in rows if r["phase"] == "sigterm-serve"]
        summaries[1].update({"exit_codes": sorted({r["exit_code"] for r in term}),
                             "orphans": sum(len(r["orphans"]) for r in term),
                             "stop_s_max": max((r["stop_s"] for r in term), default=None)})
        summary = {"summaries": summaries, "seconds": round(time.perf_counter() - start, 1),
                   "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text("\n".join(json.dumps(r) for r in [*rows, summary]) + "\n")
    lost = sum(s["lost"] for s in summaries)
    late = summaries[0].get("done_after_signal_s", {}).get("max", 0) > 60
    sys.exit(1 if lost or late or summaries[1]["orphans"] or summaries[1]["exit_codes"] not in ([0], []) else 0)


if __name__ == "__main__":
    main()
