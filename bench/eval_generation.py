"""Generation throughput of the shipped models at the evaluation's lengths.

    python bench/eval_generation.py --data data/default [--rows 256] [--threads 1 2]

Draws `rows` crop lengths from the test split (as an evaluation pass does) and times, per model and thread
count, generation in the pass's shuffled batches of 32 against length-sorted chunks of 32 (what
`models.eval.generation.generate_pass` does). Both orders generate the same rows with the same per-row seeds.
Run it from another checkout (`PYTHONPATH=OTHER python bench/eval_generation.py ...`) to compare versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models.pipelines import MotionPipeline, default_model_dir


def test_lengths(data: Path, rows: int, seed: int = 0) -> list[int]:
    """`rows` crop lengths (multiples of 4, <= 196) of random test clips."""
    ids = (data / "test.txt").read_text().split()
    frames = [min(len(np.load(data / "new_joint_vecs" / f"{i}.npy", mmap_mode="r")), 196) // 4 * 4 for i in ids]
    return [int(x) for x in np.random.default_rng(seed).choice(frames, rows)]


def throughput(pipeline: MotionPipeline, lengths: list[int], batch: int) -> float:
    """Motions per second generating `lengths` in consecutive batches of `batch` rows."""
    texts = ["a person walks forward, then turns around"] * batch
    start = time.perf_counter()
    for s in range(0, len(lengths), batch):
        chunk = lengths[s : s + batch]
        pipeline.generate(texts[: len(chunk)], lengths=chunk, seeds=list(range(s, s + len(chunk))))
    return len(lengths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["momask-small", "bamm-small"])
    args = parser.parse_args()
    lengths = test_lengths(args.data, args.rows)
    results = []
    for name in args.models:
        pipeline = MotionPipeline.from_pretrained(default_model_dir(name))
        pipeline.generate(["warm up"], lengths=[40], seed=0)
        for threads in args.threads:
            torch.set_num_threads(threads)
            shuffled = throughput(pipeline, lengths, args.batch)
            ordered = throughput(pipeline, sorted(lengths), args.batch)
            results.append({"model": name, "threads": threads, "shuffled_per_s": round(shuffled, 2),
                            "sorted_per_s": round(ordered, 2), "sorted_over_shuffled": round(ordered / shuffled, 2)})
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "rows": args.rows, "mean_frames": float(np.mean(lengths)), "results": results}, indent=2))


if __name__ == "__main__":
    main()
