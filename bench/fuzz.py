"""Fuzz the gateway with schemathesis against the committed `openapi.yaml`.

Every generated request (valid and invalid bodies, paths, query strings, headers, multipart uploads) goes
through the real gateway (in-process ASGI) backed by a private embedded Redis; each response must not be a
5xx, must use a status code and content type the schema documents, and must match the documented body
schema. `POST /generate` bodies get `wait_seconds` capped (so a queued job is not awaited for up to 60 s).

    python bench/fuzz.py --examples 1500            # >= 1,000 cases, open mode and API-key mode
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.settings import QUEUES, Settings  # noqa: E402
from core.workers import WORKER_KEY  # noqa: E402
from hmu.serve import embedded_redis  # noqa: E402
from service.main import create_app  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_WAIT_S = 0.2
KEYS = {"fuzz-admin": ["admin"]}


@dataclass
class FuzzReport:
    """What one fuzzing run saw: cases sent, status codes, and every failed check (one line each)."""

    cases: int = 0
    not_sent: int = 0  # requests the HTTP client itself refused to build (e.g. non-ASCII header bytes)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: FuzzReport) -> None:
        self.cases += other.cases
        self.not_sent += other.not_sent
        self.statuses.update(other.statuses)
        self.failures += other.failures
        self.seconds += other.seconds


def _cap_wait(case) -> None:
    """Shorten a valid `wait_seconds` of POST /generate (invalid values are left to be refused)."""
    body = case.body
    if case.path != "/generate" or not isinstance(body, dict):
        return
    wait = body.get("wait_seconds", 10)
    if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= 60:
        body["wait_seconds"] = min(wait, MAX_WAIT_S)


def fuzz_app(app, examples: int, mode: GenerationMode, headers: dict[str, str] | None = None,
             random_seed: int = 0, schema_path: Path = REPO / "openapi.yaml") -> FuzzReport:
    """Send `examples` generated requests of `mode` to `app` and check every response."""
    schema = schemathesis.openapi.from_path(schema_path)
    report = FuzzReport()

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(mode))
    def one(case) -> None:
        _cap_wait(case)
        if headers:
            case.headers = {**(case.headers or {}), **headers}
        try:
            response = case.call(app=app)
        except (UnicodeEncodeError, ValueError) as error:  # the client refused to encode the request
            report.not_sent += 1
            report.statuses[type(error).__name__] += 1
            return
        report.cases += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as error:  # a failed check: record it, keep fuzzing
            first = str(error).strip().splitlines()[:6]
            report.failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} "
                                   f"{response.text[:120]!r}: " + " | ".join(first))

    start = time.perf_counter()
    one()
    report.seconds = time.perf_counter() - start
    return report


@contextmanager
def fuzz_settings(root: Path, model_dir: Path, api_keys: dict | None = None) -> Iterator[Settings]:
    """Settings for a gateway on a private embedded Redis, with `model_dir` as the default model.

    No worker process runs (accepted jobs stay queued), but a stand-in worker presence key on every queue
    makes /readyz answer as for a ready service (without one it answers 503 `no_worker`, by design)."""
    shutil.copytree(model_dir, root / "models" / "momask-small", dirs_exist_ok=True)
    with embedded_redis(root / "redis") as url:
        presence = {"name": "fuzz-stand-in", "queues": list(QUEUES), "pid": 0, "started_at": time.time()}
        with redis.Redis.from_url(url) as client:
            client.set(WORKER_KEY + "fuzz-stand-in", json.dumps(presence))
        yield Settings(redis_url=url, models_dir=root / "models", weights_dir=root / "weights",
                       datasets_dir=root / "datasets", artifacts_dir=root / "artifacts",
                       api_keys=api_keys or {}, upload_max_bytes=2**20)


def run(examples: int, model_dir: Path, random_seed: int = 0) -> FuzzReport:
    """Positive and negative cases in open mode, then with API keys (a valid admin key sent)."""
    total = FuzzReport()
    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
    plan = [(positive, None, False), (negative, None, False), (positive, KEYS, True), (negative, KEYS, True),
            (negative, KEYS, False)]  # the last: whatever key (if any) the fuzzer sends
    share = -(-examples // len(plan))
    with tempfile.TemporaryDirectory(prefix="hmu-fuzz-") as tmp:
        for i, (mode, keys, send_key) in enumerate(plan):
            with fuzz_settings(Path(tmp) / str(i), model_dir, keys) as config:
                headers = {"X-API-Key": next(iter(keys))} if send_key else None
                report = fuzz_app(create_app(config), share, mode, headers, random_seed + i)
            label = f"{mode.value}, {'open' if not keys else 'key sent' if send_key else 'keys, none sent'}"
            print(f"{label:>26}: {report.cases} cases, {report.not_sent} not sent, "
                  f"{len(report.failures)} failures, {report.seconds:.1f} s, statuses {dict(report.statuses)}")
            total.merge(report)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1500, help="generated cases in all (5 runs)")
    parser.add_argument("--model", type=Path, default=REPO / "weights" / "momask-small",
                        help="the default model folder (only its presence matters: no worker runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.examples, args.model, args.seed)
    codes = {str(k): v for k, v in sorted(report.statuses.items(), key=lambda kv: str(kv[0]))}
    print(f"total: {report.cases} cases in {report.seconds:.1f} s, {report.not_sent} not sent, "
          f"5xx: {sum(v for k, v in report.statuses.items() if isinstance(k, int) and k >= 500)}, "
          f"failed checks: {len(report.failures)}, statuses {codes}")
    for line in report.failures[:50]:
        print("FAIL", line)
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
