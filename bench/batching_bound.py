"""What dynamic batching can give at most on this machine: the shipped model's throughput one motion per call
against one call for the whole batch, in one process (no service, no HTTP, no queue).

    python bench/batching_bound.py [--model weights/momask-small] [--batch 32] [--frames 80] [--threads 1 2]
                                   [--repeats 3] [--out bench/results/batching_bound.jsonl]

Each repeat generates `--batch` motions twice, interleaved: as `--batch` calls of one motion (the
one-at-a-time service) and as one call of `--batch` motions (a full dynamic batch): text encoding, token
generation, VQ decoding and joints, as `POST /generate` runs them. The ratio of the two throughputs bounds
what `/generate`'s batching can reach with this model, length and thread count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidebyside import emit, loadavg  # noqa: E402

from models.pipelines import MotionPipeline  # noqa: E402

TEXTS = ["a person walks forward", "a man jumps up and down", "someone waves with the right hand",
         "a person sits down on a chair", "a person runs in a circle", "a woman dances happily",
         "a person turns around and walks back", "a man kicks with his left leg"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="weights/momask-small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    pipeline = MotionPipeline.from_pretrained(args.model)
    texts = [TEXTS[i % len(TEXTS)] for i in range(args.batch)]
    seeds = list(range(args.batch))

    def one_at_a_time() -> None:
        for text, seed in zip(texts, seeds, strict=True):
            pipeline.generate([text], [args.frames], seeds=[seed])

    def batched() -> None:
        pipeline.generate(texts, [args.frames] * args.batch, seeds=seeds)

    for threads in args.threads:
        torch.set_num_threads(threads)
        one_at_a_time(), batched()  # warm-up
        before = loadavg()
        times: dict[str, list[float]] = {"one_at_a_time": [], "batched": []}
        for r in range(args.repeats):
            order = [("one_at_a_time", one_at_a_time), ("batched", batched)]
            for name, run in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        after = loadavg()
        per_s = {name: round(args.batch / statistics.median(t), 2) for name, t in times.items()}
        emit({"bench": "batching_bound", "model": args.model, "batch": args.batch, "frames": args.frames,
              "threads": threads, "repeats": args.repeats, "loadavg_before": before, "loadavg_after": after,
              "motions_per_s": per_s, "batching_ratio": round(per_s["batched"] / per_s["one_at_a_time"], 2)},
             args.out)


if __name__ == "__main__":
    main()
