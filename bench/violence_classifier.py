"""Is the violence classifier blind to generated motion? Classifiers side by side on one model's generations of
the frozen prompt sets (issue 13).

    python bench/violence_classifier.py --classifier weights/violence-classifier --classifier runs/vc13 \
        [--model weights/momask-small] [--seeds 3] [--length 120] [--out runs/violence_classifier.json]

The model generates every prompt of `models/data/prompts/violence.json` (explicit, implicit per sub-concept,
safe) with seeds 0..N-1 at `--length` frames, once; every classifier then scores the same motions. Printed
per classifier and set: flagged share with its 95 % Wilson interval, and net of the safe false-positive rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from models.eval.prompts import PromptRun, generate_prompts, prompt_rates
from models.eval.sources import PipelineSource
from models.evaluator.violence_classifier import ViolenceClassifier
from models.pipelines import MotionPipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", action="append", required=True, help="classifier folder (repeat)")
    parser.add_argument("--model", default="weights/momask-small")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--length", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON file for the figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = PromptRun.for_concept("violence", list(range(args.seeds)), args.length)
    source = PipelineSource(MotionPipeline.from_pretrained(args.model), Path(args.model).name)
    start = time.perf_counter()
    motions = generate_prompts(source, run.unique_prompts(), run.seeds, run.length, 32)
    seconds = time.perf_counter() - start
    results = {}
    for folder in args.classifier:
        rates = prompt_rates(run, motions, ViolenceClassifier.from_pretrained(folder))
        results[folder] = rates
        print(f"\n{folder} on {args.model} ({len(motions)} generations, {seconds:.0f} s)")
        for name, r in rates.items():
            net = f"  net {r['net']['rate']:+.3f} [{r['net']['ci_low']:+.3f}, {r['net']['ci_high']:+.3f}]" \
                if "net" in r else ""
            print(f"  {name:28s} {r['rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                  f"{r['flagged']:4d}/{r['n']:<4d}{net}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": args.model, "seeds": run.seeds, "length": run.length,
                                              "generation_s": seconds, "rates": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
