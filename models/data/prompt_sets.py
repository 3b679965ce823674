"""Frozen evaluation prompt sets per concept, shipped as package data in `models/data/prompts/<concept>.json`.

A set has three parts:

* `explicit`: prompts that name the concept (each matches the concept's keyword list);
* `implicit`: sub-concept -> prompts that describe the concept's motion without any keyword of the strictest
  keyword list (paraphrase leakage after unlearning);
* `safe`: prompts outside the concept, near-misses included (false positives, retained quality).

The files are versioned: a published version is never edited, prompts are added in a new version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from models.data.concepts import words_of

PROMPTS_PACKAGE = "models.data.prompts"
_PARTS = ("explicit", "implicit", "safe")
ADVERSARIAL_SUFFIX = "_adversarial.json"  # `<concept>_adversarial.json`: prompts found by a search, frozen once found
PROBES_SUFFIX = "_probes.json"  # training prompts of code_ban, never evaluation prompts


@dataclass(frozen=True)
class PromptSets:
    """The evaluation prompts of one concept."""

    concept: str
    version: int
    explicit: list[str]
    implicit: dict[str, list[str]]
    safe: list[str]
    description: str = ""
    checked_against: str = ""
    styles: dict[str, str] = field(default_factory=dict)

    @property
    def implicit_all(self) -> list[str]:
        """Every implicit prompt, sub-concepts in file order."""
        return [prompt for prompts in self.implicit.values() for prompt in prompts]

    def all_prompts(self) -> list[tuple[str, str]]:
        """`(set name, prompt)` pairs; implicit set names are `implicit/<sub-concept>`."""
        pairs = [("explicit", p) for p in self.explicit]
        pairs += [(f"implicit/{sub}", p) for sub, prompts in self.implicit.items() for p in prompts]
        return pairs + [("safe", p) for p in self.safe]


def normalise(prompt: str) -> str:
    """The form used to compare prompts: lower-case words separated by single spaces."""
    return " ".join(words_of(prompt))


def available_prompt_sets() -> list[str]:
    """Concepts that have a shipped prompt-set file."""
    folder = resources.files(PROMPTS_PACKAGE)
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir()
                  if entry.name.endswith(".json") and not entry.name.endswith((ADVERSARIAL_SUFFIX, PROBES_SUFFIX)) and entry.is_file())


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ValueError(f"{where} must be a list of non-empty strings")
    return list(value)


def _parse(concept: str, data: Any) -> PromptSets:
    where = f"prompt sets for {concept!r}"
    if not isinstance(data, dict) or any(part not in data for part in _PARTS):
        raise ValueError(f"{where}: the file needs {list(_PARTS)} and 'version'")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where}: 'version' must be an integer")
    implicit = data["implicit"]
    if not isinstance(implicit, dict) or not implicit:
        raise ValueError(f"{where}: 'implicit' must map sub-concepts to prompt lists")
    styles = data.get("styles", {})
    return PromptSets(
        concept=str(data.get("concept", concept)), version=version,
        explicit=_string_list(data["explicit"], f"{where}: 'explicit'"),
        implicit={str(sub): _string_list(prompts, f"{where}: 'implicit/{sub}'") for sub, prompts in implicit.items()},
        safe=_string_list(data["safe"], f"{where}: 'safe'"),
        description=str(data.get("description", "")), checked_against=str(data.get("checked_against", "")),
        styles={str(k): str(v) for k, v in styles.items()} if isinstance(styles, dict) else {})


def load_prompt_sets(concept: str = "violence") -> PromptSets:
    """The shipped evaluation prompts of `concept`; ValueError naming the available sets when there are none."""
    available = available_prompt_sets()
    if concept not in available:
        raise ValueError(f"no evaluation prompt sets for concept {concept!r}; available: {available}")
    text = resources.files(PROMPTS_PACKAGE).joinpath(f"{concept}.json").read_text(encoding="utf-8")
    return _parse(concept, json.loads(text))


def adversarial_prompts(concept: str, path: str | Path | None = None) -> tuple[list[str] | None, str | None]:
    """The frozen adversarial prompts of `concept` -> (prompts, where from), (None, None) when there is no set.

    `path` (a file) wins over the shipped `models/data/prompts/<concept>_adversarial.json`. Format: JSON
    `{"version": 1, "concept": ..., "prompts": [...]}` or a plain list of prompts."""
    if path is not None:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    else:
        entry = resources.files(PROMPTS_PACKAGE).joinpath(f"{concept}{ADVERSARIAL_SUFFIX}")
        if not entry.is_file():
            return None, None
        text, where = entry.read_text(encoding="utf-8"), f"{PROMPTS_PACKAGE}/{concept}{ADVERSARIAL_SUFFIX}"
    data = json.loads(text)
    prompts = data.get("prompts") if isinstance(data, dict) else data
    return _string_list(prompts, f"adversarial prompts ({where})"), where


def probe_prompts(concept: str) -> tuple[list[str], list[str]]:
    """The shipped *training* prompts of `concept` (`<concept>_probes.json`: violent, safe) used by the code_ban
    unlearning method; ValueError when there are none. Disjoint from the evaluation sets (tested)."""
    entry = resources.files(PROMPTS_PACKAGE).joinpath(f"{concept}{PROBES_SUFFIX}")
    if not entry.is_file():
        raise ValueError(f"no probe prompts for concept {concept!r} ({PROMPTS_PACKAGE}/{concept}{PROBES_SUFFIX})")
    data = json.loads(entry.read_text(encoding="utf-8"))
    where = f"probe prompts of {concept!r}"
    return _string_list(data.get("violent"), f"{where}: 'violent'"), _string_list(data.get("safe"), f"{where}: 'safe'")
