"""Benchmark building blocks: evaluation sets, evaluation passes and per-pass metrics.

Follows the official evaluation protocol (evaluator.md §6-§7, humanml3d-format.md §9.2):

* an evaluation set holds whole clips with their whole-clip captions plus one item per timed caption
  segment, clips and segments of `min_len <= T < max_len` frames only;
* a pass shuffles the items, drops the last incomplete batch, and per item draws one caption, a crop
  length (2/3: floor(T/4)*4, 1/3: (floor(T/4) - 1)*4) and a crop start;
* GT crops and generated motions (our pipeline returns de-normalised features) are normalised with the
  *evaluator's* statistics and zero-padded to 196 frames before embedding;
* per pass: R-precision over batches, MM-Dist, FID against the GT crops of the same pass, Diversity,
  MultiModality on the first `mm_batches` batches (the last of the `mm_repeats` generations is the one
  used by the other metrics, as in the official code) and MM-Safe on the forget set.

Every draw comes from explicit numpy generators, so a pass is a pure function of (seed, repeat, set) and
every model of a run sees the same captions, crops and generation seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from models.data.concepts import Concept
from models.data.datasets import load_features, parse_text_line
from models.data.forget_retain import ForgetRetainSplit, read_ids, split_dataset
from models.eval.metrics import MatchingStats, diversity, fid, mm_safe, multimodality
from models.evaluator.protocol import Evaluator

FPS = 20
UNIT_LENGTH = 4
MAX_MOTION_LEN = 196
GT_ROW = "Real motion (GT)"


# ------------------------------------------------------------------------------------------------ sets
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


@dataclass
class ImplicitPrompt:
    clip_id: str
    prompt: str
    tokens: list[str] | None = None


def load_implicit_prompts(path: str | Path) -> list[ImplicitPrompt]:
    """Rewritten (implicit) prompts for clips of the dataset.

    JSON: `[{"id": "000123", "prompt": "...", "tokens": "a/DET ..." (optional)}, ...]` or `{"000123": "..."}`;
    text: one `id#prompt[#tokens]` (or `id<TAB>prompt`) per line, `#`-comments and blank lines ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"implicit prompt file {path} not found")
    text = path.read_text(encoding="utf-8")
    rows: list[ImplicitPrompt] = []
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        entries = [{"id": k, "prompt": v} for k, v in data.items()] if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of {{id, prompt}} objects or an {{id: prompt}} object")
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not isinstance(e.get("prompt"), str):
                raise ValueError(f"{path}: bad entry {e!r} (needs string 'id' and 'prompt')")
            tokens = e.get("tokens")
            rows.append(ImplicitPrompt(e["id"], e["prompt"], tokens.split() if isinstance(tokens, str) else tokens))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t") if "\t" in line else line.split("#")
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: expected 'id#prompt' or 'id<TAB>prompt', got {line!r}")
            tokens = parts[2].split() if len(parts) > 2 and parts[2].strip() else None
            rows.append(ImplicitPrompt(parts[0].strip(), parts[1].strip(), tokens))
    rows = [r for r in rows if r.prompt.strip()]
    if not rows:
        raise ValueError(f"{path} holds no implicit prompt")
    return rows


def implicit_set(
    data_dir: str | Path, prompts: Sequence[ImplicitPrompt], min_len: int = 40, max_len: int = 200
) -> EvalSet:
    """The original clips of `prompts` (whole clips), each captioned only by its rewritten prompt."""
    from models.data.pos import pos_tokens

    data_dir = Path(data_dir)
    items = []
    for p in prompts:
        motion = load_features(data_dir, p.clip_id)
        if not min_len <= len(motion) < max_len:
            raise ValueError(
                f"implicit prompt clip {p.clip_id} has {len(motion)} frames, outside {min_len}..{max_len - 1}"
            )
        items.append(EvalItem(p.clip_id, p.clip_id, motion, [p.prompt], [p.tokens or pos_tokens(p.prompt)]))
    return EvalSet("implicit", items, str(data_dir))


# ------------------------------------------------------------------------------------------------ passes
@dataclass
class PassBatch:
    """One batch of a pass: drawn captions, crop lengths (multiples of 4), GT crops and generation seeds."""

    items: list[int]
    captions: list[str]
    tokens: list[list[str]]
    lengths: list[int]
    motions: list[np.ndarray]  # (m_i, D) raw GT crops
    seeds: list[int]

    def __len__(self) -> int:
        return len(self.items)


def draw_pass(
    eval_set: EvalSet,
    rng: np.random.Generator,
    batch_size: int = 32,
    max_items: int | None = None,
    unit_length: int = UNIT_LENGTH,
    max_motion_len: int = MAX_MOTION_LEN,
) -> list[PassBatch]:
    """Shuffled batches (drop_last) of one pass over at most `max_items` items. Fewer items than
    `batch_size` give one batch of all of them (R-precision then ranks among fewer motions)."""
    n = len(eval_set)
    if batch_size < 3:
        raise ValueError(f"batch_size must be >= 3 (R-precision top-3), got {batch_size}")
    if max_items is not None and max_items < 3:
        raise ValueError(f"max_items must be >= 3, got {max_items}")
    used = n if max_items is None else min(n, int(max_items))
    b = min(batch_size, used)
    if b < 3:
        raise ValueError(f"set {eval_set.name!r} has {n} items; R-precision needs at least 3")
    order = rng.permutation(n)[:used]
    batches = []
    for s in range(0, len(order) // b * b, b):
        idx = [int(i) for i in order[s : s + b]]
        caps, toks, lens, crops = [], [], [], []
        for i in idx:
            item = eval_set.items[i]
            c = int(rng.integers(len(item.captions)))
            t = len(item.motion)
            double = int(rng.integers(3)) == 2  # coin in {single, single, double}
            m = min((t // unit_length - int(double)) * unit_length, max_motion_len)
            start = int(rng.integers(0, t - m + 1))
            caps.append(item.captions[c])
            toks.append(item.tokens[c])
            lens.append(m)
            crops.append(item.motion[start : start + m])
        seeds = [int(x) for x in rng.integers(0, 2**31 - 1, size=len(idx))]
        batches.append(PassBatch(idx, caps, toks, lens, crops, seeds))
    return batches


# ------------------------------------------------------------------------------------------------ evaluator
class EvalSpace:
    """An evaluator with its normalisation statistics and its kind of text input.

    kind "ours": texts are captions (sentence features), MM-Safe masks the caption with
    `concept.mask_caption`; kind "official": texts are `word/POS` tokens, MM-Safe masks tokens with
    `concept.mask_tokens` (masked words become out-of-vocabulary -> `unk`).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        mean: np.ndarray,
        std: np.ndarray,
        kind: str = "ours",
        name: str = "evaluator",
        max_motion_len: int = MAX_MOTION_LEN,
        batch_size: int = 128,
    ):
        if kind not in ("ours", "official"):
            raise ValueError(f"evaluator kind must be 'ours' or 'official', got {kind!r}")
        mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
        if mean.shape != (evaluator.dim_pose,) or std.shape != (evaluator.dim_pose,):
            raise ValueError(f"evaluator statistics must be ({evaluator.dim_pose},), got {mean.shape}, {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("evaluator statistics must be finite with a positive std")
        self.evaluator, self.mean, self.std, self.kind, self.name = evaluator, mean, std, kind, name
        self.max_motion_len, self.batch_size = max_motion_len, batch_size
        self._text_cache: dict[Any, np.ndarray] = {}

    @property
    def dim_pose(self) -> int:
        return self.evaluator.dim_pose

    def motion_embeddings(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (m_i, D) features -> (N, E): x_eval = (x - mean_eval) / std_eval, zero-padded to 196 frames."""
        out = []
        for s in range(0, len(motions), self.batch_size):
            chunk = motions[s : s + self.batch_size]
            x = torch.zeros(len(chunk), self.max_motion_len, self.dim_pose)
            lens = []
            for row, m in enumerate(chunk):
                m = np.asarray(m, np.float32)
                if m.ndim != 2 or m.shape[1] != self.dim_pose or not 0 < len(m) <= self.max_motion_len:
                    raise ValueError(
                        f"motion of shape {m.shape} does not fit the evaluator "
                        f"(T <= {self.max_motion_len}, D = {self.dim_pose})"
                    )
                x[row, : len(m)] = torch.from_numpy((m - self.mean) / self.std)
                lens.append(len(m))
            emb = self.evaluator.motion_embeddings(x, torch.tensor(lens))
            out.append(emb.detach().cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    def text_embeddings(self, captions: Sequence[str], tokens: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, E) embeddings of the captions (ours) or their tokens (official), cached per text."""
        keys = list(captions) if self.kind == "ours" else [tuple(t) for t in tokens]
        missing = list(dict.fromkeys(k for k in keys if k not in self._text_cache))
        for s in range(0, len(missing), self.batch_size):
            chunk = missing[s : s + self.batch_size]
            texts = chunk if self.kind == "ours" else [list(k) for k in chunk]
            emb = self.evaluator.text_embeddings(texts).detach().cpu().numpy().astype(np.float64)
            self._text_cache.update(zip(chunk, emb, strict=True))
        return np.stack([self._text_cache[k] for k in keys])

    def masked_text_embeddings(
        self, captions: Sequence[str], tokens: Sequence[Sequence[str]], concept: Concept
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the concept-masked texts and a bool (N,) array of which texts changed."""
        if self.kind == "ours":
            masked = [concept.mask_caption(c) for c in captions]
            changed = np.array([m != c for m, c in zip(masked, captions, strict=True)])
            return self.text_embeddings(masked, tokens), changed
        masked_tokens = [concept.mask_tokens(t) for t in tokens]
        changed = np.array([list(m) != list(t) for m, t in zip(masked_tokens, tokens, strict=True)])
        return self.text_embeddings(captions, masked_tokens), changed


# ------------------------------------------------------------------------------------------------ sources
class MotionSource(Protocol):
    """Something that produces motions for a pass batch: raw (m_i, D) features, one per row."""

    name: str

    def generate_batch(self, batch: PassBatch, seeds: Sequence[int]) -> list[np.ndarray]: ...


class PipelineSource:
    """A MotionPipeline generating at the GT crop lengths, one seed per row."""

    def __init__(self, pipeline, name: str, sampling: dict[str, Any] | None = None, path: str = ""):
        self.pipeline, self.name, self.sampling, self.path = pipeline, name, dict(sampling or {}), path

    @property
    def kind(self) -> str:
        return self.pipeline.kind

    def generate_batch(self, batch: PassBatch, seeds: Sequence[int]) -> list[np.ndarray]:
        out = self.pipeline.generate(batch.captions, lengths=batch.lengths, seeds=list(seeds), **self.sampling)
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


# ------------------------------------------------------------------------------------------------ metrics
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


def generate_pass(
    source: MotionSource,
    space: EvalSpace,
    ref: PassReference,
    mm_batches: int = 0,
    mm_repeats: int = 20,
    on_batch: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Generate every batch of the pass -> (motion_emb (N, E), mm_emb (P, R, E) or None, raw motions).

    The first `mm_batches` batches are generated `mm_repeats` times (seeds shifted per repetition); the
    last repetition is the one used for the other metrics. `on_batch(rows)` reports progress.

    Rows are generated in length-sorted chunks of `chunk_size` rows (default: the pass's batch size) rather
    than in the pass's shuffled batches: every row has its own seed, so its motion does not depend on the rows
    that share its chunk, and the transformers then run to lengths close to each row's own instead of the
    longest row of a random batch. Results are put back in batch order.
    """
    jobs = [  # (batch, repetition, row)
        (k, r, i)
        for k, batch in enumerate(ref.batches)
        for r in range(mm_repeats if k < mm_batches else 1)
        for i in range(len(batch))
    ]
    order = sorted(range(len(jobs)), key=lambda j: (ref.batches[jobs[j][0]].lengths[jobs[j][2]], j))
    size = chunk_size or max(len(b) for b in ref.batches)
    generated: list[np.ndarray | None] = [None] * len(jobs)
    for s in range(0, len(order), size):
        picked = order[s : s + size]
        rows = [(ref.batches[jobs[j][0]], jobs[j][1], jobs[j][2]) for j in picked]
        seeds = [(b.seeds[i] + 7919 * r) % (2**31 - 1) for b, r, i in rows]
        chunk = PassBatch(
            items=[b.items[i] for b, _, i in rows],
            captions=[b.captions[i] for b, _, i in rows],
            tokens=[b.tokens[i] for b, _, i in rows],
            lengths=[b.lengths[i] for b, _, i in rows],
            motions=[b.motions[i] for b, _, i in rows],
            seeds=seeds,
        )
        for j, motion in zip(picked, source.generate_batch(chunk, seeds), strict=True):
            generated[j] = motion
        if on_batch is not None:
            on_batch(len(picked))
    embs, mm, raw, start = [], [], [], 0
    for k, batch in enumerate(ref.batches):
        reps, n = (mm_repeats if k < mm_batches else 1), len(batch)
        # embedded batch by batch, exactly as the GT crops (jobs run repetition-major within a batch)
        per_rep = np.stack(
            [space.motion_embeddings(generated[start + r * n : start + (r + 1) * n]) for r in range(reps)]
        )
        embs.append(per_rep[-1])
        raw.extend(generated[start + (reps - 1) * n : start + reps * n])
        if reps > 1:
            mm.append(per_rep.transpose(1, 0, 2))  # (B, R, E)
        start += reps * n
    mm_emb = np.concatenate(mm) if mm else None
    return np.concatenate(embs), mm_emb, raw


def rows_to_generate(batches: Sequence[PassBatch], mm_batches: int, mm_repeats: int) -> int:
    """Generated rows of one pass for one model (progress accounting)."""
    return sum(len(b) * (mm_repeats if k < mm_batches else 1) for k, b in enumerate(batches))


def read_ids_or_all(data_dir: str | Path, split: str | None) -> list[str]:
    """Ids of `split` (a split file) or, with split None, every motion of the folder."""
    return folder_ids(data_dir) if split is None else read_ids(data_dir, split)
