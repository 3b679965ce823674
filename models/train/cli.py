"""`hmu train vq|mask|res|bamm|length|evaluator|default --data DIR --out DIR ...`."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from models.train.bundle import train_default, train_momask
from models.train.config import STAGES, load_config
from models.train.loops import TRAINERS, RunOptions


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def register(subparsers) -> None:
    """Add the `train` command to the `hmu` parser."""
    parser = subparsers.add_parser("train", help="train the default models on a HumanML3D-format folder")
    parser.add_argument("stage", choices=[*STAGES, "default", "momask"],
                        help="one model; `default` = all stages and the native bundles; `momask` = mask, res and "
                        "length with a trained VQ (--vq), written as the bundle OUT/momask-<size> (e.g. a model "
                        "retrained on a retain set only)")
    parser.add_argument("--data", required=True, help="HumanML3D-format folder (new_joint_vecs, texts, ...)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per stage)")
    parser.add_argument("--config", help="training config JSON (a folder of <stage>.json for `default`); "
                        "default: configs/train/")
    parser.add_argument("--vq", help="trained VQ folder for mask/res/bamm/length/evaluator (default: OUT/vq)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/<stage>/latest.pt")
    parser.add_argument("--max-minutes", type=_positive_float,
                        help="wall-time budget; the run then validates, saves and stops")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    parser.set_defaults(func=cmd_train)


def _command_line(args: argparse.Namespace) -> str:
    """The invocation as a shell command (for model cards), rebuilt from the parsed arguments."""
    words = ["hmu", "train", args.stage, "--data", args.data, "--out", args.out]
    for flag, value in (("--config", args.config), ("--vq", args.vq), ("--max-minutes", args.max_minutes),
                        ("--threads", args.threads)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--device", args.device] + (["--resume"] if args.resume else [])
    return " ".join(shlex.quote(str(w)) for w in words)


def cmd_train(args: argparse.Namespace) -> int:
    data, out = Path(args.data), Path(args.out)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data} is not a directory")
    opts = RunOptions(resume=args.resume, max_minutes=args.max_minutes, device=args.device,
                      progress=not args.no_progress)
    command = _command_line(args)
    if args.stage == "default":
        bundles = train_default(data, out, config_dir=args.config, opts=opts, command=command)
        print(json.dumps({name: str(path) for name, path in bundles.items()}, indent=2))
        return 0
    if args.stage == "momask":
        if args.vq is None:
            raise ValueError("`hmu train momask` needs --vq (a trained VQ folder, e.g. RUN/vq)")
        bundle = train_momask(data, out, args.vq, config_dir=args.config, opts=opts, command=command)
        print(json.dumps({bundle.name: str(bundle)}, indent=2))
        return 0
    cfg = load_config(args.stage, args.config)
    kwargs = {} if args.stage == "vq" else {"vq_dir": args.vq}
    result = TRAINERS[args.stage](data, out, cfg, opts, **kwargs)
    print(json.dumps({"stage": args.stage, "iteration": result.fit.iteration,
                      "best_iteration": result.fit.best_iteration, "metrics": result.metrics}, indent=2))
    return 0
