"""HumanML3D evaluation metrics on text/motion co-embeddings (evaluator.md §6, unlearning-methods.md §5).

All functions take numpy arrays (or anything `np.asarray` accepts, e.g. CPU tensors) of embeddings,
rows = samples, and are evaluator-agnostic. Formulas follow the official T2M / MoMask code:

* distances are `sqrt(|a|^2 + |b|^2 - 2 a.b)` without clipping (a tiny negative argument gives NaN,
  exactly as in the official code);
* R-precision ranks each text against the 32 motions of its batch (loader: shuffle, drop_last);
* FID uses the N-1 sample covariance and `scipy.linalg.sqrtm`, retrying with 1e-6*I on non-finite
  output and dropping imaginary parts only when the diagonal's are below 1e-3;
* Diversity / MultiModality draw index pairs without replacement from a seeded generator;
* repetitions are summarised as `mean ± 1.96 * std / sqrt(N)` with numpy's *population* std (ddof 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from models.common.config import DictConfig

RandomLike = np.random.Generator | np.random.RandomState | int | None


def _as_2d(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


def _pair(a, b, names=("text_emb", "motion_emb")) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(a, names[0]), _as_2d(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} {a.shape} and {names[1]} {b.shape} must have the same shape")
    return a, b


def _rng(rng: RandomLike):
    """None -> numpy's global RandomState (what the official code uses after `fixseed`)."""
    if rng is None:
        return np.random.mtrand._rand
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    raise ValueError(f"rng must be None, an int seed, a numpy Generator or RandomState, got {type(rng)}")


# ------------------------------------------------------------------------------------------------
# distances


def euclidean_distance_matrix(a, b) -> np.ndarray:
    """D[i, j] = |a_i - b_j| as sqrt(|a_i|^2 + |b_j|^2 - 2 a_i.b_j) (official formula, no clipping).

    a: (N, D), b: (M, D) -> (N, M)
    """
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}")
    d = -2.0 * a @ b.T + np.sum(a * a, axis=1, keepdims=True) + np.sum(b * b, axis=1)
    with np.errstate(invalid="ignore"):
        return np.sqrt(d)


def paired_distances(a, b) -> np.ndarray:
    """d_i = |a_i - b_i| with the same formula as the diagonal of `euclidean_distance_matrix`. (N,)"""
    a, b = _pair(a, b, ("a", "b"))
    d = np.sum(a * a, axis=1) + np.sum(b * b, axis=1) - 2.0 * np.sum(a * b, axis=1)
    with np.errstate(invalid="ignore"):
        return np.sqrt(d)


# ------------------------------------------------------------------------------------------------
# R-precision and matching score


def top_k_hits(dist: np.ndarray, top_k: int = 3) -> np.ndarray:
    """Row i hits at k if column i is among its k nearest columns. dist: (B, B) -> bool (B, top_k).

    Ranking uses `np.argsort(dist, axis=1)` (numpy's default sort, as the official code; NaN last).
    """
    dist = np.asarray(dist)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"dist must be a square matrix, got shape {dist.shape}")
    if not 1 <= top_k <= dist.shape[0]:
        raise ValueError(f"top_k must be in [1, {dist.shape[0]}], got {top_k}")
    order = np.argsort(dist, axis=1)[:, :top_k]  # (B, k) nearest columns
    correct = order == np.arange(dist.shape[0])[:, None]
    return np.logical_or.accumulate(correct, axis=1)


def iter_batches(
    n: int, batch_size: int = 32, drop_last: bool = True, shuffle: bool = False, rng: RandomLike = None
):
    """Index batches like the official loader (there: shuffle=True, drop_last=True).

    shuffle=True permutes with `rng` (None = numpy's global state); otherwise rows keep their order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx = _rng(rng).permutation(n) if shuffle else np.arange(n)
    stop = (n // batch_size) * batch_size if drop_last else n
    if stop == 0:
        raise ValueError(f"{n} samples give no full batch of {batch_size} (drop_last={drop_last})")
    for s in range(0, stop, batch_size):
        yield idx[s : s + batch_size]


@dataclass
class MatchingStats:
    """Running sums of one evaluation pass: R-precision hits and matching-score distances."""

    top_k: int = 3
    n: int = 0
    hits: np.ndarray | None = None  # (top_k,) hit counts
    dist_sum: float = 0.0

    def add(self, text_emb, motion_emb) -> None:
        """Add one batch of aligned pairs (B, D), (B, D)."""
        t, m = _pair(text_emb, motion_emb)
        dist = euclidean_distance_matrix(t, m)  # (B, B)
        hits = top_k_hits(dist, self.top_k).sum(axis=0)
        self.hits = hits if self.hits is None else self.hits + hits
        self.dist_sum += float(np.trace(dist))
        self.n += t.shape[0]

    @property
    def r_precision(self) -> np.ndarray:
        """(top_k,) fraction of texts whose motion is within the k nearest of the batch."""
        if self.n == 0:
            raise ValueError("no batch was added")
        return self.hits / self.n

    @property
    def matching_score(self) -> float:
        """MM-Dist: mean distance between each text and its own motion."""
        if self.n == 0:
            raise ValueError("no batch was added")
        return self.dist_sum / self.n


def r_precision_and_matching(
    text_emb,
    motion_emb,
    batch_size: int = 32,
    top_k: int = 3,
    shuffle: bool = False,
    rng: RandomLike = None,
) -> tuple[np.ndarray, float]:
    """R-precision (top_k,) and matching score over batches of `batch_size` (drop_last).

    shuffle=True permutes the rows with `rng` before batching (official loader semantics).
    """
    t, m = _pair(text_emb, motion_emb)
    stats = MatchingStats(top_k=top_k)
    for idx in iter_batches(t.shape[0], batch_size, drop_last=True, shuffle=shuffle, rng=rng):
        stats.add(t[idx], m[idx])
    return stats.r_precision, stats.matching_score


def matching_score(text_emb, motion_emb) -> float:
    """MM-Dist of aligned rows (mean of paired distances; equals the batched trace sum / N)."""
    return float(np.mean(paired_distances(*_pair(text_emb, motion_emb))))


# ------------------------------------------------------------------------------------------------
# FID


def activation_statistics(emb) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and sample covariance (D, D) with N-1 (numpy `cov`, rows = samples)."""
    emb = _as_2d(emb, "emb")
    if emb.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {emb.shape[0]}")
    return np.mean(emb, axis=0), np.cov(emb, rowvar=False)


def _sqrtm(x: np.ndarray) -> np.ndarray:
    out = linalg.sqrtm(x)
    return out[0] if isinstance(out, tuple) else out


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2)) (official handling of sqrtm failures)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match mean size {mu1.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(gt_emb, gen_emb) -> float:
    """FID between two embedding sets (N1, D), (N2, D)."""
    mu1, s1 = activation_statistics(gt_emb)
    mu2, s2 = activation_statistics(gen_emb)
    return frechet_distance(mu1, s1, mu2, s2)


# ------------------------------------------------------------------------------------------------
# Diversity and MultiModality


def diversity(emb, times: int | None = None, rng: RandomLike = None) -> float:
    """Mean distance over `times` pairs (two independent draws without replacement).

    times=None -> 300 if N > 300 else 100 (official). rng=None uses numpy's global state.
    """
    emb = _as_2d(emb, "emb")
    n = emb.shape[0]
    if times is None:
        times = 300 if n > 300 else 100
    if not 1 <= times <= n:
        raise ValueError(f"diversity needs times in [1, N={n}], got {times}")
    r = _rng(rng)
    first = r.choice(n, times, replace=False)
    second = r.choice(n, times, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb, times: int = 10, rng: RandomLike = None) -> float:
    """emb: (P, R, D) = R generations per prompt. Mean over prompts and `times` pairs of
    |e[p, a_k] - e[p, b_k]|, a and b drawn independently without replacement from range(R)."""
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    emb = np.asarray(emb)
    if emb.ndim != 3:
        raise ValueError(f"multimodality embeddings must be (prompts, repeats, D), got shape {emb.shape}")
    reps = emb.shape[1]
    if not 1 <= times <= reps:
        raise ValueError(f"multimodality needs times in [1, repeats={reps}], got {times}")
    r = _rng(rng)
    first = r.choice(reps, times, replace=False)
    second = r.choice(reps, times, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


# ------------------------------------------------------------------------------------------------
# MM-Safe


@dataclass
class MMSafeResult(DictConfig):
    """MM-Safe summary. Per-sample ratios/accuracy are over all samples (unmasked: ratio 1, not "notox")."""

    mm_safe: float  # mean distance of motion to the masked caption (unmasked samples: the original)
    mm_dist: float  # mean distance of motion to the original caption
    toxic_distance: float  # mean of per-sample MM-Dist / MM-Safe
    notox_accuracy: float  # fraction of samples with MM-Safe < MM-Dist
    n: int
    n_masked: int


def mm_safe(
    text_emb,
    masked_text_emb,
    motion_emb,
    masked: Sequence[bool] | np.ndarray | Callable[[int], bool],
) -> MMSafeResult:
    """MM-Safe computed per sample: d(masked text, motion) where `masked[i]`, else d(text, motion).

    text_emb / masked_text_emb / motion_emb: (N, D) aligned rows; masked_text_emb is the embedding of
    the caption after the caller's keyword masking. `masked` is a boolean (N,) array or a callable
    i -> bool. Nothing masked -> MM-Safe == MM-Dist.
    """
    t, m = _pair(text_emb, motion_emb)
    tm, _ = _pair(masked_text_emb, motion_emb, ("masked_text_emb", "motion_emb"))
    n = t.shape[0]
    mask = np.array([bool(masked(i)) for i in range(n)]) if callable(masked) else np.asarray(masked)
    if mask.shape != (n,) or mask.dtype != np.bool_:
        raise ValueError(f"masked must be a boolean array of shape ({n},), got {mask.dtype} {mask.shape}")
    d = paired_distances(t, m)
    d_safe = np.where(mask, paired_distances(tm, m), d)
    return MMSafeResult(
        mm_safe=float(d_safe.mean()),
        mm_dist=float(d.mean()),
        toxic_distance=float(np.mean(d / d_safe)),
        notox_accuracy=float(np.mean(d_safe < d)),
        n=n,
        n_masked=int(mask.sum()),
    )


# ------------------------------------------------------------------------------------------------
# repetition aggregation


@dataclass(frozen=True)
class MetricResult(DictConfig):
    """A metric over N repetitions: mean and 95 % half-width 1.96 * std / sqrt(N), std with ddof 0."""

    name: str
    mean: float
    conf: float
    n: int

    def __str__(self) -> str:
        return f"{self.name}: {self.mean:.4f} ± {self.conf:.4f} (N={self.n})"

    @classmethod
    def from_dict(cls, d: Mapping) -> MetricResult:  # coerces the JSON values' types
        return cls(name=str(d["name"]), mean=float(d["mean"]), conf=float(d["conf"]), n=int(d["n"]))


def confidence_interval(values) -> tuple[float, float]:
    """(mean, 1.96 * std / sqrt(N)) with numpy's population std (ddof=0), as the official scripts."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {v.shape}")
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(v.size))


def aggregate(runs: Sequence[Mapping[str, float]]) -> dict[str, MetricResult]:
    """Per-metric MetricResult from a list of per-repetition {metric: value} dicts (same keys)."""
    if not runs:
        raise ValueError("no repetitions to aggregate")
    keys = list(runs[0])
    for i, r in enumerate(runs):
        if set(r) != set(keys):
            raise ValueError(f"repetition {i} has metrics {sorted(r)}, expected {sorted(keys)}")
    out = {}
    for k in keys:
        mean, conf = confidence_interval([r[k] for r in runs])
        out[k] = MetricResult(k, mean, conf, len(runs))
    return out
