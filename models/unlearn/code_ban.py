"""Code ban: remove the concept's motion codes from the base layer, behind a text gate (beyond the paper).

1. Forget set by *motion*: a training clip is in the concept when its captions name it or the violence
   classifier flags its motion; base-layer code statistics of the dataset (as LCR) select the first `k` codes.
2. Generate and re-score, `rounds` times: the model (with the codes so far banned) generates the concept's
   violent probe prompts (`models/data/prompts/<concept>_probes.json`, training prompts, never evaluation ones)
   with new seeds each round; the codes over-represented in the generations the classifier still flags, against
   the safe probes' generations, are banned too, until the flagged share is at most `target` x the safe probes'
   or the budget ends.
3. Text gate: a linear probe on the text encoder's features (captions that name the concept + violent probes
   vs. the other captions + safe probes; dataset captions and prompts weigh the same, as their registers
   differ), its offset set for at most `gate_fp` false positives on held-out other captions and on the safe
   probes. `gate="always"` bans the codes for every prompt.

The ban is a `CodeSuppression` in the base transformer (weights, saved in base.safetensors): for a prompt the
gate catches, banned codes get a -1e4 logit, so the sampler draws the model's best *other* codes (coherent
motion, not noise); prompts the gate does not catch generate exactly what the original model generates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.concepts import Concept
from models.data.forget_retain import caption_lines
from models.data.prompt_sets import probe_prompts
from models.evaluator.violence_classifier import ViolenceClassifier
from models.motion.normalize import Normalizer
from models.pipelines import UNIT_LENGTH, MotionPipeline, default_model_dir, make_generators
from models.unlearn.code_stats import CodeStats, CountSpec, collect_code_stats
from models.unlearn.lcr import label_items, select_codes
from models.unlearn.params import MethodParams, one_of, require

Progress = Callable[[float, str], None]
GATES = ("text", "always")
CAPTION_LIMIT = 1000  # dataset caption lines per side (in / outside the concept) for the text gate


class PhaseClock:
    """Seconds spent in each named phase (`mark` ends the current one)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.phases: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return round(time.monotonic() - self.started, 1)


@dataclass
class CodeBanParams(MethodParams):
    """code_ban settings; the main trade-off parameter is `gate_fp` (a wider gate: less violence, and more safe
    prompts changed)."""

    method = "code_ban"
    k: int = 48  # first selection from the dataset's code statistics (top-k by s1 and by s2)
    k_per_round: int = 16  # codes added per generate-and-rescore round
    rounds: int = 4
    max_codes: int = 128
    target: float = 0.5  # stop once the violent probes' flagged share <= target x the safe probes' share
    gate: str = "text"  # text | always
    gate_fp: float = 0.005  # the gate's false-positive budget on held-out captions outside the concept
    motion_labels: bool = True  # forget set also holds the clips the classifier flags (not only captions)
    classifier: str = "default"  # violence classifier folder ("default" = weights/violence-classifier)
    probe_seeds: int = 1  # generations per probe prompt and round
    length: int = 120  # frames per probe generation
    seed: int = 0
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    use_cache: bool = True
    cache_dir: str | None = None

    def validate(self) -> None:
        require(1 <= self.k <= 4096, f"k must be in 1..4096, got {self.k}")
        require(1 <= self.k_per_round <= 4096, f"k_per_round must be in 1..4096, got {self.k_per_round}")
        require(0 <= self.rounds <= 20, f"rounds must be in 0..20, got {self.rounds}")
        require(1 <= self.max_codes <= 4096, f"max_codes must be in 1..4096, got {self.max_codes}")
        require(0.0 <= self.target <= 10.0, f"target must be in [0, 10], got {self.target}")
        one_of("gate", self.gate, GATES)
        require(0.0 < self.gate_fp < 0.5, f"gate_fp must be in (0, 0.5), got {self.gate_fp}")
        require(1 <= self.probe_seeds <= 10, f"probe_seeds must be in 1..10, got {self.probe_seeds}")
        require(UNIT_LENGTH <= self.length <= 196, f"length must be in {UNIT_LENGTH}..196, got {self.length}")
        require(
            bool(self.splits) and all(s in ("train", "val", "test", "train_val", "all") for s in self.splits),
            f"splits must be a non-empty list of train | val | test | train_val | all, got {self.splits}",
        )


# ---------------------------------------------------------------------------------------------- install
def install_suppression(pipeline: MotionPipeline, codes: Sequence[int], directions: torch.Tensor | None = None,
                        offsets: torch.Tensor | None = None) -> None:
    """Give `pipeline.base` a CodeSuppression banning `codes` (gate: directions/offsets, None = always)."""
    base = pipeline.base
    m = 1 if directions is None else int(directions.shape[0])
    if base.code_suppression is None or base.cfg.suppression_directions != m:
        cfg = dataclasses.replace(base.cfg, suppression_directions=m)
        rebuilt = type(base)(cfg)
        missing, unexpected = rebuilt.load_state_dict(
            {k: v for k, v in base.state_dict().items() if not k.startswith("code_suppression.")}, strict=False)
        require(not unexpected and all(k.startswith("code_suppression.") for k in missing),
                f"cannot rebuild the base transformer: missing {missing}, unexpected {unexpected}")
        pipeline.base = base = rebuilt.to(pipeline.device).eval()
    base.code_suppression.set(list(codes), directions, offsets)


# ---------------------------------------------------------------------------------------------- forget set
def clip_flags(data_dir: Path, clips: Sequence[str], classifier: ViolenceClassifier) -> dict[str, bool]:
    """Classifier verdict on each training clip's motion (new_joint_vecs/<clip>.npy)."""
    unique = sorted(set(clips))
    motions = [np.load(data_dir / "new_joint_vecs" / f"{c}.npy").astype(np.float32) for c in unique]
    return dict(zip(unique, (bool(f) for f in classifier.predict(motions)), strict=True))


def motion_forget_mask(stats: CodeStats, data_dir: Path, concept: Concept,
                       classifier: ViolenceClassifier | None) -> tuple[torch.Tensor, dict[str, int]]:
    """Items in the concept: captions name it, or (with a classifier) their clip's motion is flagged."""
    by_caption = label_items(stats, data_dir, concept)
    if classifier is None:
        return by_caption, {"by_caption": int(by_caption.sum()), "by_motion_only": 0}
    flags = clip_flags(data_dir, stats.clip_ids, classifier)
    by_motion = torch.tensor([flags[c] for c in stats.clip_ids], dtype=torch.bool)
    return by_caption | by_motion, {"by_caption": int(by_caption.sum()),
                                    "by_motion_only": int((by_motion & ~by_caption).sum())}


# ---------------------------------------------------------------------------------------------- generation
@torch.no_grad()
def generate_with_codes(pipeline: MotionPipeline, texts: Sequence[str], seeds: Sequence[int], length: int,
                        batch_size: int = 64) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """Raw features and base-layer ids of every (text, seed) row, texts in order for each seed."""
    rows = [(t, s) for s in seeds for t in texts]
    features: list[np.ndarray] = []
    codes: list[torch.Tensor] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        generators = make_generators([s for _, s in chunk])
        cond = pipeline.encode_text([t for t, _ in chunk])
        token_lens = pipeline.token_lengths([length] * len(chunk), cond, generators)
        all_ids, token_lens = pipeline.generate_tokens(cond, token_lens, generators)
        for b, feats in enumerate(pipeline.decode_by_length(all_ids, token_lens)):
            features.append(feats.cpu().numpy())
            codes.append(all_ids[b, : int(token_lens[b]), 0].cpu())
    return features, codes


def presence(codes: Sequence[torch.Tensor], num_codes: int) -> torch.Tensor:
    """Number of motions each code occurs in: (K,) float64."""
    counts = torch.zeros(num_codes, dtype=torch.float64)
    for ids in codes:
        counts[torch.unique(ids[(ids >= 0) & (ids < num_codes)])] += 1
    return counts


# ---------------------------------------------------------------------------------------------- text gate
def caption_texts(data_dir: Path, clips: Sequence[str], concept: Concept, limit: int,
                  rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(caption lines that name the concept, other caption lines), at most `limit` of each (random)."""
    inside, outside = [], []
    for clip in sorted(set(clips)):
        for line in caption_lines(data_dir, clip):
            text = line.split("#")[0].strip()
            if text:
                (inside if concept.matches(text) else outside).append(text)
    pick = [sorted(set(part)) for part in (inside, outside)]
    return tuple(list(rng.permutation(p)[:limit]) if len(p) > limit else p for p in pick)  # type: ignore[return-value]


def keyword_phrases(concept: Concept) -> list[str]:
    """Short prompts built from the concept's own keywords (gate positives in the prompts' register)."""
    templates = ("{}", "a person {}", "someone does a {} motion", "a man performs a {}")
    return [t.format(k) for k in concept.erase_prompts() for t in templates]


def group_weights(groups: torch.Tensor) -> torch.Tensor:
    """Sample weights (N,) that give every group id of `groups` (N,) the same total weight (sum 1)."""
    ids, counts = torch.unique(groups, return_counts=True)
    per_group = torch.zeros(int(ids.max()) + 1)
    per_group[ids] = 1.0 / (len(ids) * counts.float())
    return per_group[groups]


def fit_gate(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor | None = None,
             steps: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced logistic regression: features (N, D), labels (N,) bool -> (w (D,), b ()). Every (label, group)
    pair weighs the same (groups: e.g. dataset captions vs. prompts; None = one group per label)."""
    w = torch.zeros(features.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    pos = labels.float()
    groups = torch.zeros_like(labels, dtype=torch.long) if groups is None else groups.long()
    weight = group_weights(2 * groups + labels.long())
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(features @ w + b, pos, reduction="none")
                * weight).sum() + 1e-4 * w.square().sum()
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


def train_gate(pipeline: MotionPipeline, positives: tuple[list[str], list[str]], negatives: list[str],
               safe_prompts: list[str], fp: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The text gate -> (directions (1, D), offsets (1,), report). Trained on positives (captions, prompts) vs.
    negatives (captions) + safe prompts, captions and prompts weighing the same (their registers differ); the
    offset lets at most `fp` of the held-out 25 % of the negatives and of the safe prompts through."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(negatives))
    cut = max(1, len(order) // 4)
    held, train_neg = [negatives[i] for i in order[:cut]], [negatives[i] for i in order[cut:]]
    parts = (positives[0], positives[1], train_neg, safe_prompts)
    feats = pipeline.encode_text([t for part in parts for t in part]).cpu()
    labels = torch.tensor([True] * sum(map(len, parts[:2])) + [False] * sum(map(len, parts[2:])))
    groups = torch.tensor([g % 2 for g, part in enumerate(parts) for _ in part])  # 0 captions, 1 prompts
    w, b = fit_gate(feats, labels, groups)
    held_scores = pipeline.encode_text(held).cpu() @ w
    safe_scores = feats[len(feats) - len(safe_prompts):] @ w
    offset = -max(float(torch.quantile(held_scores, 1.0 - fp)), float(torch.quantile(safe_scores, 1.0 - fp)))
    pos_scores = feats[: int(labels.sum())] @ w
    report = {"positives": int(labels.sum()), "negatives": int((~labels).sum()),
              "held_out_negatives": len(held), "train_recall": float((pos_scores + offset > 0).float().mean()),
              "held_out_fp": float((held_scores + offset > 0).float().mean())}
    return w[None, :].to(pipeline.device), torch.tensor([offset], device=pipeline.device), report


# ---------------------------------------------------------------------------------------------- rounds
@dataclass
class ProbeRun:
    """The probe prompts, the classifier and the base model's safe-probe code frequencies."""

    violent: list[str]
    safe: list[str]
    seeds: list[int]
    length: int
    classifier: ViolenceClassifier
    safe_codes: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    safe_rate: float = 0.0

    def flagged(self, pipeline: MotionPipeline, texts: list[str], draw: int = 0) -> tuple[np.ndarray,
                                                                                         list[torch.Tensor]]:
        """Classifier flags and base-layer codes of `texts` generated with the seeds of draw `draw` (each draw
        new seeds, so that a round measures codes it did not select on)."""
        seeds = [s + draw * len(self.seeds) for s in self.seeds]
        features, codes = generate_with_codes(pipeline, texts, seeds, self.length)
        return np.asarray(self.classifier.predict(features), dtype=bool), codes


def ban_rounds(pipeline: MotionPipeline, banned: list[int], probes: ProbeRun, params: CodeBanParams,
               progress: Progress) -> tuple[list[int], list[dict[str, Any]]]:
    """Generate the violent probes with `banned` codes banned (always), ban the codes of what is still flagged."""
    num_codes = pipeline.base.num_tokens
    history = []
    for r in range(params.rounds + 1):
        install_suppression(pipeline, banned)
        flags, codes = probes.flagged(pipeline, probes.violent, draw=r)
        rate = float(flags.mean())
        history.append({"round": r, "banned": len(banned), "violent_probe_rate": rate})
        progress(0.5 + 0.4 * (r + 1) / (params.rounds + 1), f"round {r}: {len(banned)} codes, flagged {rate:.2f}")
        if r == params.rounds or rate <= params.target * probes.safe_rate or len(banned) >= params.max_codes:
            break
        still = presence([c for c, f in zip(codes, flags, strict=True) if f], num_codes)
        still[banned] = 0
        room = min(params.k_per_round, params.max_codes - len(banned))
        new = select_codes(still, probes.safe_codes, room, min_support=2)[:room]
        if not new:
            break
        banned = sorted(set(banned) | set(new))
    return banned, history


# ---------------------------------------------------------------------------------------------- method
def load_ban_classifier(spec: str) -> ViolenceClassifier:
    path = default_model_dir("violence-classifier") if spec == "default" else Path(spec)
    require(path.is_dir(), f"code_ban needs a violence classifier folder; {spec!r} is not one")
    return ViolenceClassifier.from_pretrained(path)


def concept_probes(concept: Concept) -> tuple[list[str], list[str]] | None:
    """The probe prompts of the concept's family ("violence-extended" -> violence), None when it has none."""
    try:
        return probe_prompts(concept.name.split("-")[0])
    except ValueError:
        return None


def apply_code_ban(pipeline: MotionPipeline, concept: Concept, params: CodeBanParams, data_dir: str | Path,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Run code_ban on `pipeline` in place -> the manifest result (with seconds per phase). Concepts without
    probe prompts (custom keywords) use their captions only: no classifier, no rounds."""
    progress = progress or (lambda f, m: None)
    clock = PhaseClock()
    data_dir = Path(data_dir)
    probe_texts = concept_probes(concept)
    classifier = load_ban_classifier(params.classifier) if probe_texts is not None else None
    normalizer = Normalizer(pipeline.mean.cpu().numpy(), pipeline.std.cpu().numpy())
    stats, cached = collect_code_stats(
        data_dir, pipeline.vq, normalizer, CountSpec(params.splits, 1, params.seed, True),
        cache_dir=params.cache_dir, use_cache=params.use_cache,
        progress=lambda f, m: progress(0.3 * f, f"code statistics: {m}"))
    clock.mark("code_statistics")
    forget, forget_counts = motion_forget_mask(stats, data_dir, concept, classifier if params.motion_labels else None)
    require(bool(forget.any()) and bool((~forget).any()), "the dataset needs clips inside and outside the concept")
    banned = select_codes(stats.frequency(forget, 0), stats.frequency(~forget, 0), params.k)[: params.max_codes]
    rng = np.random.default_rng(params.seed)
    inside, outside = caption_texts(data_dir, stats.clip_ids, concept, CAPTION_LIMIT, rng)
    violent, safe = probe_texts or ([], list(rng.permutation(outside)[:60]))
    clock.mark("forget_set")
    history: list[dict[str, Any]] = []
    safe_rate = None
    if classifier is not None:
        seeds = [params.seed + i for i in range(params.probe_seeds)]
        probes = ProbeRun(violent, safe, seeds, params.length, classifier)
        progress(0.35, "safe probes")
        safe_flags, safe_codes = probes.flagged(pipeline, safe)
        probes.safe_codes, probes.safe_rate = presence(safe_codes, pipeline.base.num_tokens), float(safe_flags.mean())
        banned, history = ban_rounds(pipeline, banned, probes, params, progress)
        safe_rate = probes.safe_rate
        clock.mark("probe_rounds")
    gate_report: dict[str, Any] = {"mode": params.gate}
    if params.gate == "text":
        prompts = violent + keyword_phrases(concept)
        directions, offsets, report = train_gate(pipeline, (inside, prompts), outside, safe, params.gate_fp,
                                                 params.seed)
        install_suppression(pipeline, banned, directions, offsets)
        gate_report |= report
    else:
        install_suppression(pipeline, banned)
    clock.mark("gate")
    progress(1.0, f"banned {len(banned)} codes")
    return {"banned_codes": banned, "num_banned": len(banned), "forget_items": forget_counts,
            "safe_probe_rate": safe_rate, "rounds": history, "gate": gate_report,
            "stats_cached": cached, "seconds": clock.total(), "phase_seconds": clock.phases}
