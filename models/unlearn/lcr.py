"""Latent Code Replacement (LCR, the HMU paper's method; unlearning-methods.md §4).

1. Code statistics (`code_stats.py`): f_D(n) = encoded motions of D in which code n occurs.
2. Scores per layer: s1 = f_F / (f_R + eps), s2 = (f_F / sum f_F) / (f_R / sum f_R + eps); the selected
   set V_l is the union of the top-k by each (compositional: one selection per sub-concept, then the union).
3. Replacement in the RVQ codebook: e[n] <- e[d] + alpha * sigma_l * z (`replace`), or the projection
   away from the violent direction (`orth`). Only the VQ codebook changes; the transformers do not.

The original rows are returned as a private overlay (`save_overlay` / `restore_overlay`) so that the full
model can be restored bit-exactly; the public checkpoint never contains them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.common.sampling_config import SamplingConfig
from models.data.concepts import Concept
from models.data.forget_retain import caption_lines, is_forget
from models.io.native import sha256_file
from models.motion.normalize import Normalizer
from models.pipelines import UNIT_LENGTH, MotionPipeline, make_generators
from models.unlearn.code_stats import CodeStats, CountSpec, collect_code_stats
from models.unlearn.params import MethodParams, one_of, require

Progress = Callable[[float, str], None]
EPS = 1e-8
SCORES = ("both", "s1", "s2")
MODES = ("replace", "orth")
DEST_STRATEGIES = ("random_shared", "random_per_code", "fixed", "lowest_score")
OVERLAY_FILE = "lcr_overlay.safetensors"


@dataclass
class LCRParams(MethodParams):
    """LCR settings. Defaults follow the method; `dest_strategy="fixed"`, `dest_code=0`, `repeats=20`,
    `exclude_padding=False`, `compositional_retain="sub"` and match_mode `substring` reproduce the paper
    code."""

    method = "lcr"
    k: int = 16  # top-k per layer and per score (paper sweep 4..64)
    k_per_sub: dict[str, int] | None = None  # compositional LCR: sub-concept -> k (e.g. kick 16, punch 8)
    compositional_retain: str = "concept"  # retain set of a sub-concept: "concept" (no sub-concept of
    # the concept) or "sub" (all but this sub-concept; HMU)
    layers: list[int] = field(default_factory=lambda: [0])  # RVQ layers to prune (0 = base layer)
    score: str = "both"  # both | s1 | s2
    min_support: int = 1  # keep codes with f_F(n) >= min_support
    mode: str = "replace"  # replace | orth
    alpha: float = 1.0  # noise scale (replace) or projection strength (orth)
    dest_strategy: str = "random_shared"  # random_shared | random_per_code | fixed | lowest_score
    dest_code: int = 0  # for dest_strategy = fixed
    seed: int = 0
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    repeats: int = 1  # random crop/caption draws per item (HMU: 20)
    exclude_padding: bool = True  # HMU counts the zero-padded tail's codes too
    min_occurrence: int = 1  # caption lines that must match for a pair to be "forget"
    match_mode: str | None = None  # override the concept's match mode (word | substring)
    use_cache: bool = True
    cache_dir: str | None = None

    def validate(self) -> None:
        require(1 <= self.k <= 100_000, f"k must be >= 1, got {self.k}")
        if self.k_per_sub is not None:
            require(
                bool(self.k_per_sub) and all(v >= 1 for v in self.k_per_sub.values()),
                f"k_per_sub must map sub-concepts to k >= 1, got {self.k_per_sub}",
            )
        one_of("compositional_retain", self.compositional_retain, ("concept", "sub"))
        require(
            bool(self.layers)
            and all(q >= 0 for q in self.layers)
            and len(set(self.layers)) == len(self.layers),
            f"layers must be distinct RVQ layer indices >= 0, got {self.layers}",
        )
        one_of("score", self.score, SCORES)
        one_of("mode", self.mode, MODES)
        one_of("dest_strategy", self.dest_strategy, DEST_STRATEGIES)
        require(self.min_support >= 1, f"min_support must be >= 1, got {self.min_support}")
        require(0.0 <= self.alpha <= 100.0, f"alpha must be in [0, 100], got {self.alpha}")
        require(self.dest_code >= 0, f"dest_code must be >= 0, got {self.dest_code}")
        require(1 <= self.repeats <= 1000, f"repeats must be in 1..1000, got {self.repeats}")
        require(
            bool(self.splits) and all(s in ("train", "val", "test", "train_val", "all") for s in self.splits),
            f"splits must be a non-empty list of train | val | test | train_val | all, got {self.splits}",
        )
        require(self.min_occurrence >= 1, f"min_occurrence must be >= 1, got {self.min_occurrence}")
        if self.match_mode is not None:
            one_of("match_mode", self.match_mode, ("word", "substring"))


# ---------------------------------------------------------------------------------------------- selection
def code_scores(f_forget: torch.Tensor, f_retain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s1, s2) per code from forget / retain frequencies (K,)."""
    s1 = f_forget / (f_retain + EPS)
    s2 = (f_forget / max(float(f_forget.sum()), EPS)) / (f_retain / max(float(f_retain.sum()), EPS) + EPS)
    return s1, s2


def top_k(score: torch.Tensor, k: int, eligible: torch.Tensor) -> list[int]:
    """Indices of the k highest scores among `eligible` codes (ties: lower index first)."""
    idx = torch.nonzero(eligible).flatten().numpy()
    order = np.lexsort((idx, -score[idx].numpy()))
    return sorted(int(i) for i in idx[order[:k]])


def select_codes(
    f_forget: torch.Tensor, f_retain: torch.Tensor, k: int, score: str = "both", min_support: int = 1
) -> list[int]:
    """V_l: union of the top-k codes by s1 and by s2 (or one of them), among codes with f_F >= min_support."""
    s1, s2 = code_scores(f_forget, f_retain)
    eligible = f_forget >= min_support
    chosen: set[int] = set()
    if score in ("both", "s1"):
        chosen |= set(top_k(s1, k, eligible))
    if score in ("both", "s2"):
        chosen |= set(top_k(s2, k, eligible))
    return sorted(chosen)


def label_items(
    stats: CodeStats, data_dir: str | Path, concept: Concept, min_occurrence: int = 1
) -> torch.Tensor:
    """Forget mask (N,) of the statistics' items: a clip is forget if its caption lines mention `concept`."""
    cache: dict[str, bool] = {}
    for clip in set(stats.clip_ids):
        cache[clip] = is_forget(caption_lines(data_dir, clip), concept, min_occurrence)
    return torch.tensor([cache[c] for c in stats.clip_ids], dtype=torch.bool)


def select_violent_codes(
    stats: CodeStats, data_dir: str | Path, concept: Concept, params: LCRParams
) -> tuple[dict[int, list[int]], dict[str, Any]]:
    """Selected codes per layer and a summary (item counts per part). Compositional when k_per_sub is set."""
    n_layers = stats.counts.shape[1]
    bad = [q for q in params.layers if q >= n_layers]
    require(not bad, f"layers {bad} do not exist: the model has {n_layers} RVQ layers (0..{n_layers - 1})")
    in_concept = label_items(stats, data_dir, concept, params.min_occurrence)
    parts: list[tuple[str, torch.Tensor, torch.Tensor, int]] = []
    if params.k_per_sub is None:
        parts.append((concept.name, in_concept, ~in_concept, params.k))
    else:
        unknown = sorted(set(params.k_per_sub) - set(concept.sub_concepts))
        require(
            not unknown,
            f"k_per_sub names unknown sub-concepts {unknown}; {concept.name!r} has "
            f"{sorted(concept.sub_concepts)}",
        )
        for sub_name, k in params.k_per_sub.items():
            forget = label_items(stats, data_dir, concept.sub(sub_name), params.min_occurrence)
            retain = ~in_concept if params.compositional_retain == "concept" else ~forget
            parts.append((sub_name, forget, retain, k))
    selected: dict[int, set[int]] = {q: set() for q in params.layers}
    summary: dict[str, Any] = {"items": len(stats.names), "forget_items": int(in_concept.sum()), "parts": {}}
    for name, forget, retain, k in parts:
        require(bool(forget.any()), f"no item of the statistics' splits matches {name!r}: nothing to select")
        require(bool(retain.any()), f"every item matches {name!r}: there is no retain set")
        per_layer = {}
        for q in params.layers:
            codes = select_codes(
                stats.frequency(forget, q), stats.frequency(retain, q), k, params.score, params.min_support
            )
            selected[q] |= set(codes)
            per_layer[str(q)] = codes
        summary["parts"][name] = {
            "k": k,
            "forget_items": int(forget.sum()),
            "retain_items": int(retain.sum()),
            "codes": per_layer,
        }
    return {q: sorted(v) for q, v in selected.items()}, summary


# ---------------------------------------------------------------------------------------------- replacement
def _destinations(
    strategy: str,
    chosen: list[int],
    nb_code: int,
    dest_code: int,
    gen: torch.Generator,
    safe_score: torch.Tensor | None,
) -> list[int]:
    safe = [n for n in range(nb_code) if n not in set(chosen)]
    require(bool(safe), "every code of the layer is selected: no safe destination is left")

    def draw() -> int:
        return safe[int(torch.randint(len(safe), (), generator=gen))]

    if strategy == "fixed":
        require(dest_code < nb_code, f"dest_code {dest_code} is not a code (nb_code = {nb_code})")
        return [dest_code if dest_code in safe else draw()] * len(chosen)
    if strategy == "random_shared":
        return [draw()] * len(chosen)
    if strategy == "random_per_code":
        return [draw() for _ in chosen]
    score = safe_score if safe_score is not None else torch.zeros(nb_code)
    best = min(safe, key=lambda n: (float(score[n]), n))  # the code most typical of the retain set
    return [best] * len(chosen)


@torch.no_grad()
def replace_codes(
    vq: torch.nn.Module,
    selected: dict[int, list[int]],
    params: LCRParams,
    safe_scores: dict[int, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Edit the codebook rows of `selected` in place -> (overlay tensors of the original rows, summary)."""
    overlay: dict[str, torch.Tensor] = {}
    summary: dict[str, Any] = {"destinations": {}, "sigma": {}}
    for q, chosen in selected.items():
        if not chosen:
            continue
        book = vq.quantizer.layers[q].codebook  # (K, code_dim)
        gen = torch.Generator().manual_seed(int(params.seed) * 1009 + q)
        idx = torch.tensor(chosen, dtype=torch.long)
        original = book[idx].detach().clone()
        overlay[f"layer{q}.indices"] = idx.clone()
        overlay[f"layer{q}.rows"] = original.cpu().contiguous()
        if params.mode == "replace":
            dest = _destinations(
                params.dest_strategy,
                chosen,
                book.shape[0],
                params.dest_code,
                gen,
                None if safe_scores is None else safe_scores.get(q),
            )
            sigma = float(book.std())
            noise = torch.randn(len(chosen), book.shape[1], generator=gen).to(book)
            book[idx] = book[torch.tensor(dest)] + params.alpha * sigma * noise
            summary["destinations"][str(q)] = dest
            summary["sigma"][str(q)] = sigma
        else:
            u = original.mean(0)
            u = u / u.norm().clamp(min=EPS)
            book[idx] = original - params.alpha * (original @ u).unsqueeze(1) * u
    return overlay, summary


def apply_lcr(
    pipeline, concept: Concept, params: LCRParams, data_dir: str | Path, progress: Progress | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Run LCR on `pipeline` in place -> (manifest result, private overlay tensors)."""
    if params.match_mode is not None:
        concept = concept.with_mode(params.match_mode)
    normalizer = Normalizer(pipeline.mean.cpu().numpy(), pipeline.std.cpu().numpy())
    stats, cached = collect_code_stats(
        data_dir,
        pipeline.vq,
        normalizer,
        CountSpec(params.splits, params.repeats, params.seed, params.exclude_padding),
        cache_dir=params.cache_dir,
        use_cache=params.use_cache,
        progress=progress,
    )
    selected, summary = select_violent_codes(stats, data_dir, concept, params)
    safe_scores = None
    if params.dest_strategy == "lowest_score":
        forget = label_items(stats, data_dir, concept, params.min_occurrence)
        safe_scores = {}
        for q in params.layers:
            f_retain = stats.frequency(~forget, q)
            s1, _ = code_scores(stats.frequency(forget, q), f_retain)
            safe_scores[q] = torch.where(f_retain > 0, s1, torch.inf)
    overlay, replaced = replace_codes(pipeline.vq, selected, params, safe_scores)
    result = {
        "selected_codes": {str(q): v for q, v in selected.items()},
        "num_selected": sum(len(v) for v in selected.values()),
        "stats_cached": cached,
        "stats_repeats": stats.repeats,
        **summary,
        **replaced,
    }
    return result, overlay


# ---------------------------------------------------------------------------------------------- overlay
def save_overlay(overlay: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write the original codebook rows (private; keep this file away from any public copy of the model)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in overlay.items()},
        str(path),
        metadata={"format": "hmu-lcr-overlay", "info": json.dumps(metadata, sort_keys=True)},
    )
    return path


def read_overlay(path: str | Path) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], dict[str, Any]]:
    """-> ({layer: (indices, original rows)}, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"overlay file {path} not found")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("format") != "hmu-lcr-overlay":
            raise ValueError(f"{path} is not an LCR overlay file")
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    layers = sorted({int(k.split(".")[0][5:]) for k in tensors})
    return {q: (tensors[f"layer{q}.indices"], tensors[f"layer{q}.rows"]) for q in layers}, json.loads(
        meta["info"]
    )


@torch.no_grad()
def apply_overlay(pipeline, overlay_file: str | Path):
    """Write the overlay's original rows back into `pipeline`'s codebooks (in place) and return it."""
    layers, meta = read_overlay(overlay_file)
    expected = meta.get("public_vq_sha256")
    if expected and pipeline.manifest.get("files", {}).get("vq.safetensors") not in (None, expected):
        raise ValueError(
            f"overlay {overlay_file} belongs to another checkpoint (vq.safetensors hash differs)"
        )
    for q, (idx, rows) in layers.items():
        book = pipeline.vq.quantizer.layers[q].codebook
        if int(idx.max()) >= book.shape[0] or rows.shape != (len(idx), book.shape[1]):
            raise ValueError(f"overlay layer {q} does not fit the model's codebook {tuple(book.shape)}")
        book[idx.long()] = rows.to(book)
    pipeline.manifest = {**pipeline.manifest, "restored_from_overlay": True}
    return pipeline


def restore_overlay(public_dir: str | Path, overlay_file: str | Path, verify: bool = True):
    """Load the public LCR checkpoint and put the original codebook rows back -> the full (parent) pipeline.

    verify: check that the public vq.safetensors is the one the overlay was written for.
    """
    public_dir = Path(public_dir)
    _, meta = read_overlay(overlay_file)
    if verify and meta.get("public_vq_sha256"):
        actual = sha256_file(public_dir / "vq.safetensors")
        if actual != meta["public_vq_sha256"]:
            raise ValueError(f"overlay {overlay_file} was written for another checkpoint than {public_dir}")
    return apply_overlay(MotionPipeline.from_pretrained(public_dir), overlay_file)


# ---------------------------------------------------------------------------------------------- injection
@torch.no_grad()
def inject_codes(
    pipeline,
    texts: Sequence[str],
    lengths: Sequence[int],
    codes: Sequence[int],
    positions: Sequence[int] | None = None,
    seed: int = 0,
    regenerate_residual: bool = True,
    **sampling: Any,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Violence injection (diagnostic, §4.4): generate base tokens for safe `texts`, overwrite layer-0
    `positions` (default: every valid position) with `codes` (cycled), decode.

    regenerate_residual: re-sample the residual layers on the edited base tokens (else keep the old ones).
    -> (ids (B, L, Q) with -1 at pads, de-normalised features per text (4 L_b, D)).
    """
    nb_code = pipeline.vq.cfg.nb_code
    require(
        bool(codes) and all(0 <= int(c) < nb_code for c in codes), f"codes must lie in [0, {nb_code - 1}]"
    )
    require(len(lengths) == len(texts), f"got {len(lengths)} lengths for {len(texts)} texts")
    knobs = pipeline.resolve_sampling(**sampling)
    generators = make_generators([seed + i for i in range(len(texts))])
    cond = pipeline.encode_text(list(texts))
    token_lens = torch.tensor([int(n) // UNIT_LENGTH for n in lengths], device=pipeline.device)
    require(bool((token_lens >= 1).all()), f"lengths must be >= {UNIT_LENGTH} frames")
    all_ids, token_lens = pipeline.generate_tokens(cond, token_lens, generators, knobs)
    base = all_ids[..., 0].clone()
    code_t = torch.tensor([int(c) for c in codes], device=base.device)
    for b in range(base.shape[0]):
        n = int(token_lens[b])
        pos = [p for p in (positions if positions is not None else range(n)) if 0 <= p < n]
        require(bool(pos), f"no injection position lies inside text {b}'s {n} tokens")
        base[b, pos] = code_t[torch.arange(len(pos)) % len(code_t)]
    if regenerate_residual:
        all_ids = pipeline.residual.generate(
            base, cond, token_lens, SamplingConfig(res_cond_scale=knobs.res_cond_scale), generator=generators
        )
    else:
        all_ids = all_ids.clone()
        all_ids[..., 0] = base
    return all_ids, pipeline.decode_by_length(all_ids, token_lens)
