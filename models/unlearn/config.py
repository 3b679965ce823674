"""`UnlearnConfig`: one validated description of an unlearning run (CLI, worker, Python callers).

Torch-free on import, so the gateway could build and check one. The method parameters stay a plain dict
here: their dataclasses live next to each method's torch code and are parsed by `run_unlearning`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data.concepts import Concept, concept_from_keywords, get_concept

METHOD_NAMES = ("lcr", "uce", "rece", "esd", "ft", "code_ban")  # the keys of models.unlearn.methods.METHODS
DATA_ENV = "HMU_UNLEARN_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "default"


def default_data_dir() -> Path | None:
    """The dataset used by LCR / FT when none is given: `$HMU_UNLEARN_DATA_DIR`, else `data/default` of the
    checkout when it exists (built by `hmu data build --out data/default`)."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value)
    return DEFAULT_DATA_DIR if (DEFAULT_DATA_DIR / "new_joint_vecs").is_dir() else None


def resolve_concept(
    concept: str | dict | Concept | Sequence[str] | None,
    keywords: Sequence[str] | None = None,
    concept_files: Sequence[str | Path] = (),
) -> Concept:
    """A concept from a name, an inline dict, a Concept, or a keyword list."""
    if (concept is None) == (keywords is None):
        raise ValueError("give exactly one of a concept (name or definition) or a keyword list")
    if keywords is not None:
        return concept_from_keywords(keywords, name="custom")
    if isinstance(concept, (list, tuple)):
        return concept_from_keywords(concept, name="custom")
    return get_concept(concept, concept_files)


@dataclass
class UnlearnConfig:
    """What to unlearn from which model, how, and where to write the result.

    model: a checkpoint folder or an in-memory MotionPipeline (left unmodified). concept: a name, an inline
    dict or a Concept; or `keywords` instead. params: the method's parameters (see its *Params dataclass).
    data_dir: HumanML3D-format folder for the methods that need one (default `$HMU_UNLEARN_DATA_DIR`).
    """

    model: Any
    method: str
    out_dir: Path
    concept: str | dict | Concept | Sequence[str] | None = None
    keywords: Sequence[str] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    device: str = "cpu"
    concept_files: Sequence[str | Path] = ()
    guard: bool | None = None  # attach the shipped safety guard: None = when the concept is violence

    def wants_guard(self) -> bool:
        """Whether the written model carries the safety guard (the shipped classifier knows violence only)."""
        violent = self.resolved_concept.name.split("-")[0] == "violence"
        if self.guard and not violent:
            raise ValueError(f"the shipped safety guard detects violence; concept {self.resolved_concept.name!r} "
                             "has no guard classifier (leave guard unset or false)")
        return violent if self.guard is None else bool(self.guard)

    def __post_init__(self) -> None:
        if self.model is None or self.method is None or self.out_dir is None:
            raise ValueError("run_unlearning needs a model, a method and an out_dir")
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown unlearning method {self.method!r}; expected one of {sorted(METHOD_NAMES)}")
        self.out_dir = Path(self.out_dir)
        self.data_dir = Path(self.data_dir) if self.data_dir is not None else None
        self.params = dict(self.params or {})
        if (self.out_dir / "config.json").exists():
            raise ValueError(f"{self.out_dir} already holds a model; choose a new output folder")
        if isinstance(self.model, (str, Path)) and Path(self.model).resolve() == self.out_dir.resolve():
            raise ValueError("the output folder must differ from the model folder")
        self.resolved_concept = resolve_concept(self.concept, self.keywords, self.concept_files)

    def dataset(self, method: str) -> Path:
        """The HumanML3D-format folder `method` trains or counts on (checked)."""
        path = self.data_dir if self.data_dir is not None else default_data_dir()
        if path is None:
            raise ValueError(f"{method} needs a HumanML3D-format dataset: pass data_dir, set {DATA_ENV}, or build "
                             "the default one with `hmu data build --out data/default`")
        if not (path / "texts").is_dir() or not (path / "new_joint_vecs").is_dir():
            raise FileNotFoundError(f"{path} is not a HumanML3D-format folder (texts/, new_joint_vecs/)")
        return path
