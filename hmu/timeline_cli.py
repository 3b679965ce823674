"""`hmu generate` options for timelines (`--segment TEXT=SECONDS ...`) and edits (`--edit SOURCE.npy --keep A:B`)."""

from __future__ import annotations

import argparse

import numpy as np

from models.pipelines import FPS, UNIT_LENGTH, MotionPipeline
from models.pipelines.edit import edit_motion
from models.pipelines.timeline import Segment, generate_timeline


def _segment(text: str) -> tuple[str, float]:
    words, sep, seconds = text.rpartition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not sep or not words.strip() or not value > 0:
        raise argparse.ArgumentTypeError(f"a segment is TEXT=SECONDS (e.g. 'a person walks=4'), got {text!r}")
    return words.strip(), value


def _range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition(":")
    try:
        return int(start), int(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a kept range is START:END in frames (e.g. 0:40), got {text!r}") from None


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segment", type=_segment, action="append", metavar="TEXT=SECONDS",
                        help="a timeline part (repeat, in order; at most 60 s in all) instead of --text")
    parser.add_argument("--edit", metavar="SOURCE.npy", help="regenerate this motion's features (T, 263) "
                        "outside the --keep ranges from --text (in-betweening)")
    parser.add_argument("--keep", type=_range, action="append", metavar="START:END",
                        help="with --edit: frames [START, END) kept unchanged (repeat)")


def generate_special(pipeline: MotionPipeline, args: argparse.Namespace) -> list | None:
    """The motions of a timeline or edit command line, None for a plain one; ValueError on bad options."""
    if args.segment and (args.text or args.edit):
        raise ValueError("--segment replaces --text and cannot be combined with --edit")
    if not args.segment and not args.text:
        raise ValueError("give --text, or --segment TEXT=SECONDS (repeated) for a timeline")
    if args.keep and not args.edit:
        raise ValueError("--keep needs --edit SOURCE.npy")
    if args.segment:
        parts = [Segment(text, int(round(seconds * FPS)) // UNIT_LENGTH * UNIT_LENGTH)
                 for text, seconds in args.segment]
        return generate_timeline(pipeline, parts, seed=args.seed, num_samples=args.num_samples)
    if args.edit:
        if not args.keep:
            raise ValueError("--edit needs at least one --keep START:END")
        source = np.load(args.edit, allow_pickle=False)
        return edit_motion(pipeline, source, args.text, args.keep, seed=args.seed, num_samples=args.num_samples)
    return None
