"""Concepts as configuration: keywords and matching rules shared by splits, MM-Safe masking and erase prompts.

`configs/concepts.json` (versioned, in the repo) is the single source of truth; user JSON files with the same
layout add or override concepts. Two match modes:

* `word` (default): a keyword matches whole words and their regular inflections ("kick" matches "kicks",
  "kicking", "kicked", "kicker"; "stab" matches "stabbing"), so "hit" does not match "white".
* `substring` (the paper's behaviour): case-sensitive substring over the whole text-file line, as `grep -E`
  does, artefacts included ("hit" in "white", "boxe" in "boxes").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from models.common.package_data import shipped_path

CONCEPTS_FILE = shipped_path("configs", "concepts.json")  # in the checkout, or the wheel's copy
MATCH_MODES = ("word", "substring")
MASK = "***"
_WORD = re.compile(r"[a-z0-9]+")
_VOWELS = set("aeiou")


def inflections(word: str) -> set[str]:
    """Regular English inflections of a lower-case word (verb and noun forms)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing", word + "er", word + "ers",
             word + "en"}
    if word.endswith("e"):
        stem = word[:-1]
        forms |= {stem + "ing", stem + "er", stem + "ers"}
    if len(word) >= 3 and word[-1] not in _VOWELS | {"w", "x", "y"} and word[-2] in _VOWELS \
            and word[-3] not in _VOWELS:
        doubled = word + word[-1]
        forms |= {doubled + "ing", doubled + "ed", doubled + "er", doubled + "ers"}
    return forms


def words_of(text: str) -> list[str]:
    """Lower-case alphanumeric words of `text`."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Concept:
    """A named concept: keyword groups (sub-concepts) and a match mode."""

    name: str
    sub_concepts: dict[str, tuple[str, ...]]
    match_mode: str = "word"
    description: str = ""
    _forms: tuple[tuple[frozenset[str], ...], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.match_mode not in MATCH_MODES:
            raise ValueError(f"concept {self.name!r}: match_mode must be one of {MATCH_MODES}")
        if not self.sub_concepts or not all(self.sub_concepts.values()):
            raise ValueError(f"concept {self.name!r} needs at least one keyword in every sub-concept")
        for keyword in self.keywords:
            if not keyword.strip() or keyword != keyword.strip():
                raise ValueError(f"concept {self.name!r}: bad keyword {keyword!r}")
        forms = tuple(tuple(frozenset(inflections(w)) for w in words_of(k)) for k in self.keywords)
        object.__setattr__(self, "_forms", forms)

    @property
    def keywords(self) -> tuple[str, ...]:
        """All keywords, in file order, without duplicates."""
        return tuple(dict.fromkeys(k for group in self.sub_concepts.values() for k in group))

    def with_mode(self, match_mode: str) -> Concept:
        """The same concept with another match mode."""
        return Concept(self.name, self.sub_concepts, match_mode, self.description)

    def sub(self, sub_name: str) -> Concept:
        """The concept restricted to one sub-concept (for compositional use)."""
        if sub_name not in self.sub_concepts:
            raise ValueError(f"concept {self.name!r} has no sub-concept {sub_name!r}: {sorted(self.sub_concepts)}")
        return Concept(f"{self.name}/{sub_name}", {sub_name: self.sub_concepts[sub_name]}, self.match_mode,
                       self.description)

    def _word_spans(self, words: Sequence[str]) -> list[tuple[int, int, str]]:
        spans = []
        for keyword, forms in zip(self.keywords, self._forms, strict=True):
            n = len(forms)
            for start in range(len(words) - n + 1):
                if all(words[start + i] in forms[i] for i in range(n)):
                    spans.append((start, start + n, keyword))
        return spans

    def matching_keywords(self, text: str) -> list[str]:
        """Keywords found in `text` (a caption or a whole `caption#tokens#start#end` line)."""
        if self.match_mode == "substring":
            return [k for k in self.keywords if k in text]
        return list(dict.fromkeys(k for _, _, k in self._word_spans(words_of(text))))

    def matches(self, text: str) -> bool:
        """True when `text` mentions the concept."""
        return bool(self.matching_keywords(text))

    def mask_tokens(self, tokens: Sequence[str]) -> list[str]:
        """MM-Safe masking of `word/POS` tokens: concept words become `***/POS` (POS kept)."""
        split = [t.rsplit("/", 1) if "/" in t else [t, ""] for t in tokens]
        masked = [list(pair) for pair in split]
        if self.match_mode == "substring":
            for pair in masked:
                if any(k.lower() in pair[0].lower() for k in self.keywords):
                    pair[0] = MASK
        else:
            words = [pair[0].lower() for pair in split]
            for start, end, _ in self._word_spans(words):
                for i in range(start, end):
                    masked[i][0] = MASK
        return [f"{w}/{p}" if p else w for w, p in masked]

    def mask_caption(self, caption: str) -> str:
        """Replace concept words of a plain caption by `***`."""
        tokens = re.findall(r"[A-Za-z0-9]+|[^A-Za-z0-9]+", caption)
        word_positions = [i for i, t in enumerate(tokens) if t[0].isalnum()]
        masked = self.mask_tokens([tokens[i] for i in word_positions])
        for i, value in zip(word_positions, masked, strict=True):
            tokens[i] = value
        return "".join(tokens)

    def erase_prompts(self) -> list[str]:
        """Prompts to erase for UCE/RECE/ESD: the bare keywords, as the paper does."""
        return list(self.keywords)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded inline in unlearned checkpoints' manifests)."""
        return {"name": self.name, "description": self.description, "match_mode": self.match_mode,
                "sub_concepts": {k: list(v) for k, v in self.sub_concepts.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> Concept:
        """Build from a config entry (`sub_concepts` mapping, or a flat `keywords` list)."""
        if not isinstance(data, dict):
            raise ValueError("a concept must be a JSON object")
        name = name or data.get("name")
        if not name:
            raise ValueError("a concept needs a name")
        subs = data.get("sub_concepts") or ({name: data["keywords"]} if data.get("keywords") else None)
        if not isinstance(subs, dict):
            raise ValueError(f"concept {name!r} needs 'sub_concepts' (name -> keywords) or 'keywords'")
        clean = {}
        for sub_name, words in subs.items():
            if isinstance(words, str) or not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError(f"concept {name!r}: sub-concept {sub_name!r} must be a list of strings")
            clean[str(sub_name)] = tuple(w.lower().strip() for w in words)
        return cls(str(name), clean, str(data.get("match_mode", "word")), str(data.get("description", "")))


def concept_from_keywords(keywords: Iterable[str], name: str = "custom", match_mode: str = "word") -> Concept:
    """An inline concept from a keyword list (one sub-concept)."""
    return Concept.from_dict({"keywords": list(keywords), "match_mode": match_mode}, name=name)


@lru_cache(maxsize=8)
def _load_file(path: str) -> dict[str, Concept]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), dict):
        raise ValueError(f"{path}: a concepts file holds {{'version': N, 'concepts': {{name: ...}}}}")
    return {name: Concept.from_dict(entry, name=name) for name, entry in data["concepts"].items()}


def load_concepts(extra_files: Sequence[str | Path] = ()) -> dict[str, Concept]:
    """The shipped concepts, overridden/extended by user files (later files win)."""
    concepts = dict(_load_file(str(CONCEPTS_FILE)))
    for path in extra_files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"concepts file {path} not found")
        concepts.update(_load_file(str(Path(path).resolve())))
    return concepts


def get_concept(spec: str | dict[str, Any] | Concept, extra_files: Sequence[str | Path] = (),
                match_mode: str | None = None) -> Concept:
    """Resolve a concept name, an inline dict (`{"name", "keywords"|"sub_concepts"}`) or a Concept."""
    if isinstance(spec, Concept):
        concept = spec
    elif isinstance(spec, dict):
        concept = Concept.from_dict(spec, name=spec.get("name", "custom"))
    else:
        concepts = load_concepts(extra_files)
        if spec not in concepts:
            raise ValueError(f"unknown concept {spec!r}; known: {sorted(concepts)}")
        concept = concepts[spec]
    return concept.with_mode(match_mode) if match_mode else concept


def file_version() -> int:
    """Version number of the shipped concepts file."""
    return int(json.loads(CONCEPTS_FILE.read_text(encoding="utf-8"))["version"])
