"""Quality of lower-precision token generation (HMU_PRECISION) on the default benchmark, same seeds as fp32.

    python bench/precision_quality.py --data data/default [--model weights/momask-small]
                                      [--precision fp32 bf16 int8] [--repeats 2] [--max-items 512]
                                      [--out runs/precision-quality]

One `hmu evaluate` run (models.eval.run_evaluation, our evaluator, the violence classifier) with one row per
precision of the same model: FID, R-precision, diversity and violence rate on the forget / retain sets, with
the report's intervals over repeats. The report (report.json / report.md) goes to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.eval.config import EvalConfig  # noqa: E402
from models.eval.run import run_evaluation  # noqa: E402
from models.eval.sources import PipelineSource  # noqa: E402
from models.pipelines import MotionPipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("weights/momask-small"))
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-items", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("runs/precision-quality"))
    args = parser.parse_args()

    sources = {}
    for precision in args.precision:
        pipeline = MotionPipeline.from_pretrained(args.model).set_precision(precision)
        name = f"{args.model.name}-{precision}"
        sources[name] = PipelineSource(pipeline, name, path=str(args.model))
    config = EvalConfig(models=sources, data_dir=args.data, out_dir=args.out, repeats=args.repeats,
                        max_items=args.max_items, mm_batches=0, plots=False)
    report = run_evaluation(config, progress=lambda f, m: print(f"{f:5.0%} {m}", file=sys.stderr, flush=True))
    print(json.dumps({"results": report["results"], "violence": report["violence"],
                      "timing": report["timing"]}, default=str))


if __name__ == "__main__":
    main()
