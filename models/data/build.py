"""Build a HumanML3D-format dataset from the shared mocap sources and/or a folder of BVH files.

Output (`out_dir`), as HumanML3D (reference/humanml3d-format.md §1-§2):

    new_joint_vecs/<id>.npy  (T, 263) float32   features (`joints_to_features`)
    new_joints/<id>.npy      (T, 22, 3) float32 joints recovered from the features
    texts/<id>.txt           `caption#word/POS ...#start#end` lines
    Mean.npy, Std.npy        (263,) float32, train split, group-averaged std
    train.txt val.txt test.txt train_val.txt all.txt
    meta.json                per id: source, source clip, window, label, style, violent, kind, split
    DATASET_CARD.md          counts, rules, licences
    SHA256SUMS               hash of every other file (rebuilding gives identical bytes)

Long clips are cut into windows of at most `max_frames` feature frames; clips shorter than
`min_frames` feature frames are dropped. Every window also gets a left/right mirrored copy (`M`
prefix). The split is made per source clip: all windows and mirrors of a clip share it.

Stages, one module each: `collect` (clips), `splits`, `windows` and `motions` (features, captions, meta
records), `statistics` (Mean/Std), `writer` (files), `summary` (counts) and `card` (DATASET_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.data.card import render_card
from models.data.collect import collect_clips
from models.data.config import FORMAT_VERSION, FPS, SPLITS, BuildConfig
from models.data.motions import window_motions
from models.data.sources import SourceClip
from models.data.splits import assign_splits
from models.data.statistics import RunningStats
from models.data.summary import summarize
from models.data.windows import window_ranges
from models.data.writer import prepare_out_dir, write_checksums, write_index, write_motion, write_statistics

__all__ = [
    "FORMAT_VERSION", "FPS", "SPLITS", "BuildConfig", "assign_splits", "build_dataset", "collect_clips",
    "render_card", "window_ranges",
]


@dataclass
class _Written:
    """What `_write_clips` wrote: meta.json records, ids per split, train statistics, clips too short to use."""

    meta: dict[str, dict] = field(default_factory=dict)
    split_ids: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    stats: RunningStats = field(default_factory=lambda: RunningStats(263))
    dropped: list[SourceClip] = field(default_factory=list)


def _write_clips(out_dir: Path, clips: list[SourceClip], splits: dict[tuple[str, str], str], config: BuildConfig,
                 log: Callable[[str], None] | None) -> _Written:
    """Write every motion of every clip, in clip order."""
    done = _Written()
    next_id = 0
    for n_clip, clip in enumerate(clips):
        windows = window_ranges(len(clip.joints), config.min_frames, config.max_frames)
        if not windows:
            done.dropped.append(clip)
            continue
        split = splits[(clip.source, clip.clip_id)]
        for motion in window_motions(clip, windows, split, next_id, config):
            write_motion(out_dir, motion)
            frames = int(motion.features.shape[0])
            done.meta[motion.motion_id] = {**motion.record, "frames": frames, "captions": motion.captions}
            done.split_ids[split].append(motion.motion_id)
            if split == "train":
                done.stats.add(motion.features)
        next_id += len(windows)
        if log is not None and (n_clip + 1) % 500 == 0:
            log(f"{n_clip + 1}/{len(clips)} clips, {next_id} windows")
    return done


def build_dataset(
    out_dir: str | Path,
    shared_dir: str | Path | None = "../shared/data",
    bvh_dir: str | Path | None = None,
    config: BuildConfig | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Build the dataset into `out_dir`; returns a summary dict (the counts of the card)."""
    config = config or BuildConfig()
    out_dir = Path(out_dir)
    clips, notes = collect_clips(
        shared_dir, bvh_dir, limit, set(ids) if ids is not None else None, config.bvh_scale
    )
    if not clips:
        raise ValueError("no clips selected")
    prepare_out_dir(out_dir, overwrite)
    splits = assign_splits([(c.source, c.clip_id, c.label) for c in clips], config)
    done = _write_clips(out_dir, clips, splits, config, log)
    write_statistics(out_dir, *done.stats.result(22))
    write_index(out_dir, done.split_ids, done.meta)
    summary = summarize(clips, done.dropped, done.meta, config, notes)
    (out_dir / "DATASET_CARD.md").write_text(render_card(summary), encoding="utf-8")
    write_checksums(out_dir)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `hmu data build` / `python -m models.data.build`."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (HumanML3D layout)")
    parser.add_argument(
        "--shared", type=Path, default=Path("../shared/data"), help="shared data root (mocap/)"
    )
    parser.add_argument("--no-shared", action="store_true", help="build from --bvh only")
    parser.add_argument("--bvh", type=Path, default=None, help="folder of .bvh files to add")
    parser.add_argument("--bvh-scale", type=float, default=0.01, help="BVH units to metres (default cm)")
    parser.add_argument("--limit", type=int, default=None, help="first N clips of each source (smoke builds)")
    parser.add_argument("--min-frames", type=int, default=40)
    parser.add_argument("--max-frames", type=int, default=196)
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="salt of the split hash")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous build in --out")


def run(args: argparse.Namespace) -> int:
    config = BuildConfig(
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        mirror=not args.no_mirror,
        seed=args.seed,
        bvh_scale=args.bvh_scale,
    )
    summary = build_dataset(
        args.out,
        shared_dir=None if args.no_shared else args.shared,
        bvh_dir=args.bvh,
        config=config,
        limit=args.limit,
        overwrite=args.overwrite,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps({"out": str(args.out), "motions": summary["motions"], "splits": summary["splits"]}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.data.build", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
