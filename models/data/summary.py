"""The counts of a build (returned by `build_dataset` and shown in DATASET_CARD.md)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict

from models.data.config import FORMAT_VERSION, SPLITS, BuildConfig
from models.data.labels import VIOLENT_KINDS
from models.data.sources import SOURCE_ORDER, SourceClip


def _per_source(clips: list[SourceClip], dropped: list[SourceClip], plain: dict) -> dict[str, dict]:
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
    return {s: dict(per_source[s]) for s in SOURCE_ORDER if s in per_source}


def _per_split(meta: dict, plain: dict) -> dict[str, dict]:
    split_counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    for v in meta.values():
        split_counts[v["split"]]["motions"] += 1
        split_counts[v["split"]]["frames"] += v["frames"]
    clip_split = {(v["source"], v["source_clip"]): v["split"] for v in plain.values()}
    for split in clip_split.values():
        split_counts[split]["clips"] += 1
    return {s: dict(split_counts[s]) for s in SPLITS}


def _per_label(plain: dict) -> list[dict]:
    labels: dict[tuple[str, str], Counter] = defaultdict(Counter)
    label_clips: dict[tuple[str, str], set] = defaultdict(set)
    for v in plain.values():
        lab = labels[(v["source"], v["source_label"])]
        lab["windows"] += 1
        lab[v["split"]] += 1
        lab["violent"] = int(v["violent"])
    for v in plain.values():
        label_clips[(v["source"], v["source_label"])].add(v["source_clip"])
    return [
        {"source": s, "label": lab, "clips": len(label_clips[(s, lab)]), **dict(c)}
        for (s, lab), c in sorted(labels.items(), key=lambda kv: (SOURCE_ORDER.index(kv[0][0]), kv[0][1]))
    ]


def _per_violent_kind(plain: dict) -> dict[str, dict]:
    violent: dict[str, Counter] = defaultdict(Counter)
    violent_clips: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for v in plain.values():
        if v["violent"]:
            violent[v["violent_kind"]][v["split"]] += 1
            violent_clips[v["violent_kind"]][v["split"]].add(f"{v['source']}/{v['source_clip']}")
    return {
        k: {s: {"windows": violent[k][s], "clips": sorted(violent_clips[k][s])} for s in SPLITS}
        for k in VIOLENT_KINDS
        if k in violent
    }


def summarize(
    clips: list[SourceClip], dropped: list[SourceClip], meta: dict, config: BuildConfig, notes: list[str]
) -> dict:
    """Counts per source, split, label, violent kind and style (windows without mirrors where stated)."""
    plain = {k: v for k, v in meta.items() if not v["mirrored"]}
    styles = Counter(v["style"] for v in plain.values())
    return {
        "format_version": FORMAT_VERSION,
        "config": asdict(config),
        "sources": _per_source(clips, dropped, plain),
        "splits": _per_split(meta, plain),
        "labels": _per_label(plain),
        "violent": _per_violent_kind(plain),
        "styles": dict(sorted(styles.items())),
        "kitml_motions": sum(1 for v in plain.values() if len(v["captions"]) > config.captions_per_motion),
        "motions": len(meta),
        "notes": list(notes),
    }
