"""`EvalConfig`: one validated description of an evaluation run (CLI, worker, Python callers).

Torch-free on import. `PARAMETER_LIMITS` lists what a service user may set through job `parameters`
(no paths: those stay with the operator); `EvalConfig.with_parameters` merges and checks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.data.concepts import Concept, get_concept

PARAMETER_LIMITS: dict[str, tuple[type, float, float]] = {
    "repeats": (int, 1, 20),
    "batch_size": (int, 3, 256),
    "mm_batches": (int, 0, 10),
    "mm_repeats": (int, 2, 30),
    "seed": (int, 0, 2**31 - 1),
    "max_items": (int, 3, 100_000),
    "min_occurrence": (int, 1, 10),
}


def apply_parameters(settings: dict[str, Any], parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge service `parameters` into `settings`: PARAMETER_LIMITS keys and `concept` only."""
    out = dict(settings)
    for key, value in (parameters or {}).items():
        if key == "concept":
            if not isinstance(value, str):
                raise ValueError("parameter 'concept' must be a concept name")
            out[key] = value
            continue
        if key not in PARAMETER_LIMITS:
            raise ValueError(
                f"unknown evaluation parameter {key!r}; allowed: {sorted([*PARAMETER_LIMITS, 'concept'])}"
            )
        kind, lo, hi = PARAMETER_LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"parameter {key!r} must be an integer in [{int(lo)}, {int(hi)}], got {value!r}")
        out[key] = kind(value)
    return out


@dataclass
class EvalConfig:
    """Which models to evaluate on which sets, how often, and where the report goes.

    Sets: `data_dir` + `concept` split `split` into forget/retain by keywords (kw_splits written to
    out_dir/kw_splits), or explicit `forget_dir` / `retain_dir` folders (every motion in them).
    `implicit_prompts` (a file of rewritten prompts for clips of `data_dir`) adds an "implicit" set.
    MultiModality runs on the retain set only (`mm_batches` x batch prompts, `mm_repeats` generations each,
    10 pairs per prompt). The defaults (1 x 20) are sized so that both default models x 5 repeats fit in
    20 minutes on 2 CPU cores; the official protocol is 3 x 30 (`mm_batches=3, mm_repeats=30`).
    models: folders or ready MotionSource objects (a list, or a {name: model} mapping); evaluator: "default",
    a folder or an EvalSpace; classifier: "default", "train", a folder, a ViolenceClassifier or None/"none".
    `prompt_seeds` > 0 adds the frozen prompt sets (explicit, implicit per sub-concept, safe, adversarial when
    its file exists or `adversarial_prompts` names one), each prompt generated with seeds seed..seed+N-1 at
    `prompt_length` frames; `base` (a model's name or folder) adds safe-prompt stability versus that model.
    """

    models: Sequence[Any] | Mapping[str, Any]
    data_dir: Path | None = None
    concept: str | dict | Concept = "violence"
    out_dir: Path = Path("eval-report")
    forget_dir: Path | None = None
    retain_dir: Path | None = None
    repeats: int = 5
    evaluator: Any = "default"
    glove_dir: Path | None = None
    split: str = "test"
    batch_size: int = 32
    mm_batches: int = 1
    mm_repeats: int = 20
    seed: int = 10107
    max_items: int | None = None
    min_occurrence: int = 1
    classifier: Any = "default"
    implicit_prompts: Path | None = None
    sampling: dict[str, Any] | None = None
    plots: bool = True
    device: str = "cpu"
    prompt_seeds: int = 0
    prompt_length: int = 120
    base: str | None = None
    adversarial_prompts: Path | None = None
    decode: str = "auto"

    def decode_mode(self, evaluator_kind: str) -> str:
        """The generated motions' decoding: `decode` "per_row" or "official", or for "auto" the official
        padded-batch decoding with the official evaluator (to reproduce official numbers), per row otherwise."""
        if self.decode == "auto":
            return "official" if evaluator_kind == "official" else "per_row"
        return self.decode

    def __post_init__(self) -> None:
        if self.decode not in ("auto", "per_row", "official"):
            raise ValueError(f"decode must be 'auto', 'per_row' or 'official', got {self.decode!r}")
        if self.repeats < 1 or self.mm_batches < 0 or (self.mm_batches and self.mm_repeats < 2):
            raise ValueError("repeats must be >= 1, mm_batches >= 0 and mm_repeats >= 2")
        if self.prompt_seeds < 0 or self.prompt_length < 4:
            raise ValueError("prompt_seeds must be >= 0 and prompt_length >= 4")
        self.resolved_concept = get_concept(self.concept)
        self.out_dir = Path(self.out_dir)
        for name in ("data_dir", "forget_dir", "retain_dir", "implicit_prompts", "adversarial_prompts"):
            value = getattr(self, name)
            setattr(self, name, Path(value) if value is not None else None)
        if self.forget_dir is not None or self.retain_dir is not None:
            if self.forget_dir is None or self.retain_dir is None:
                raise ValueError("give both forget_dir and retain_dir (or data_dir and a concept)")
        elif self.data_dir is None:
            raise ValueError("give data_dir (split by concept) or forget_dir and retain_dir")

    @classmethod
    def with_parameters(cls, parameters: Mapping[str, Any] | None, **fields: Any) -> EvalConfig:
        """A config from `fields` overridden by service `parameters` (checked against PARAMETER_LIMITS)."""
        return cls(**apply_parameters(fields, parameters))

    def settings(self) -> dict[str, Any]:
        """The pass settings as recorded in the report (`settings`), in report order."""
        return {
            "repeats": self.repeats,
            "batch_size": self.batch_size,
            "mm_batches": self.mm_batches,
            "mm_repeats": self.mm_repeats,
            "seed": self.seed,
            "max_items": self.max_items,
            "min_occurrence": self.min_occurrence,
        }
