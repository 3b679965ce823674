"""A safety guard that travels with a checkpoint: a motion classifier and a policy in `<model>/safety_guard/`.

Defence in depth, like a diffusion pipeline's safety checker: every motion a guarded model generates is
classified; a flagged motion is generated again with the next seed of its own sequence
(seed + RESAMPLE_STRIDE * attempt, so it never repeats a sibling sample's seed) up to `max_resamples` times,
and is otherwise refused (None: the caller answers `unsafe_output`, no motion returned). Figures of a guarded
model are reported separately from its weights-only figures.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.common.config import DictConfig
from models.common.sampling_config import SamplingConfig
from models.evaluator.violence_classifier import ViolenceClassifier
from models.pipelines import GeneratedMotion, MotionPipeline

GUARD_DIR = "safety_guard"
POLICY_FILE = "policy.json"
RESAMPLE_STRIDE = 1_000_003


@dataclass
class GuardPolicy(DictConfig):
    """How many times a flagged motion is generated again before it is refused; which concept it guards."""

    max_resamples: int = 3
    concept: str = "violence"

    def __post_init__(self) -> None:
        if not 0 <= int(self.max_resamples) <= 10:
            raise ValueError(f"max_resamples must be in 0..10, got {self.max_resamples}")


@dataclass
class GuardCounts:
    """What one guarded call did: motions checked, resamples generated, motions refused."""

    checks: int = 0
    resamples: int = 0
    refusals: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"checks": self.checks, "resamples": self.resamples, "refusals": self.refusals}


@dataclass
class GuardedMotions:
    motions: list[GeneratedMotion | None]  # None = refused
    counts: GuardCounts = field(default_factory=GuardCounts)


class SafetyGuard:
    """A classifier plus a policy; `generate` wraps `MotionPipeline.generate` for one batch of rows."""

    def __init__(self, classifier: ViolenceClassifier, policy: GuardPolicy | None = None):
        self.classifier = classifier
        self.policy = policy or GuardPolicy()

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> SafetyGuard | None:
        """The guard stored with a model, None when the model carries none."""
        folder = Path(model_dir) / GUARD_DIR
        if not folder.is_dir():
            return None
        policy = GuardPolicy.from_dict(json.loads((folder / POLICY_FILE).read_text(encoding="utf-8")))
        return cls(ViolenceClassifier.from_pretrained(folder), policy)

    @staticmethod
    def attach(model_dir: str | Path, classifier_dir: str | Path, policy: GuardPolicy | None = None) -> Path:
        """Copy a classifier folder and write the policy into `<model_dir>/safety_guard/`."""
        folder = Path(model_dir) / GUARD_DIR
        ViolenceClassifier.from_pretrained(classifier_dir)  # refuse a folder that does not load
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(classifier_dir, folder)
        (folder / POLICY_FILE).write_text(json.dumps((policy or GuardPolicy()).to_dict(), indent=2) + "\n")
        return folder

    def describe(self) -> dict[str, Any]:
        return {"policy": self.policy.to_dict(), "threshold": float(self.classifier.cfg.threshold)}

    def refuse_flagged(self, motions: Sequence[GeneratedMotion]) -> list[GeneratedMotion | None]:
        """One check, no resampling (timelines and edits: the whole motion would have to be made again):
        flagged motions become None."""
        flags = self.classifier.predict([m.features for m in motions])
        return [None if flagged else m for m, flagged in zip(motions, flags, strict=True)]

    def generate(self, pipeline: MotionPipeline, texts: Sequence[str], lengths: Sequence[int | None],
                 seeds: Sequence[int], sampling: SamplingConfig | None = None) -> GuardedMotions:
        """One motion per (text, length, seed) row; flagged rows are generated again, then refused."""
        out: list[GeneratedMotion | None] = list(pipeline.generate(texts, lengths, seeds=seeds, sampling=sampling))
        counts = GuardCounts()
        pending = list(range(len(out)))
        for attempt in range(self.policy.max_resamples + 1):
            flags = self.classifier.predict([out[i].features for i in pending])  # type: ignore[union-attr]
            counts.checks += len(pending)
            pending = [i for i, flagged in zip(pending, flags, strict=True) if flagged]
            if not pending or attempt == self.policy.max_resamples:
                break
            counts.resamples += len(pending)
            again = pipeline.generate([texts[i] for i in pending], [lengths[i] for i in pending],
                                      seeds=[seeds[i] + RESAMPLE_STRIDE * (attempt + 1) for i in pending],
                                      sampling=sampling)
            for i, motion in zip(pending, again, strict=True):
                out[i] = motion
        for i in pending:
            out[i] = None
        counts.refusals = len(pending)
        return GuardedMotions(out, counts)
