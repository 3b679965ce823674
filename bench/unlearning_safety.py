"""Violence after unlearning, every method, measured the same way (issue 13 acceptance table).

    python bench/unlearning_safety.py [--model weights/momask-small] [--data data/default] \
        [--method code_ban --method lcr ...] [--param code_ban:max_codes=64 ...] [--seeds 0 1 2] \
        [--out runs/unlearning_safety]

Each method unlearns `violence` from the model (guard attached, so weights-only and with-guard columns come
from the same checkpoint), then `models.eval.verify.verify_checkpoint` measures it against the model on every
frozen prompt set (explicit, implicit, adversarial, safe) with every seed (one report; each (prompt, seed) is a
sample of its Wilson interval): flagged share raw and net of the safe rate, cut of the net rate, safe-prompt
stability (aligned MPJPE < 2 cm), with the guard. Prints one JSON line per method and a Markdown table;
everything goes to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.eval.verify import verify_checkpoint
from models.unlearn.cli import parse_value
from models.unlearn.config import UnlearnConfig
from models.unlearn.run import run_unlearning

SETS = ("explicit", "implicit", "adversarial", "safe")


def method_params(items: list[str], method: str) -> dict[str, Any]:
    out = {}
    for item in items:
        name, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if name == method:
            out[key] = parse_value(value)
    return out


def row(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stability": report["stability"]["rate"], "verified": report["verified"]}
    for name in SETS:
        if name in report["weights_only"]:
            out[name] = report["weights_only"][name]["rate"]
            out[f"{name}_parent"] = report["parent"][name]["rate"]
            out[f"{name}_guard"] = report.get("with_guard", {}).get(name, {}).get("rate")
            out[f"{name}_cut"] = report["cut"].get(name)
    return out


def table(rows: dict[str, list[dict[str, Any]]]) -> str:
    def mean(values: list[Any]) -> str:
        values = [v for v in values if v is not None]
        return "-" if not values else f"{np.mean(values):.2f}"

    head = "| method | " + " | ".join(f"{s} (cut)" for s in SETS[:3]) + " | safe FP | stability | with guard e/i/a |"
    lines = [head, "|" + "---|" * 7]
    first = next(iter(rows.values()))
    lines.append("| parent | " + " | ".join(mean([r.get(f"{s}_parent") for r in first]) for s in SETS[:3])
                 + f" | {mean([r.get('safe_parent') for r in first])} | 1.00 | - |")
    for method, rs in rows.items():
        cells = [f"{mean([r.get(s) for r in rs])} ({mean([r.get(f'{s}_cut') for r in rs])})" for s in SETS[:3]]
        guard = "/".join(mean([r.get(f"{s}_guard") for r in rs]) for s in SETS[:3])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean([r.get('safe') for r in rs])} | "
                     f"{mean([r['stability'] for r in rs])} | {guard} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="weights/momask-small")
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--method", action="append", help="repeatable; default: code_ban lcr uce rece")
    parser.add_argument("--param", action="append", default=[], help="METHOD:KEY=VALUE (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/unlearning_safety")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = [os.getloadavg()]
    results: dict[str, Any] = {"model": args.model, "seeds": args.seeds, "runs": {}}
    rows: dict[str, list[dict[str, Any]]] = {}
    for method in args.method or ["code_ban", "lcr", "uce", "rece"]:
        target = out / f"{Path(args.model).name}-{method}"
        started = time.monotonic()
        manifest = run_unlearning(UnlearnConfig(model=args.model, method=method, out_dir=target, concept="violence",
                                                params=method_params(args.param, method), data_dir=args.data,
                                                guard=True))
        seconds = time.monotonic() - started
        report = verify_checkpoint(target, args.model, "violence", seeds=args.seeds)
        rows[method] = [row(report)]
        print(json.dumps({"method": method, "seeds": args.seeds, "unlearn_s": round(seconds, 1), **rows[method][0]}),
              flush=True)
        results["runs"][method] = {"unlearn_s": round(seconds, 1), "params": manifest["params"], "rows": rows[method],
                                   "method_result": manifest.get("result"), "report": report}
        for path in target.glob("**/*.safetensors"):
            path.unlink()  # keep reports, not weights
    load.append(os.getloadavg())
    results["load_average_before_after"] = load
    results["table"] = table(rows)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(results["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
