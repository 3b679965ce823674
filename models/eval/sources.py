"""Motion sources: what produces the motions of a pass batch (a pipeline, or the GT crops themselves)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.eval.passes import PassBatch
from models.pipelines import MotionPipeline

GT_ROW = "Real motion (GT)"


class MotionSource(Protocol):
    """Something that produces motions for a pass batch: raw (m_i, D) features, one per row."""

    name: str

    def generate_batch(self, batch: PassBatch, seeds: Sequence[int]) -> list[np.ndarray]: ...


class PipelineSource:
    """A MotionPipeline generating at the GT crop lengths, one seed per row.

    decode: "per_row" (each row at its own length) or "official" (the padded batch, then cropped: the official
    evaluation's decoding; `generate_pass` then generates the pass's own batches so the padding is theirs).
    """

    def __init__(self, pipeline, name: str, sampling: dict[str, Any] | None = None, path: str = "",
                 decode: str = "per_row"):
        self.pipeline, self.name, self.sampling, self.path = pipeline, name, dict(sampling or {}), path
        self.decode = decode

    @property
    def kind(self) -> str:
        return self.pipeline.kind

    def generate_batch(self, batch: PassBatch, seeds: Sequence[int]) -> list[np.ndarray]:
        out = self.pipeline.generate(batch.captions, lengths=batch.lengths, seeds=list(seeds), decode=self.decode,
                                     **self.sampling)
        feats = [o.features for o in out]
        for f, m in zip(feats, batch.lengths, strict=True):
            if f.shape[0] != m:
                raise ValueError(f"model {self.name!r} returned {f.shape[0]} frames for a {m}-frame request")
        return feats

    def sample(self, text: str, length: int, seed: int):
        """One GeneratedMotion (for the skeleton plots)."""
        return self.pipeline.generate([text], lengths=[length], seed=seed, **self.sampling)[0]


class GroundTruthSource:
    """Returns the pass's own GT crops: its metrics must equal the GT row (FID 0). A wiring check."""

    kind = "gt"
    path = ""

    def __init__(self, name: str = "gt-as-generated"):
        self.name = name

    def generate_batch(self, batch: PassBatch, seeds: Sequence[int]) -> list[np.ndarray]:
        return [np.array(m, copy=True) for m in batch.motions]


def model_sources(models: Sequence | Mapping, device: str, sampling: dict | None,
                  decode: str = "per_row") -> list[MotionSource]:
    """MotionPipeline folders (or ready MotionSource objects) -> named sources, names unique; folders decode
    with `decode` (see PipelineSource)."""
    items = list(models.items()) if isinstance(models, Mapping) else [(None, m) for m in models]
    if not items:
        raise ValueError("give at least one model to evaluate")
    sources, names = [], set()
    for name, spec in items:
        if hasattr(spec, "generate_batch"):
            source = spec
            name = name or source.name
        else:
            path = Path(spec)
            if not path.exists():
                raise FileNotFoundError(f"model {path} not found")
            name = name or path.name
            source = PipelineSource(
                MotionPipeline.from_pretrained(path, device=device), name, sampling, str(path), decode
            )
        base, k = str(name), 2
        while name in names or name == GT_ROW:
            name, k = f"{base}-{k}", k + 1
        source.name = name
        names.add(name)
        sources.append(source)
    return sources
