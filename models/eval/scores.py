"""Per-pass metrics: R-precision over batches, MM-Dist, FID against the GT crops of the same pass,
Diversity, MultiModality (retain set) and MM-Safe (forget set)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.data.concepts import Concept
from models.eval.metrics import MatchingStats, diversity, fid, mm_safe, multimodality
from models.eval.passes import PassBatch
from models.eval.space import EvalSpace


@dataclass
class PassReference:
    """What a pass shares between models: texts, GT embeddings and MM-Safe masks (rows in batch order)."""

    batches: list[PassBatch]
    text_emb: np.ndarray  # (N, E)
    gt_emb: np.ndarray  # (N, E)
    masked_text_emb: np.ndarray | None = None
    masked: np.ndarray | None = None  # (N,) bool
    bounds: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def build(cls, space: EvalSpace, batches: list[PassBatch], concept: Concept | None = None) -> PassReference:
        caps = [c for b in batches for c in b.captions]
        toks = [t for b in batches for t in b.tokens]
        text_emb = space.text_embeddings(caps, toks)
        gt_emb = np.concatenate([space.motion_embeddings(b.motions) for b in batches])  # as generate_pass
        masked_emb = masked = None
        if concept is not None:
            masked_emb, masked = space.masked_text_embeddings(caps, toks, concept)
        bounds, s = [], 0
        for b in batches:
            bounds.append((s, s + len(b)))
            s += len(b)
        return cls(batches, text_emb, gt_emb, masked_emb, masked, bounds)

    @property
    def n(self) -> int:
        return self.text_emb.shape[0]


def pass_metrics(
    ref: PassReference, motion_emb: np.ndarray, rng: np.random.Generator, mm_emb: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics of one pass for motion embeddings (N, E) aligned with `ref` (GT: motion_emb = ref.gt_emb)."""
    stats = MatchingStats(top_k=3)
    for s, e in ref.bounds:
        stats.add(ref.text_emb[s:e], motion_emb[s:e])
    r = stats.r_precision
    n = motion_emb.shape[0]
    out = {
        "R@1": float(r[0]),
        "R@2": float(r[1]),
        "R@3": float(r[2]),
        "MM-Dist": stats.matching_score,
        "FID": fid(ref.gt_emb, motion_emb),
        "Diversity": diversity(motion_emb, times=min(300 if n > 300 else 100, n), rng=rng),
    }
    if ref.masked is not None:
        out["MM-Safe"] = mm_safe(ref.text_emb, ref.masked_text_emb, motion_emb, ref.masked).mm_safe
    if mm_emb is not None:
        out["MultiModality"] = multimodality(mm_emb, times=min(10, mm_emb.shape[1]), rng=rng)
    return out
