"""The `hmu` command line: serve, worker, generate, convert, inspect, unlearn, evaluate, train, data."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hmu import __version__, timeline_cli
from hmu.serve import serve
from models.data import cli as data_cli
from models.eval import cli as eval_cli
from models.eval.verify import verifiable, verify_checkpoint
from models.evaluator.safety_guard import SafetyGuard
from models.io.inspect import format_report, inspect_folder
from models.motion.export import FORMATS, ROOT_MOTIONS, ExportOptions, export_motion
from models.motion.resample import FPS_CHOICES
from models.motion.rigs import RIG_NAMES
from models.pipelines import FPS, MotionPipeline, default_model_dir
from models.train import cli as train_cli
from models.unlearn import cli as unlearn_cli
from worker.app import run_worker

# Sub-commands contributed by the data, training, unlearning and evaluation packages.
REGISTRATIONS = (data_cli.register, train_cli.register, unlearn_cli.register, eval_cli.register)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def default_model_path() -> Path:
    """The shipped default model (MoMask-small)."""
    return default_model_dir()


# ---------------------------------------------------------------------------------------------- generate
def write_files(motions: list, out: Path, options: ExportOptions) -> list[Path]:
    """Write `.bvh` / `.glb` files (sample i > 0 to `<stem>-<i><suffix>`); in place, also the ground trajectory
    to `<stem>.root.json` ({"fps", "trajectory"}). Returns the motion files written."""
    written = []
    for i, motion in enumerate(motions):
        path = out if i == 0 else out.with_name(f"{out.stem}-{i}{out.suffix}")
        exported = export_motion(motion.joints, options)
        if isinstance(exported.data, bytes):
            path.write_bytes(exported.data)
        else:
            path.write_text(exported.data)
        if exported.trajectory is not None:
            sidecar = path.with_name(f"{path.stem}.root.json")
            sidecar.write_text(json.dumps({"fps": exported.fps, "trajectory": exported.trajectory.round(5).tolist()}))
        written.append(path)
    return written


def write_motions(motions: list, out: Path, features_out: Path | None = None,
                  options: ExportOptions | None = None) -> None:
    """Write generated motions: `.npy` joints (T,22,3) or (K,T,22,3), `.json` {"fps", "joints"}, or `.bvh` /
    `.glb` files as `options` say (rig, fps, root motion, loop; see `write_files`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix.lstrip(".") in FORMATS:
        write_files(motions, out, options or ExportOptions(format=suffix.lstrip(".")))
    elif options is not None and options != ExportOptions(format=options.format):
        raise ValueError("--skeleton, --fps, --root-motion and --loop need --out ending with .bvh or .glb")
    elif suffix == ".npy":
        if len(motions) == 1:
            np.save(out, motions[0].joints.astype(np.float32))
        elif len({m.length for m in motions}) == 1:
            np.save(out, np.stack([m.joints for m in motions]).astype(np.float32))
        else:
            raise ValueError("samples have different lengths: write .json, or pass --length")
    elif suffix == ".json":
        samples = [{"text": m.text, "length": m.length, "seed": m.seed, "joints": m.joints.round(5).tolist()}
                   for m in motions]
        payload = {"fps": FPS, **samples[0]} if len(samples) == 1 else {"fps": FPS, "samples": samples}
        out.write_text(json.dumps(payload))
    else:
        raise ValueError(f"--out must end with .npy or .json (joints), .bvh or .glb (files), got {out.name}")
    if features_out is not None:
        features_out.parent.mkdir(parents=True, exist_ok=True)
        if len(motions) == 1:
            np.save(features_out, motions[0].features.astype(np.float32))
        else:
            np.save(features_out, np.stack([m.features for m in motions]).astype(np.float32))


OFFICIAL_OPTIONS = ("clip_path", "checkpoints_dir", "base_name", "res_name", "which_epoch", "length_mode")


def add_official_options(parser: argparse.ArgumentParser) -> None:
    """The choices of an official MoMask/BAMM layout (see models/io/official.py `load_checkpoint`)."""
    parser.add_argument("--clip-path", help="CLIP ViT-B/32 weights folder (official checkpoints)")
    parser.add_argument("--checkpoints-dir", help="official: another checkpoints root searched for the RVQ, "
                        "residual and length estimator runs")
    parser.add_argument("--base-name", help="official: the base transformer run folder name")
    parser.add_argument("--res-name", help="official: the residual transformer run folder name (tres*)")
    parser.add_argument("--which-epoch", help="official: the base run's file in model/ (latest, net_best_fid, ...)")
    parser.add_argument("--length-mode", choices=("estimator", "end_token"),
                        help="official: lengths from the length estimator, or BAMM's end token")


def official_options(args: argparse.Namespace) -> dict:
    """The official options given on the command line (unset ones left out)."""
    return {name: getattr(args, name) for name in OFFICIAL_OPTIONS if getattr(args, name, None) is not None}


def generate_checked(args: argparse.Namespace) -> list | None:
    """The requested motions, through the model's safety guard when it carries one (None: refused)."""
    model = args.model or default_model_path()
    pipeline = MotionPipeline.from_pretrained(model, **official_options(args))
    guard = SafetyGuard.from_model_dir(model) if Path(model).is_dir() else None
    special = timeline_cli.generate_special(pipeline, args)  # --segment timelines, --edit in-betweening
    if special is not None:
        if guard is not None and any(m is None for m in guard.refuse_flagged(special)):
            print("unsafe_output: the model's safety guard flagged the motion; nothing written", file=sys.stderr)
            return None
        return special
    if guard is None:
        return pipeline.generate([args.text], lengths=[args.length], seed=args.seed, num_samples=args.num_samples)
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(2**31 - 16))
    guarded = guard.generate(pipeline, [args.text] * args.num_samples, [args.length] * args.num_samples,
                             [seed + j for j in range(args.num_samples)])
    if any(m is None for m in guarded.motions):
        print(f"unsafe_output: the model's safety guard refused {guarded.counts.refusals} of "
              f"{args.num_samples} motions; nothing written", file=sys.stderr)
        return None
    return guarded.motions


def cmd_generate(args: argparse.Namespace) -> int:
    motions = generate_checked(args)
    if motions is None:
        return 3
    suffix = Path(args.out).suffix.lower().lstrip(".")
    options = ExportOptions(format=suffix if suffix in FORMATS else "bvh", skeleton=args.skeleton, fps=args.fps,
                            root_motion=args.root_motion, loop=args.loop)
    write_motions(motions, Path(args.out), Path(args.features_out) if args.features_out else None, options)
    for m in motions:
        print(f"{args.out}: {m.length} frames ({m.length / 20:.1f} s) for {m.text!r}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    pipeline = MotionPipeline.from_pretrained(args.source, **official_options(args))
    out = pipeline.save_pretrained(args.out)
    print(f"wrote {pipeline.kind} model in the native format to {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    report = inspect_folder(args.path, **official_options(args))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report.get("loads") else 1


# ---------------------------------------------------------------------------------------------- service
def cmd_serve(args: argparse.Namespace) -> int:
    serve(host=args.host, port=args.port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if args.ping:  # healthcheck: 0 when a worker of this host answers a Celery ping
        from core.settings import get_settings
        from worker.health import ping_local_workers

        answered = ping_local_workers(get_settings(), timeout_s=args.ping_timeout)
        print(json.dumps({"answered": answered}))
        return 0 if answered else 1
    run_worker(queues=args.queues.split(","), concurrency=args.concurrency)
    return 0


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmu", description="Human Motion Unlearning: generate, unlearn, evaluate.")
    parser.add_argument("--version", action="version", version=f"hmu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text -> 3D motion")
    gen.add_argument("--model", help="native checkpoint folder or official layout (default: shipped MoMask-small)")
    gen.add_argument("--text", help="what the motion shows (required unless --segment)")
    gen.add_argument("--length", type=_positive_int, help="frames at 20 fps (4..196); default: estimated")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--num-samples", type=_positive_int, default=1)
    gen.add_argument("--out", required=True, help=".npy (joints T x 22 x 3, metres), .json, .bvh or .glb")
    gen.add_argument("--features-out", help="also write the 263-dim features (.npy)")
    gen.add_argument("--skeleton", choices=RIG_NAMES, help=".bvh/.glb: target rig (default: our 22 joints)")
    gen.add_argument("--fps", type=int, choices=FPS_CHOICES, default=20, help=".bvh/.glb: frame rate")
    gen.add_argument("--root-motion", choices=ROOT_MOTIONS, default="world",
                     help=".bvh/.glb: in_place also writes <stem>.root.json (the ground trajectory)")
    gen.add_argument("--loop", action="store_true", help=".bvh/.glb: blend the last 0.5 s into the first frame")
    add_official_options(gen)
    timeline_cli.add_options(gen)
    gen.set_defaults(func=cmd_generate)

    conv = sub.add_parser("convert", help="write any loadable model in the native format")
    conv.add_argument("source")
    conv.add_argument("--out", required=True)
    add_official_options(conv)
    conv.set_defaults(func=cmd_convert)

    insp = sub.add_parser("inspect", help="what a checkpoint folder holds (runs, VQ, sizes, epochs) and whether "
                          "it loads")
    insp.add_argument("path", help="native checkpoint folder, official checkpoints root, dataset or run folder")
    insp.add_argument("--json", action="store_true", help="print the report as JSON")
    add_official_options(insp)
    insp.set_defaults(func=cmd_inspect)

    srv = sub.add_parser("serve", help="run the service (embedded Redis + worker unless HMU_REDIS_URL is set)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.set_defaults(func=cmd_serve)

    work = sub.add_parser("worker", help="run a Celery worker")
    work.add_argument("--queues", default="generate,unlearn,evaluate")
    work.add_argument("--concurrency", type=_positive_int,
                      help="worker processes (default: HMU_WORKER_CONCURRENCY)")
    work.add_argument("--ping", action="store_true",
                      help="do not run a worker: exit 0 if a worker of this host answers a Celery ping (healthcheck)")
    work.add_argument("--ping-timeout", type=float, default=5.0)
    work.set_defaults(func=cmd_worker)

    for register in REGISTRATIONS:
        register(sub)
    return parser


def verify_unlearned(args: argparse.Namespace) -> None:
    """`hmu unlearn`'s safety verification of the model it wrote (concepts with frozen prompt sets)."""
    concept = args.concept or "violence"
    if args.keywords or not verifiable(concept):
        print("verification skipped: the concept has no frozen evaluation prompts", file=sys.stderr)
        return
    progress = None if args.quiet else (lambda f, m: print(f"[{f:5.1%}] {m}", file=sys.stderr))
    report = verify_checkpoint(args.out, args.model or default_model_path(), concept,
                               seeds=args.verify_seeds, max_prompts=args.verify_max_prompts, progress=progress)
    print(json.dumps({"verified": report["verified"], "cut": report["cut"],
                      "safe_unchanged": report["stability"]["rate"], "seconds": report["seconds"]}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        if code == 0 and args.command == "unlearn" and args.verify:
            verify_unlearned(args)
        return code
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"hmu {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
