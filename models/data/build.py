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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.data.captions import template_captions, text_line
from models.data.labels import VIOLENT_KINDS, ClipLabel, dominant_side
from models.data.skeletons import SOURCE_SKELETONS
from models.data.sources import SOURCE_ORDER, SourceClip, load_bvh_dir, load_shared_clips
from models.motion.features import features_to_joints, joints_to_features
from models.motion.mirror import mirror_joints, mirror_text
from models.motion.normalize import group_average_std

FORMAT_VERSION = 1
FPS = 20.0
SPLITS = ("train", "val", "test")
_OUTPUTS = ("new_joint_vecs", "new_joints", "texts")
_FILES = ("Mean.npy", "Std.npy", "meta.json", "DATASET_CARD.md", "SHA256SUMS") + tuple(
    f"{s}.txt" for s in (*SPLITS, "train_val", "all")
)


@dataclass(frozen=True)
class BuildConfig:
    min_frames: int = 40  # feature frames; HumanML3D loaders drop motions with T < 40
    max_frames: int = 196  # feature frames per window; loaders drop T >= 200, 196 = max_motion_length
    captions_per_motion: int = 3  # template captions (KIT-ML captions come on top)
    mirror: bool = True
    seed: int = 0  # salt of the split hash
    val_fraction: float = 0.05  # non-violent clips (HumanML3D: 80 / 5 / 15)
    test_fraction: float = 0.15
    violent_test_fraction: float = 1 / 3  # per violent kind, at least one clip
    kitml_min_coverage: float = 0.5  # a KIT-ML caption is kept for a window covering this much of it
    bvh_scale: float = 0.01  # BVH units -> metres (centimetres)

    def __post_init__(self) -> None:
        if not 2 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 2 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if self.max_frames >= 200:
            raise ValueError(
                f"max_frames must be < 200 (HumanML3D loaders drop longer motions), got {self.max_frames}"
            )
        if self.captions_per_motion < 1:
            raise ValueError(f"captions_per_motion must be >= 1, got {self.captions_per_motion}")
        if not (
            self.val_fraction >= 0 and self.test_fraction >= 0 and self.val_fraction + self.test_fraction < 1
        ):
            raise ValueError(f"bad split fractions: val {self.val_fraction}, test {self.test_fraction}")
        if not 0 < self.violent_test_fraction < 1:
            raise ValueError(f"violent_test_fraction must be in (0, 1), got {self.violent_test_fraction}")


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def window_ranges(n_frames: int, min_frames: int = 40, max_frames: int = 196) -> list[tuple[int, int]]:
    """Joint-frame ranges [start, end) covering a clip of `n_frames` joint frames.

    A window of w joint frames gives w - 1 feature frames. Clips with fewer than min_frames + 1 frames
    give no window; longer clips are cut into the fewest equal windows of <= max_frames feature frames,
    spread evenly from the first to the last frame (neighbours may share a frame).
    """
    t = n_frames - 1
    if t < min_frames:
        return []
    k = -(-t // max_frames)
    if k == 1:
        return [(0, n_frames)]
    length = t // k + 1  # joint frames per window
    span = n_frames - length
    starts = [(2 * i * span + (k - 1)) // (2 * (k - 1)) for i in range(k)]  # round(i * span / (k-1))
    return [(s, s + length) for s in starts]


def assign_splits(
    clips: Sequence[tuple[str, str, ClipLabel]], config: BuildConfig
) -> dict[tuple[str, str], str]:
    """(source, clip_id, label) -> split, per source clip.

    Non-violent clips: a salted hash of (source, clip id) gives train / val / test with the configured
    fractions. Violent clips, per kind: the clips (hash order within each source, sources interleaved)
    go first to test (round(n * violent_test_fraction), at least 1 and, for n >= 2, leaving at least one
    for train), then one to val when at least 8 remain, the rest to train.
    """
    out: dict[tuple[str, str], str] = {}
    by_kind: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for source, clip_id, label in clips:
        key = (source, clip_id)
        if label.violent:
            by_kind[label.kind or "other"][source].append(clip_id)
            continue
        u = _digest(f"{config.seed}/{source}/{clip_id}") / 2**64
        out[key] = (
            "test"
            if u < config.test_fraction
            else "val"
            if u < config.test_fraction + config.val_fraction
            else "train"
        )
    for kind in sorted(by_kind):
        per_source = {
            s: sorted(set(ids), key=lambda c, s=s: (_digest(f"{config.seed}/{s}/{c}"), c))
            for s, ids in by_kind[kind].items()
        }
        order: list[tuple[str, str]] = []
        sources = sorted(per_source, key=lambda s: (SOURCE_ORDER.index(s) if s in SOURCE_ORDER else 99, s))
        for i in range(max(len(v) for v in per_source.values())):
            order += [(s, per_source[s][i]) for s in sources if i < len(per_source[s])]
        n = len(order)
        n_test = max(1, int(n * config.violent_test_fraction + 0.5))
        if n >= 2:
            n_test = min(n_test, n - 1)
        n_val = 1 if n - n_test >= 8 else 0
        for i, key in enumerate(order):
            out[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


class _RunningStats:
    """Per-dimension mean / population std over the rows of many arrays (Chan et al. merge, float64)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        nb = x.shape[0]
        if nb == 0 or not np.isfinite(x).all():
            return
        mb = x.mean(0)
        m2b = ((x - mb) ** 2).sum(0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    def result(self, joints_num: int) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            raise ValueError("no training frames to compute Mean/Std from")
        std = np.sqrt(self.m2 / self.n)
        return self.mean.astype(np.float32), group_average_std(std, joints_num).astype(np.float32)


def _kitml_for_window(clip: SourceClip, start: int, end: int, min_coverage: float) -> list[str]:
    out = []
    w0, w1 = start / FPS, (end - 1) / FPS
    for cap in clip.kitml:
        c0, c1 = float(cap["start"]), float(cap["end"])
        span = max(c1 - c0, 1e-6)
        if (min(w1, c1) - max(w0, c0)) / span >= min_coverage:
            out.append(str(cap["text"]))
    return out


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out_dir} is not empty (pass overwrite=True / --overwrite)")
        for name in _OUTPUTS:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in _FILES:
            (out_dir / name).unlink(missing_ok=True)
    for name in _OUTPUTS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)


def collect_clips(
    shared_dir: str | Path | None,
    bvh_dir: str | Path | None = None,
    limit: int | None = None,
    ids: set[str] | None = None,
    bvh_scale: float = 0.01,
) -> tuple[list[SourceClip], list[str]]:
    """Shared clips plus BVH clips, sorted by (source, clip id); a BVH clip replaces the npz clip of the
    same source and id. `limit` keeps the first N clips (sorted) of each source. Returns the clips and
    notes for the card."""
    if shared_dir is None and bvh_dir is None:
        raise ValueError("nothing to build: give a shared data folder and/or a BVH folder")
    clips: dict[tuple[str, str], SourceClip] = {}
    notes: list[str] = []
    if shared_dir is not None:
        for c in load_shared_clips(shared_dir, ids=ids):
            clips[(c.source, c.clip_id)] = c
    if bvh_dir is not None:
        for c in load_bvh_dir(bvh_dir, scale=bvh_scale):
            if ids is not None and c.clip_id not in ids:
                continue
            key = (c.source, c.clip_id)
            if key in clips:
                notes.append(f"`{c.clip_id}` ({c.source}) taken from {c.origin} instead of the npz")
                c.kitml = clips[key].kitml
            clips[key] = c
    ordered = sorted(clips.values(), key=lambda c: (SOURCE_ORDER.index(c.source), c.clip_id))
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        seen: Counter = Counter()
        kept = []
        for c in ordered:
            if seen[c.source] < limit:
                kept.append(c)
                seen[c.source] += 1
        ordered = kept
    return ordered, notes


def build_dataset(
    out_dir: str | Path,
    shared_dir: str | Path | None = "../shared/data",
    bvh_dir: str | Path | None = None,
    config: BuildConfig | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    overwrite: bool = False,
    log=None,
) -> dict:
    """Build the dataset into `out_dir`; returns a summary dict (the counts of the card)."""
    config = config or BuildConfig()
    out_dir = Path(out_dir)
    clips, notes = collect_clips(
        shared_dir, bvh_dir, limit, set(ids) if ids is not None else None, config.bvh_scale
    )
    if not clips:
        raise ValueError("no clips selected")
    _prepare_out_dir(out_dir, overwrite)
    splits = assign_splits([(c.source, c.clip_id, c.label) for c in clips], config)

    meta: dict[str, dict] = {}
    split_ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    stats = _RunningStats(263)
    dropped: list[SourceClip] = []
    next_id = 0
    for n_clip, clip in enumerate(clips):
        windows = window_ranges(len(clip.joints), config.min_frames, config.max_frames)
        if not windows:
            dropped.append(clip)
            continue
        split = splits[(clip.source, clip.clip_id)]
        for w, (start, end) in enumerate(windows):
            motion_id = f"{next_id:06d}"
            next_id += 1
            joints = clip.joints[start:end]
            feats = joints_to_features(joints, fix_heading_wrap=True)
            side = dominant_side(feats, clip.label.kind)
            key = f"{clip.source}/{clip.clip_id}/{w}"
            captions = template_captions(clip.label, key, config.captions_per_motion, side)
            captions += _kitml_for_window(clip, start, end, config.kitml_min_coverage)
            record = {
                "source": clip.source,
                "source_clip": clip.clip_id,
                "origin": clip.origin,
                "window": [start, end],
                "window_index": w,
                "n_windows": len(windows),
                "label": clip.label.label,
                "source_label": clip.label.label,
                "style": clip.label.style,
                "violent": clip.label.violent,
                "violent_kind": clip.label.kind,
                "side": side,
                "mirrored": False,
                "split": split,
            }
            variants = [(motion_id, feats, captions, record)]
            if config.mirror:
                m_feats = joints_to_features(mirror_joints(joints), fix_heading_wrap=True)
                m_side = {"left": "right", "right": "left"}.get(side) if side else None
                m_record = {
                    **record,
                    "label": mirror_text(clip.label.label),
                    "side": m_side,
                    "mirrored": True,
                }
                variants.append(("M" + motion_id, m_feats, [mirror_text(c) for c in captions], m_record))
            for vid, f, caps, rec in variants:
                np.save(out_dir / "new_joint_vecs" / f"{vid}.npy", f.astype(np.float32))
                np.save(
                    out_dir / "new_joints" / f"{vid}.npy", np.asarray(features_to_joints(f), dtype=np.float32)
                )
                lines = [text_line(c) for c in caps]
                (out_dir / "texts" / f"{vid}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
                meta[vid] = {**rec, "frames": int(f.shape[0]), "captions": caps}
                split_ids[split].append(vid)
                if split == "train":
                    stats.add(f)
        if log is not None and (n_clip + 1) % 500 == 0:
            log(f"{n_clip + 1}/{len(clips)} clips, {next_id} windows")

    mean, std = stats.result(22)
    np.save(out_dir / "Mean.npy", mean)
    np.save(out_dir / "Std.npy", std)
    for s in SPLITS:
        split_ids[s].sort()
    lists = {**split_ids, "train_val": sorted(split_ids["train"] + split_ids["val"])}
    lists["all"] = sorted(lists["train_val"] + split_ids["test"])
    for name, id_list in lists.items():
        (out_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in id_list), encoding="utf-8")
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary = _summary(clips, dropped, meta, config, notes)
    (out_dir / "DATASET_CARD.md").write_text(render_card(summary), encoding="utf-8")
    _write_checksums(out_dir)
    return summary


def _write_checksums(out_dir: Path) -> None:
    lines = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        rel = path.relative_to(out_dir).as_posix()
        if rel.split("/")[0] not in _OUTPUTS and rel not in _FILES:
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (out_dir / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def _summary(
    clips: list[SourceClip], dropped: list[SourceClip], meta: dict, config: BuildConfig, notes
) -> dict:
    plain = {k: v for k, v in meta.items() if not v["mirrored"]}
    per_source: dict[str, Counter] = defaultdict(Counter)
    for c in clips:
        per_source[c.source]["clips"] += 1
        per_source[c.source]["frames_20fps"] += len(c.joints)
    for c in dropped:
        per_source[c.source]["dropped_short"] += 1
    for s, _ in {(v["source"], v["source_clip"]) for v in plain.values()}:
        per_source[s]["clips_used"] += 1
    for v in plain.values():
        per_source[v["source"]]["windows"] += 1
        per_source[v["source"]]["feature_frames"] += v["frames"]
    split_counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    for v in meta.values():
        split_counts[v["split"]]["motions"] += 1
        split_counts[v["split"]]["frames"] += v["frames"]
    clip_split = {(v["source"], v["source_clip"]): v["split"] for v in plain.values()}
    for split in clip_split.values():
        split_counts[split]["clips"] += 1
    labels: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for v in plain.values():
        lab = labels[(v["source"], v["source_label"])]
        lab["windows"] += 1
        lab[v["split"]] += 1
        lab["violent"] = int(v["violent"])
    label_clips: dict[tuple[str, str], set] = defaultdict(set)
    for v in plain.values():
        label_clips[(v["source"], v["source_label"])].add(v["source_clip"])
    violent: dict[str, Counter] = defaultdict(Counter)
    violent_clips: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for v in plain.values():
        if v["violent"]:
            violent[v["violent_kind"]][v["split"]] += 1
            violent_clips[v["violent_kind"]][v["split"]].add(f"{v['source']}/{v['source_clip']}")
    styles = Counter(v["style"] for v in plain.values())
    return {
        "format_version": FORMAT_VERSION,
        "config": asdict(config),
        "sources": {s: dict(per_source[s]) for s in SOURCE_ORDER if s in per_source},
        "splits": {s: dict(split_counts[s]) for s in SPLITS},
        "labels": [
            {"source": s, "label": lab, "clips": len(label_clips[(s, lab)]), **dict(c)}
            for (s, lab), c in sorted(labels.items(), key=lambda kv: (SOURCE_ORDER.index(kv[0][0]), kv[0][1]))
        ],
        "violent": {
            k: {s: {"windows": violent[k][s], "clips": sorted(violent_clips[k][s])} for s in SPLITS}
            for k in VIOLENT_KINDS
            if k in violent
        },
        "styles": dict(sorted(styles.items())),
        "kitml_motions": sum(1 for v in plain.values() if len(v["captions"]) > config.captions_per_motion),
        "motions": len(meta),
        "notes": list(notes),
    }


LICENCES = {
    "bandai_namco": (
        "Bandai Namco Research motion dataset, **CC BY-NC 4.0** (non-commercial; attribution). Cite: "
        "Kobayashi et al., *Motion Capture Dataset for Practical Use of AI-based Motion Editing and "
        "Stylization*, 2023, arXiv:2306.08861."
    ),
    "ase_reallusion": (
        'Reallusion sword-and-shield motions distributed with NVIDIA ASE (nv-tlabs/ASE): "provided '
        'courtesy of Reallusion, strictly for noncommercial use".'
    ),
    "cmu": (
        "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), free for all uses; do not resell the "
        'data itself. "The data used in this project was obtained from mocap.cs.cmu.edu. The database was '
        'created with funding from NSF EIA-0196217." KIT-ML captions of CMU trials (Plappert et al., The KIT '
        "Motion-Language Dataset, 2016) obtained via Mathux/TMR (MIT licence)."
    ),
    "bvh": "User-supplied BVH files: the licence is that of the files supplied.",
}


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def render_card(summary: dict) -> str:
    """DATASET_CARD.md text from a build summary (deterministic: no dates, no paths)."""
    cfg = summary["config"]
    sources = summary["sources"]
    lines = [
        "# Dataset card: HumanML3D-format motion dataset built from real mocap",
        "",
        f"Built by `hmu data build` (models/data/build.py, format version {summary['format_version']}). "
        "Layout, text line format, feature vector (263-dim, 22 SMPL joints, 20 fps) and normalisation "
        "follow HumanML3D. Ids are 6-digit; `M<id>` is the left/right mirror of `<id>` (x negated, "
        'left/right joints swapped, "left"/"right" swapped in the captions).',
        "",
        "Feature extraction reproduces the official `process_file` except one fix: the root heading "
        "quaternion is kept sign-continuous over time (`fix_heading_wrap=True`), so a heading that turns "
        "past 180 degrees does not flip the sign of the rotation-velocity channel for one frame (an official "
        "bug) and `features_to_joints` recovers the joints exactly.",
        "",
        "**Weights trained on this data inherit the non-commercial terms of Bandai Namco (CC BY-NC 4.0) "
        "and Reallusion (noncommercial only).**",
        "",
        "## Contents",
        "",
        _table(
            ["source", "clips", "clips used", "dropped (too short)", "windows", "feature frames", "hours"],
            [
                [
                    s,
                    v.get("clips", 0),
                    v.get("clips_used", 0),
                    v.get("dropped_short", 0),
                    v.get("windows", 0),
                    v.get("feature_frames", 0),
                    f"{v.get('feature_frames', 0) / FPS / 3600:.2f}",
                ]
                for s, v in sources.items()
            ],
        ),
        "",
        f"Motions written: {summary['motions']} (windows"
        + (" + mirrors" if cfg["mirror"] else "")
        + f"). Clips shorter than {cfg['min_frames'] + 1} frames ({cfg['min_frames']} feature frames, the "
        "HumanML3D loaders' minimum) are dropped; longer clips are cut into the fewest equal windows of "
        f"at most {cfg['max_frames']} feature frames (HumanML3D loaders drop motions of 200 frames or more).",
        "",
        "## Splits",
        "",
        _table(
            ["split", "source clips", "motions (incl. mirrors)", "feature frames"],
            [
                [s, v.get("clips", 0), v.get("motions", 0), v.get("frames", 0)]
                for s, v in summary["splits"].items()
            ],
        ),
        "",
        "The split is made per source clip (all windows and the mirrors of a clip share it). Non-violent "
        f"clips: a salted SHA-256 hash (seed {cfg['seed']}) of the clip id gives train / val / test with "
        f"probabilities {1 - cfg['val_fraction'] - cfg['test_fraction']:.2f} / {cfg['val_fraction']:.2f} / "
        f"{cfg['test_fraction']:.2f}. Violent clips, per kind: about {cfg['violent_test_fraction']:.2f} of "
        "the clips of every kind (at least one) go to test, one to val when at least 8 remain, the rest to "
        "train (a kind with a single clip is test only).",
        "",
        "## Violent clips (per kind and split; windows without mirrors)",
        "",
        _table(
            ["kind", "train clips (windows)", "val clips (windows)", "test clips (windows)", "test clips"],
            [
                [k]
                + [f"{len(v[s]['clips'])} ({v[s]['windows']})" for s in SPLITS]
                + [", ".join(v["test"]["clips"])]
                for k, v in summary["violent"].items()
            ],
        ),
        "",
        "The violent flag comes from each source's metadata (Bandai Namco punch/kick/slash; Reallusion "
        "`category` violent; CMU index regex). `meta.json` holds, per id, the source clip, window, label, "
        "style, violent flag, violent kind, side of the striking limb and split.",
        "",
        "## Labels (windows without mirrors)",
        "",
        _table(
            ["source", "label", "violent", "clips", "windows", "train", "val", "test"],
            [
                [
                    r["source"],
                    r["label"],
                    "yes" if r.get("violent") else "",
                    r["clips"],
                    r.get("windows", 0),
                    r.get("train", 0),
                    r.get("val", 0),
                    r.get("test", 0),
                ]
                for r in summary["labels"]
            ],
        ),
        "",
        "Bandai Namco styles (windows): " + ", ".join(f"{k} {v}" for k, v in summary["styles"].items()) + ".",
        "",
        "## Skeletons: mapping to the 22-joint SMPL chain",
        "",
        "All sources are Y up, metres and right-handed like SMPL (left hip at +x when facing +z; checked: "
        "knees bend and toes point along the forward direction derived from the left/right labels). The "
        "feature extraction retargets every clip to the HumanML3D bone lengths, so only bone directions "
        "matter. Synthesised joints:",
        "",
    ]
    lines += [f"* **{name}**: {sk.synthesised}." for name, sk in SOURCE_SKELETONS.items()]
    lines += [
        "",
        "BVH files are read with a full BVH parser (any channel order, End Sites), forward kinematics, "
        f"units x {cfg['bvh_scale']} to metres and linear resampling to 20 fps; on the shared Bandai Namco "
        "BVH files this reproduces the shared npz joints to their float16 rounding (max error 0.5 ulp).",
        "",
        "## Captions",
        "",
        f"Captions are **template-generated** from the labels ({cfg['captions_per_motion']} per motion): "
        "several verb phrases per label, subjects (a person / someone / a man / the person / a human), "
        "Bandai Namco styles as adverbs or manner phrases, and the striking side (left/right) for kicks "
        "and punches measured from the motion. CMU trials that KIT-ML annotated also get their KIT-ML "
        f"caption when the window covers at least {cfg['kitml_min_coverage']:.0%} of the annotated span "
        f"({summary['kitml_motions']} windows). The `word/POS` tokens come from a small built-in "
        "lexicon and rule tagger (spaCy models cannot be downloaded here): universal POS tags, lemmas for "
        "nouns and verbs, punctuation left out, as in HumanML3D.",
        "",
        "## Normalisation",
        "",
        "`Mean.npy` / `Std.npy`: mean and population std over all frames of the train split (mirrors "
        "included), std averaged within each feature group (HumanML3D `cal_mean_variance`). They differ "
        "from the official HumanML3D statistics: official checkpoints must keep their own.",
        "",
        "## Licences",
        "",
    ]
    lines += [f"* **{s}**: {LICENCES[s]}" for s in sources]
    lines += ["* HumanML3D format and conventions: EricGuo5513/HumanML3D (MIT)."]
    if summary["notes"]:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in summary["notes"]]
    return "\n".join(lines) + "\n"


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
