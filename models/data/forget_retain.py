"""Forget / retain split of a HumanML3D-format folder by concept keywords (unlearning-methods.md §6).

A text-motion pair (one clip id) goes to the forget set when at least `min_occurrence` lines of
`texts/<id>.txt` mention the concept; every line (`caption#tokens#start#end`) is matched whole, as the
paper's `grep` does, so lemma tokens count too. The official-like output files are
`kw_splits/{split}-w-{name}.txt` (forget) and `kw_splits/{split}-wo-{name}.txt` (retain).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.data.concepts import Concept, get_concept


@dataclass
class ForgetRetainSplit:
    """Ids of one split divided by a concept, with per-keyword and per-sub-concept pair counts."""

    split: str
    forget: list[str]
    retain: list[str]
    keyword_counts: dict[str, int] = field(default_factory=dict)
    sub_concept_counts: dict[str, int] = field(default_factory=dict)

    @property
    def forget_fraction(self) -> float:
        total = len(self.forget) + len(self.retain)
        return len(self.forget) / total if total else 0.0

    def summary(self) -> dict:
        return {
            "split": self.split,
            "forget": len(self.forget),
            "retain": len(self.retain),
            "forget_fraction": round(self.forget_fraction, 6),
            "keyword_counts": self.keyword_counts,
            "sub_concept_counts": self.sub_concept_counts,
        }


def read_ids(data_dir: str | Path, split: str) -> list[str]:
    """Ids listed in `<data_dir>/<split>.txt`; `train_val` falls back to train.txt + val.txt."""
    data_dir = Path(data_dir)
    path = data_dir / f"{split}.txt"
    if not path.is_file() and split == "train_val":
        return read_ids(data_dir, "train") + read_ids(data_dir, "val")
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def caption_lines(data_dir: str | Path, clip_id: str) -> list[str]:
    """Non-empty lines of `texts/<clip_id>.txt` (missing file -> FileNotFoundError)."""
    path = Path(data_dir) / "texts" / f"{clip_id}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"caption file {path} not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_forget(lines: Sequence[str], concept: Concept, min_occurrence: int = 1) -> bool:
    """True when at least `min_occurrence` caption lines mention the concept."""
    return sum(concept.matches(line) for line in lines) >= min_occurrence


def split_ids(
    data_dir: str | Path,
    ids: Sequence[str],
    concept: Concept | str | dict,
    split: str = "custom",
    min_occurrence: int = 1,
) -> ForgetRetainSplit:
    """Divide `ids` into forget / retain by the captions in `data_dir/texts`."""
    concept = get_concept(concept)
    if min_occurrence < 1:
        raise ValueError(f"min_occurrence must be >= 1, got {min_occurrence}")
    forget, retain = [], []
    keywords: Counter[str] = Counter()
    subs: Counter[str] = Counter()
    for clip_id in ids:
        lines = caption_lines(data_dir, clip_id)
        if not is_forget(lines, concept, min_occurrence):
            retain.append(clip_id)
            continue
        forget.append(clip_id)
        found = {k for line in lines for k in concept.matching_keywords(line)}
        keywords.update(found)
        subs.update(name for name, words in concept.sub_concepts.items() if found & set(words))
    return ForgetRetainSplit(
        split, forget, retain, dict(sorted(keywords.items())), dict(sorted(subs.items()))
    )


def file_name(concept: Concept) -> str:
    """File-name form of a concept name (`violence/kick` -> `violence_kick`)."""
    return concept.name.replace("/", "_").replace(" ", "_")


def split_dataset(
    data_dir: str | Path,
    concept: Concept | str | dict,
    splits: Sequence[str] = ("train_val", "test"),
    out_dir: str | Path | None = None,
    min_occurrence: int = 1,
    name: str | None = None,
) -> dict[str, ForgetRetainSplit]:
    """Split each of `splits`; with `out_dir` write `{split}-w-{name}.txt` / `{split}-wo-{name}.txt` there."""
    concept = get_concept(concept)
    name = name or file_name(concept)
    result = {s: split_ids(data_dir, read_ids(data_dir, s), concept, s, min_occurrence) for s in splits}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for s, part in result.items():
            (out / f"{s}-w-{name}.txt").write_text("".join(f"{i}\n" for i in part.forget), encoding="utf-8")
            (out / f"{s}-wo-{name}.txt").write_text("".join(f"{i}\n" for i in part.retain), encoding="utf-8")
    return result


RETAIN_SPLITS = ("train", "val", "test")


def write_retain_dataset(data_dir: str | Path, concept: Concept | str | dict, out_dir: str | Path,
                         min_occurrence: int = 1) -> dict[str, ForgetRetainSplit]:
    """A dataset folder holding the retain set only (the paper's D_r), for retraining a reference model.

    Every file and folder of `data_dir` except the split lists is linked (symlinks, nothing copied);
    train/val/test.txt list the retain ids of each split, and FORGET_SPLITS.json records the split.
    """
    data_dir, out = Path(data_dir).resolve(), Path(out_dir)
    concept = get_concept(concept)
    parts = split_dataset(data_dir, concept, RETAIN_SPLITS, None, min_occurrence)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    skip = {f"{s}.txt" for s in RETAIN_SPLITS} | {"all.txt", "train_val.txt", "SHA256SUMS"}
    for entry in sorted(data_dir.iterdir()):
        if entry.name not in skip:
            (out / entry.name).symlink_to(entry)
    for s, part in parts.items():
        (out / f"{s}.txt").write_text("".join(f"{i}\n" for i in part.retain), encoding="utf-8")
    summary = {"source": str(data_dir), "concept": concept.to_dict(), "min_occurrence": min_occurrence,
               "splits": {s: p.summary() for s, p in parts.items()}}
    (out / "FORGET_SPLITS.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return parts
