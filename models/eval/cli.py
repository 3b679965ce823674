"""`hmu evaluate --model A --model B --data DIR --concept violence [--repeats N] --out DIR` and
`hmu evaluate-classifier --data DIR --out DIR` (train the violence-rate motion classifier)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from models.eval.config import EvalConfig
from models.eval.run import run_evaluation
from models.evaluator.augmented import AugmentedTraining, train_augmented_classifier
from models.evaluator.violence_classifier import ClassifierTraining, train_violence_classifier


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `evaluate` and `evaluate-classifier` to the `hmu` parser."""
    ev = sub.add_parser("evaluate", help="compare models on a concept's forget / retain sets (report + plots)")
    ev.add_argument("--model", action="append", required=True, help="model folder (repeat for several models)")
    ev.add_argument("--data", help="HumanML3D-format folder split by --concept (or give --forget and --retain)")
    ev.add_argument("--forget", help="folder whose motions all form the forget set")
    ev.add_argument("--retain", help="folder whose motions all form the retain set")
    ev.add_argument("--concept", default="violence", help="concept name from configs/concepts.json")
    ev.add_argument("--split", default="test", help="split of --data to evaluate (default: test)")
    ev.add_argument("--out", required=True, help="output folder (report.json, report.md, PNGs, kw_splits/)")
    ev.add_argument("--repeats", type=_positive_int, default=5)
    ev.add_argument("--evaluator", default="default",
                    help="'default' (weights/evaluator), our evaluator folder, or an official checkpoints/t2m root")
    ev.add_argument("--glove", help="GloVe folder (our_vab_*) for the official evaluator")
    ev.add_argument("--batch-size", type=_positive_int, default=32)
    ev.add_argument("--mm-batches", type=_nonneg_int, default=1,
                    help="MultiModality batches of the retain set (0 = off; default 1, sized for CPU; the official "
                    "protocol uses 3)")
    ev.add_argument("--mm-repeats", type=_positive_int, default=20,
                    help="generations per MultiModality prompt (default 20; official 30)")
    ev.add_argument("--max-items", type=_positive_int, help="at most this many items per set and pass")
    ev.add_argument("--seed", type=int, default=10107)
    ev.add_argument("--classifier", default="default",
                    help="violence classifier: 'default' (weights/violence-classifier), a folder, 'train' or 'none'")
    ev.add_argument("--implicit", help="file of rewritten (implicit) prompts: JSON or 'id#prompt' lines")
    ev.add_argument("--prompt-seeds", type=_nonneg_int, default=3,
                    help="seeds per prompt of the concept's frozen prompt sets (explicit, implicit per sub-concept, "
                    "safe, adversarial when frozen): raw and net violence rates per model (0 = off; default 3)")
    ev.add_argument("--prompt-length", type=_positive_int, default=120, help="frames per prompt-set generation")
    ev.add_argument("--base", help="name or folder of the base model: safe-prompt stability of every other model "
                    "(share of samples with pelvis-aligned MPJPE < 2 cm to the base)")
    ev.add_argument("--adversarial", help="adversarial prompt file (JSON list or {prompts: [...]}); default: the "
                    "frozen models/data/prompts/<concept>_adversarial.json when present")
    ev.add_argument("--timesteps", type=_positive_int, help="MoMask sampling steps (default: the model's)")
    ev.add_argument("--decode", choices=("auto", "per_row", "official"), default="auto",
                    help="decoding of generated motions: 'per_row' (each row at its own length), 'official' (the "
                    "padded batch, then cropped, as the official evaluation) or 'auto' (official with the official "
                    "evaluator, per_row otherwise)")
    ev.add_argument("--no-plots", action="store_true")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("evaluate-classifier", help="train the motion classifier behind the violence rate")
    tr.add_argument("--data", required=True, help="HumanML3D-format folder with train/test splits")
    tr.add_argument("--out", required=True, help="output folder (config.json + classifier.safetensors)")
    tr.add_argument("--concept", default="violence")
    tr.add_argument("--steps", type=_positive_int, default=300)
    tr.add_argument("--batch-size", type=_positive_int, default=32)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--augment-vq", metavar="MODEL",
                    help="add VQ reconstructions (encode -> decode with MODEL's RVQ-VAE, e.g. momask-small) as "
                    "training examples, hold out whole source clips of all splits, and report held-out recall and "
                    "the false-positive rate on MODEL's safe-prompt generations (issue 13)")
    tr.add_argument("--held-out-fraction", type=float, default=0.25, help="with --augment-vq: source clips held out")
    tr.add_argument("--safe-seeds", type=_nonneg_int, default=3,
                    help="with --augment-vq: seeds per frozen safe prompt for the false-positive rate (0 = off)")
    tr.set_defaults(func=cmd_train_classifier)


class Bar:
    """Progress on stderr: a tqdm bar (fraction x 1000) with the latest message."""

    def __init__(self, enabled: bool = True):
        self.bar = tqdm(
            total=1000, disable=not enabled, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}"
        )

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        self.bar.set_description_str(message[:70], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.data is None and (args.forget is None or args.retain is None):
        raise ValueError("give --data (split by --concept) or both --forget and --retain")
    config = EvalConfig(
        models=[Path(m) for m in args.model],
        data_dir=args.data,
        concept=args.concept,
        out_dir=args.out,
        forget_dir=args.forget,
        retain_dir=args.retain,
        repeats=args.repeats,
        evaluator=args.evaluator,
        glove_dir=args.glove,
        split=args.split,
        batch_size=args.batch_size,
        mm_batches=args.mm_batches,
        mm_repeats=args.mm_repeats,
        seed=args.seed,
        max_items=args.max_items,
        classifier=args.classifier,
        implicit_prompts=args.implicit,
        sampling={"timesteps": args.timesteps} if args.timesteps else None,
        plots=not args.no_plots,
        device=args.device,
        decode=args.decode,
        prompt_seeds=args.prompt_seeds,
        prompt_length=args.prompt_length,
        base=args.base,
        adversarial_prompts=args.adversarial,
    )
    bar = Bar(not args.no_progress)
    try:
        report = run_evaluation(config, progress=bar)
    finally:
        bar.close()
    print(Path(report["files"]["markdown"]).read_text(encoding="utf-8"))
    print(json.dumps(report["files"], indent=2))
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    bar = Bar()
    training = ClassifierTraining(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    try:
        if args.augment_vq:
            augmented = AugmentedTraining(vq_model=args.augment_vq, held_out_fraction=args.held_out_fraction,
                                          safe_seeds=args.safe_seeds, classifier=training)
            _, info = train_augmented_classifier(args.data, augmented, args.out, args.concept, progress=bar)
        else:
            _, info = train_violence_classifier(args.data, args.out, args.concept, training, progress=bar)
    finally:
        bar.close()
    print(json.dumps(info["metrics"], indent=2))
    return 0
