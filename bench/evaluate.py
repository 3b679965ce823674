"""Wall time of the evaluation runner (`hmu evaluate`) on this machine.

    python bench/evaluate.py --data DIR [--model A --model B] [--repeats 5] [--mm-batches 1] [--mm-repeats 20]

Without --model, random-weight MoMask and BAMM pipelines of `--size` (default: small, the shipped size) are
timed; without a shipped evaluator (weights/evaluator), a random OurEvaluator of the default size with the
dataset's Mean/Std. Prints the runner's per-row timing and the total as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.eval.config import EvalConfig
from models.eval.run import run_evaluation
from models.eval.space import EvalSpace
from models.evaluator.our_evaluator import OurEvaluator
from models.pipelines import MotionPipeline, default_model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="HumanML3D-format folder (e.g. the default dataset)")
    parser.add_argument("--model", action="append", help="model folder (repeat); default: random pipelines")
    parser.add_argument("--size", default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mm-batches", type=int, default=1)
    parser.add_argument("--mm-repeats", type=int, default=20)
    parser.add_argument("--max-items", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classifier", default="none")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="hmu-bench-eval-"))
    models = args.model
    if not models:
        momask = MotionPipeline.random("momask", args.size, seed=0)
        momask.save_pretrained(work / f"momask-{args.size}")
        bamm = MotionPipeline.random("bamm", args.size, seed=1, text_encoder=momask.text_encoder)
        bamm.save_pretrained(work / f"bamm-{args.size}")
        models = [work / f"momask-{args.size}", work / f"bamm-{args.size}"]
    evaluator = "default"
    if not default_model_dir("evaluator").is_dir():
        from models.text.base import load_text_encoder

        data = Path(args.data)
        evaluator = EvalSpace(
            OurEvaluator(text_encoder=load_text_encoder({"type": "minilm"})).eval(),
            np.load(data / "Mean.npy"),
            np.load(data / "Std.npy"),
            "ours",
            "random-default-size",
        )
    start = time.perf_counter()
    report = run_evaluation(EvalConfig(
        models,
        args.data,
        "violence",
        work / "report",
        repeats=args.repeats,
        evaluator=evaluator,
        mm_batches=args.mm_batches,
        mm_repeats=args.mm_repeats,
        max_items=args.max_items,
        classifier=args.classifier,
    ))
    print(
        json.dumps(
            {
                "seconds": round(time.perf_counter() - start, 1),
                "threads": args.threads,
                "cpus": os.cpu_count(),
                "repeats": args.repeats,
                "mm": [args.mm_batches, args.mm_repeats],
                "sets": report["data"]["sets"],
                "per_row_s": {k: round(v, 1) for k, v in report["timing"]["per_row_s"].items()},
                "out": str(work),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
