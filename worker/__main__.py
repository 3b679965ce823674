"""`python -m worker --queues generate,unlearn,evaluate --concurrency 4` (same as `hmu worker`)."""

from __future__ import annotations

import argparse

from core.settings import QUEUES
from worker.app import run_worker


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker", description="Run an hmu Celery worker.")
    parser.add_argument("--queues", default=",".join(QUEUES))
    parser.add_argument("--concurrency", type=int, help="threads (default: HMU_WORKER_CONCURRENCY)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args()
    run_worker(queues=args.queues.split(","), concurrency=args.concurrency, loglevel=args.loglevel)


if __name__ == "__main__":
    main()
