"""Evaluation sets by the official eval loader's rules (evaluator.md §6-§7, humanml3d-format.md §9.2).

A set holds whole clips with their whole-clip captions plus one item per timed caption segment, clips and
segments of `min_len <= T < max_len` frames only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.concepts import Concept
from models.data.datasets import load_features, parse_text_line
from models.data.forget_retain import ForgetRetainSplit, read_ids, split_dataset

FPS = 20


@dataclass
class EvalItem:
    """One evaluation item: raw (de-normalised) features and its captions with `word/POS` tokens."""

    name: str
    clip_id: str
    motion: np.ndarray  # (T, D) raw features
    captions: list[str]
    tokens: list[list[str]]


@dataclass
class EvalSet:
    name: str
    items: list[EvalItem]
    source: str = ""

    def __len__(self) -> int:
        return len(self.items)

    @property
    def clips(self) -> int:
        return len({i.clip_id for i in self.items})

    def summary(self) -> dict:
        return {"items": len(self.items), "clips": self.clips, "source": self.source}


def read_text_lines(data_dir: Path, clip_id: str) -> list[tuple[str, list[str], float, float]]:
    """(caption, tokens, f_tag, to_tag) of every non-empty line of `texts/<clip_id>.txt`."""
    path = data_dir / "texts" / f"{clip_id}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"caption file {path} not found")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        caption, start, end = parse_text_line(line)
        if caption:
            parts = line.split("#")
            out.append((caption, parts[1].split() if len(parts) > 1 else [], start, end))
    return out


def folder_ids(data_dir: str | Path) -> list[str]:
    """Ids of every `new_joint_vecs/<id>.npy` of a folder (an uploaded set has no split files)."""
    folder = Path(data_dir) / "new_joint_vecs"
    if not folder.is_dir():
        raise FileNotFoundError(f"{data_dir} has no new_joint_vecs/ folder")
    ids = sorted(p.stem for p in folder.glob("*.npy"))
    if not ids:
        raise ValueError(f"{folder} holds no .npy motion")
    return ids


def load_eval_set(
    data_dir: str | Path,
    ids: Sequence[str] | None = None,
    name: str = "set",
    min_len: int = 40,
    max_len: int = 200,
) -> EvalSet:
    """Items of `ids` (default: every motion of the folder) by the official eval loader's rules."""
    data_dir = Path(data_dir)
    ids = folder_ids(data_dir) if ids is None else list(ids)
    items: list[EvalItem] = []
    for clip_id in ids:
        motion = load_features(data_dir, clip_id)
        whole: list[tuple[str, list[str]]] = []
        for k, (caption, tokens, start, end) in enumerate(read_text_lines(data_dir, clip_id)):
            if start == 0.0 and end == 0.0:
                whole.append((caption, tokens))
                continue
            segment = motion[int(start * FPS) : int(end * FPS)]
            if min_len <= len(segment) < max_len:
                items.append(EvalItem(f"{clip_id}#{k}", clip_id, segment, [caption], [tokens]))
        if whole and min_len <= len(motion) < max_len:
            items.append(EvalItem(clip_id, clip_id, motion, [c for c, _ in whole], [t for _, t in whole]))
    if not items:
        raise ValueError(f"set {name!r} ({data_dir}): no captioned motion of {min_len}..{max_len - 1} frames")
    return EvalSet(name, items, str(data_dir))


def concept_sets(
    data_dir: str | Path,
    concept: Concept,
    split: str = "test",
    kw_dir: str | Path | None = None,
    min_occurrence: int = 1,
) -> tuple[EvalSet, EvalSet, ForgetRetainSplit]:
    """Forget and retain sets of `split` by the concept's keywords; with `kw_dir` the official-like
    `{split}-w-{name}.txt` / `{split}-wo-{name}.txt` id lists are written there."""
    parts = split_dataset(data_dir, concept, (split,), kw_dir, min_occurrence)[split]
    if not parts.forget:
        raise ValueError(f"no clip of split {split!r} in {data_dir} mentions concept {concept.name!r}")
    if not parts.retain:
        raise ValueError(f"every clip of split {split!r} in {data_dir} mentions concept {concept.name!r}")
    return (
        load_eval_set(data_dir, parts.forget, "forget"),
        load_eval_set(data_dir, parts.retain, "retain"),
        parts,
    )


def read_ids_or_all(data_dir: str | Path, split: str | None) -> list[str]:
    """Ids of `split` (a split file) or, with split None, every motion of the folder."""
    return folder_ids(data_dir) if split is None else read_ids(data_dir, split)
