"""`hmu unlearn`, `hmu unlearn-restore` and `hmu forget-split` sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from models.data.concepts import get_concept
from models.data.forget_retain import split_dataset, write_retain_dataset
from models.pipelines import default_model_dir
from models.unlearn.config import METHOD_NAMES, UnlearnConfig
from models.unlearn.run import PRIVATE_DIR, restore_overlay, run_unlearning


def parse_value(text: str) -> Any:
    """JSON where possible (3, 0.5, true, [0,1], {"kick":16}, null); `a,b` -> list; else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(part.strip()) for part in text.split(",")]
    return text


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """`["k=16", "layers=[0,1]"]` -> {"k": 16, "layers": [0, 1]}."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects key=value, got {item!r}")
        params[key.strip()] = parse_value(value)
    return params


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr)


def cmd_unlearn(args: argparse.Namespace) -> int:
    params = json.loads(Path(args.params_json).read_text(encoding="utf-8")) if args.params_json else {}
    params.update(parse_params(args.param))
    keywords = [k.strip() for k in args.keywords.split(",") if k.strip()] if args.keywords else None
    concept = args.concept if args.concept or keywords else "violence"
    config = UnlearnConfig(
        model=args.model or default_model_dir(),
        method=args.method,
        out_dir=args.out,
        concept=None if keywords else concept,
        keywords=keywords,
        params=params,
        data_dir=args.data,
        device=args.device,
        concept_files=args.concepts_file or (),
        guard=args.guard,
    )
    manifest = run_unlearning(config, progress=None if args.quiet else _progress)
    summary = {
        "out": str(args.out),
        "method": manifest["method"],
        "concept": manifest["concept"]["name"],
        "parent_sha256": manifest["parent"]["sha256"],
        "seconds": manifest["seconds"],
    }
    if "selected_codes" in manifest["result"]:
        summary["selected_codes"] = manifest["result"]["selected_codes"]
    private = Path(args.out) / PRIVATE_DIR
    if private.is_dir():
        summary["private_overlay"] = str(private)
        print(
            f"note: {private} holds the original codebook rows; never publish it with the model",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "config.json").exists():
        raise ValueError(f"{out} already holds a model; choose a new output folder")
    pipeline = restore_overlay(args.model, args.overlay)
    pipeline.save_pretrained(out)
    print(json.dumps({"out": str(out), "restored_from": str(args.model)}))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    concept = get_concept(args.concept, args.concepts_file or (), match_mode=args.match_mode)
    parts = split_dataset(args.data, concept, args.splits, args.out, args.min_occurrence)
    if args.retain_data:
        write_retain_dataset(args.data, concept, args.retain_data, args.min_occurrence)
    print(json.dumps({s: p.summary() for s, p in parts.items()}))
    return 0


def register(subparsers) -> None:
    """Add the unlearning sub-commands to `hmu`."""
    un = subparsers.add_parser(
        "unlearn", help="remove a concept from a model (writes a new native checkpoint)"
    )
    un.add_argument("--model", help="native checkpoint folder or official layout (default: shipped model)")
    un.add_argument("--method", default="code_ban", choices=sorted(METHOD_NAMES),
                    help="default: code_ban (recommended); lcr, uce, rece, esd, ft are the paper's methods")
    un.add_argument("--concept", help="concept name from configs/concepts.json (default: violence)")
    un.add_argument("--keywords", help="inline concept: comma-separated keywords (instead of --concept)")
    un.add_argument("--concepts-file", action="append", help="extra concepts JSON file (repeatable)")
    un.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="method parameter, value parsed as JSON where possible (repeatable)",
    )
    un.add_argument("--params-json", help="JSON file with method parameters (--param entries override it)")
    un.add_argument("--data", help="HumanML3D-format dataset (LCR, FT; default $HMU_UNLEARN_DATA_DIR)")
    un.add_argument("--out", required=True, help="output folder for the new checkpoint")
    un.add_argument("--device", default="cpu")
    un.add_argument("--no-verify", dest="verify", action="store_false",
                    help="skip the safety verification `hmu` runs after writing the model (violence concepts)")
    un.add_argument("--verify-max-prompts", type=int, help="verification: at most this many prompts per frozen "
                    "set (a quick check; default all)")
    un.add_argument("--verify-seeds", type=int, nargs="+", default=[0],
                    help="verification: seeds per prompt (default 0; each seed adds a full pass)")
    un.add_argument("--guard", action=argparse.BooleanOptionalAction, default=None,
                    help="attach the shipped safety guard to the new model (default: for violence concepts)")
    un.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    un.set_defaults(func=cmd_unlearn)

    rs = subparsers.add_parser(
        "unlearn-restore", help="restore the full model from an LCR checkpoint + overlay"
    )
    rs.add_argument("--model", required=True, help="the (public) LCR checkpoint folder")
    rs.add_argument("--overlay", help="private overlay file (default MODEL/private/lcr_overlay.safetensors)")
    rs.add_argument("--out", required=True)
    rs.set_defaults(func=cmd_restore)

    sp = subparsers.add_parser("forget-split", help="forget/retain id lists of a dataset by concept keywords")
    sp.add_argument("--data", required=True, help="HumanML3D-format dataset folder")
    sp.add_argument("--concept", default="violence")
    sp.add_argument("--concepts-file", action="append")
    sp.add_argument("--match-mode", choices=("word", "substring"))
    sp.add_argument("--splits", nargs="+", default=["train_val", "test"])
    sp.add_argument("--min-occurrence", type=int, default=1)
    sp.add_argument("--out", required=True, help="folder for {split}-w-{name}.txt / {split}-wo-{name}.txt")
    sp.add_argument(
        "--retain-data",
        help="also write a dataset folder of the retain set only (links + retain train/val/test.txt), e.g. "
        "for `hmu train momask` (the retain-only reference model)",
    )
    sp.set_defaults(func=cmd_split)
