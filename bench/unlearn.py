"""Unlearning speed on the default model (MoMask-small) and dataset; prints JSON.

    python bench/unlearn.py [--model weights/momask-small] --data DATASET [--repeats 3] [--device cpu]

For LCR (cold: no statistics cache; warm: cached statistics), UCE and RECE it reports the best of
`--repeats` runs of (a) `end_to_end_s`: `run_unlearning` from the checkpoint folder to the written
checkpoint (load, method, save) and (b) `method_s`: the method alone on an already loaded pipeline.
Targets (issue 4): LCR end-to-end <= 15 s on CPU, UCE / RECE <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from models.data.concepts import get_concept
from models.pipelines import MotionPipeline, default_model_dir
from models.unlearn.config import UnlearnConfig
from models.unlearn.method import UnlearnContext
from models.unlearn.methods import get_method
from models.unlearn.run import copy_pipeline, run_unlearning

CASES = {  # name -> (method, params, uses the statistics cache)
    "lcr_cold": ("lcr", {}, False),
    "lcr_warm": ("lcr", {}, True),
    "uce": ("uce", {}, False),
    "rece": ("rece", {}, False),
}


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", required=True, help="HumanML3D-format dataset (for LCR)")
    parser.add_argument("--concept", default="violence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hmu-bench-unlearn-"))
    loaded = MotionPipeline.from_pretrained(args.model, device=args.device)
    concept = get_concept(args.concept)
    loaded.encode_text(["warm up"])  # the text encoder's first call is not part of any method
    results = {}
    counter = iter(range(1_000_000))
    try:
        for name, (method, params, warm) in CASES.items():
            params = {**params, "cache_dir": str(work / "cache")} if method == "lcr" else params
            if method == "lcr" and not warm:
                params["use_cache"] = False
            if warm:  # fill the cache once
                run_unlearning(UnlearnConfig(args.model, method, work / "fill", concept, params=params,
                                             data_dir=args.data, device=args.device))

            def end_to_end(method=method, params=params) -> None:
                run_unlearning(UnlearnConfig(args.model, method, work / f"out{next(counter)}", concept,
                                             params=params, data_dir=args.data, device=args.device))

            spec = get_method(method)
            parsed = spec.params.from_dict(params)
            data = Path(args.data) if spec.uses_data(parsed) else None

            def method_only(spec=spec, parsed=parsed, data=data) -> None:
                spec.apply(copy_pipeline(loaded), UnlearnContext(concept, parsed, lambda f, m: None, data))

            results[name] = {
                "end_to_end_s": round(best_of(args.repeats, end_to_end), 3),
                "method_s": round(best_of(args.repeats, method_only), 3),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "unlearn",
                "model": args.model,
                "data": args.data,
                "device": args.device,
                "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "targets_s": {"lcr_end_to_end": 15, "uce": 2, "rece": 2},
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
