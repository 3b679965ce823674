"""Where code_ban's remaining violence comes from, and its trade-off over one parameter (issue 13).

    python bench/code_ban_tradeoff.py [--model weights/bamm-small] [--data data/default] \
        [--param gate_fp --values 0.002 0.005 0.02 0.05] [--seeds 0] [--out runs/code_ban_tradeoff.json]

The parent generates the frozen explicit, implicit and safe prompts once (120 frames, every seed); for each value,
code_ban runs in memory with that parameter (others default) and the new model generates them again; the shipped
violence classifier scores every sample. Per set: flagged shares, net of the safe rate, and the cut of the net
rate (as `models/eval/verify.py`), plus the share of prompts the text gate catches and the flagged samples among
caught and missed prompts (a missed prompt generates exactly the parent's motion); safe-prompt stability
(aligned MPJPE < 2 cm); unlearning seconds by phase. The evaluation prompts are only measured here, never used by
the method. Prints a Markdown table; everything goes to OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.concepts import get_concept
from models.data.prompt_sets import load_prompt_sets
from models.eval.prompts import stability
from models.eval.verify import generate_rows, net_cut, set_rates
from models.evaluator.violence_classifier import ViolenceClassifier
from models.pipelines import MotionPipeline, default_model_dir
from models.unlearn.cli import parse_value
from models.unlearn.code_ban import CodeBanParams, apply_code_ban

SETS = ("explicit", "implicit", "safe")


def gate_breakdown(pipeline: MotionPipeline, prompts: list[str], seeds: list[int], parent: dict, model: dict) -> dict:
    """Share of `prompts` the gate catches; flagged (prompt, seed) samples of parent and model, caught / missed."""
    gate = pipeline.base.code_suppression
    fired = dict(zip(prompts, gate.gate(pipeline.encode_text(prompts)).cpu().tolist(), strict=True))
    out: dict[str, Any] = {"caught": float(np.mean(list(fired.values())))}
    for part, want in (("caught", True), ("missed", False)):
        rows = [(p, s) for s in seeds for p in prompts if fired[p] is want]
        out[part + "_samples"] = len(rows)
        out[part + "_flagged_parent"] = int(sum(parent[r] for r in rows))
        out[part + "_flagged_model"] = int(sum(model[r] for r in rows))
    return out


def measure(args: argparse.Namespace, value: Any, parent_run: tuple, classifier: ViolenceClassifier) -> dict:
    """code_ban with `args.param = value` -> one row of the table."""
    sets, rows, parent_feats, parent_flags = parent_run
    pipeline = MotionPipeline.from_pretrained(args.model)
    result = apply_code_ban(pipeline, get_concept("violence"), CodeBanParams.from_dict({args.param: value}), args.data)
    feats, _ = generate_rows(pipeline, rows, 120)
    flags = dict(zip(rows, classifier.predict(feats).tolist(), strict=True))
    parent_rates, rates = set_rates(sets, parent_flags, args.seeds), set_rates(sets, flags, args.seeds)
    safe = [rows.index((p, s)) for s in args.seeds for p in sets["safe"]]
    return {"value": value, "rates": rates, "parent": parent_rates,
            "cut": {n: net_cut(rates[n], parent_rates[n]) for n in SETS if n != "safe"},
            "stability": stability([parent_feats[i] for i in safe], [feats[i] for i in safe]),
            "gate": {n: gate_breakdown(pipeline, sets[n], args.seeds, parent_flags, flags) for n in SETS},
            "unlearn": {k: v for k, v in result.items() if k != "banned_codes"}}


def table(param: str, rows: list[dict]) -> str:
    lines = [f"| {param} | explicit (net cut) | implicit (net cut) | safe FP | safe unchanged | implicit caught by "
             "the gate | flagged implicit: caught / missed | codes | unlearn s |", "|" + "---|" * 9]
    first = rows[0]
    lines.append(f"| parent | {first['parent']['explicit']['rate']:.2f} | {first['parent']['implicit']['rate']:.2f} | "
                 f"{first['parent']['safe']['rate']:.2f} | 1.00 | - | - | - | - |")
    for r in rows:
        g = r["gate"]["implicit"]
        cells = [f"{r['rates'][n]['rate']:.2f} ({r['cut'][n]:.0%})" for n in ("explicit", "implicit")]
        lines.append(f"| {r['value']} | {' | '.join(cells)} | {r['rates']['safe']['rate']:.2f} | "
                     f"{r['stability']['rate']:.2f} | {g['caught']:.2f} | {g['caught_flagged_model']} / "
                     f"{g['missed_flagged_model']} | {r['unlearn']['num_banned']} | {r['unlearn']['seconds']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="weights/bamm-small")
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--param", default="gate_fp")
    parser.add_argument("--values", nargs="+", default=["0.002", "0.005", "0.02", "0.05"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/code_ban_tradeoff.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("HMU_TORCH_THREADS", "1")))
    load, started = [os.getloadavg()], time.monotonic()
    frozen = load_prompt_sets("violence")
    sets = {"explicit": frozen.explicit, "implicit": frozen.implicit_all, "safe": frozen.safe}
    rows = [(p, s) for s in args.seeds for p in dict.fromkeys(p for ps in sets.values() for p in ps)]
    classifier = ViolenceClassifier.from_pretrained(default_model_dir("violence-classifier"))
    parent_feats, _ = generate_rows(MotionPipeline.from_pretrained(args.model), rows, 120)
    parent_flags = dict(zip(rows, classifier.predict(parent_feats).tolist(), strict=True))
    results = []
    for value in args.values:
        results.append(measure(args, parse_value(value), (sets, rows, parent_feats, parent_flags), classifier))
        print(json.dumps({"value": results[-1]["value"], "cut": results[-1]["cut"],
                          "stability": results[-1]["stability"]["rate"]}), flush=True)
    load.append(os.getloadavg())
    report = {"model": args.model, "param": args.param, "seeds": args.seeds, "rows": results,
              "seconds": round(time.monotonic() - started, 1), "load_average_before_after": load,
              "table": table(args.param, results)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(report["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
