"""The evaluation runner: models x (forget, retain[, implicit]) sets x repeats -> report (issue 5).

`run_evaluation(EvalConfig(...), progress)` is the single entry point of the `hmu evaluate` command and the
Celery worker. Stages: sets -> passes -> scores -> report. Rows of the report: "Real motion (GT)" (the GT
crops themselves) and one per model. Every model sees the same passes (captions, crops, seeds), so
differences between rows are not sampling noise of the data.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.prompt_sets import available_prompt_sets
from models.eval.classifier import count_flagged, load_classifier, wilson_rate
from models.eval.config import EvalConfig
from models.eval.generation import generate_pass
from models.eval.implicit import implicit_set, load_implicit_prompts
from models.eval.metrics import aggregate
from models.eval.passes import draw_pass
from models.eval.prompts import PromptRun, prompt_stage
from models.eval.report import write_report
from models.eval.scores import PassReference, pass_metrics
from models.eval.sets import EvalSet, concept_sets, load_eval_set
from models.eval.sources import GT_ROW, MotionSource, model_sources
from models.eval.space import EvalSpace, load_eval_space
from models.evaluator.violence_classifier import ViolenceClassifier
from models.motion.features import features_to_joints
from models.version import package_version

Progress = Callable[[float, str], None]


def run_evaluation(config: EvalConfig, progress: Progress | None = None) -> dict:
    """Evaluate `config.models` on the forget / retain sets and write report.json, report.md and PNGs to
    `config.out_dir`. `progress(fraction, message)` is called throughout. Returns the report dict."""
    t0 = time.perf_counter()
    progress = progress or (lambda fraction, message: None)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    progress(0.0, "loading evaluator")
    space = load_eval_space(config.evaluator, config.glove_dir, config.device)
    progress(0.01, "building forget / retain sets")
    sets, split_info = build_sets(config)
    clf, clf_missing = load_classifier(
        config.classifier, config.data_dir, config.resolved_concept, config.out_dir, progress
    )
    progress(0.05, "loading models")
    sources = model_sources(config.models, config.device, config.sampling, config.decode_mode(space.kind))
    passes = run_passes(config, space, sets, sources, clf, progress)
    progress(0.95, "writing report")
    samples = _samples(sets, sources, config.seed) if config.plots else None
    report = build_report(config, space, sets, sources, passes, split_info, samples)
    report["violence"] = violence_summary(passes.flags, clf, clf_missing)
    if config.prompt_seeds:
        report.update(prompt_sets_and_stability(config, sources, clf, progress))
    report["timing"]["total_s"] = time.perf_counter() - t0
    files = write_report(report, config.out_dir, samples, config.plots)
    report["files"] = {k: str(v) for k, v in files.items()}
    progress(1.0, f"report written to {config.out_dir}")
    return report


# ---------------------------------------------------------------------------------------------- sets
def build_sets(config: EvalConfig) -> tuple[dict[str, EvalSet], dict[str, Any]]:
    """The forget / retain (and implicit) sets of the run and the keyword split's summary."""
    split_info: dict[str, Any] = {}
    if config.forget_dir is not None:
        sets = {
            "forget": load_eval_set(config.forget_dir, name="forget"),
            "retain": load_eval_set(config.retain_dir, name="retain"),
        }
    else:
        kw_dir = config.out_dir / "kw_splits"
        forget, retain, parts = concept_sets(
            config.data_dir, config.resolved_concept, config.split, kw_dir, config.min_occurrence
        )
        sets = {"forget": forget, "retain": retain}
        split_info = {**parts.summary(), "files": str(kw_dir)}
    if config.implicit_prompts is not None:
        root = config.data_dir or config.forget_dir
        sets["implicit"] = implicit_set(root, load_implicit_prompts(config.implicit_prompts))
    return sets, split_info


# ---------------------------------------------------------------------------------------------- passes
@dataclass
class PassResults:
    """Per row and set: the metrics of every repeat, the classifier's pooled counts, and timings."""

    per_repeat: dict[str, dict[str, list[dict[str, float]]]]
    flags: dict[str, dict[str, list[int]]]  # row -> set -> [flagged, n] (not for the retain set)
    timing: dict[str, float]
    batch_info: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def empty(cls, rows: list[str], sets: Mapping[str, EvalSet]) -> PassResults:
        return cls({r: {k: [] for k in sets} for r in rows},
                   {r: {k: [0, 0] for k in sets if k != "retain"} for r in rows}, {r: 0.0 for r in rows})


class _Progress:
    """Progress of the passes in generated rows (0.05 .. 0.95 of the run)."""

    def __init__(self, config: EvalConfig, sets: Mapping[str, EvalSet], sources: int, progress: Progress):
        self.total = max(1, config.repeats * sources * sum(self._rows(config, k, v) for k, v in sets.items()))
        self.done, self.progress = 0, progress

    @staticmethod
    def _rows(config: EvalConfig, name: str, eval_set: EvalSet) -> int:
        used = len(eval_set) if config.max_items is None else min(len(eval_set), config.max_items)
        b = min(config.batch_size, used)
        nb = used // b
        mm = min(config.mm_batches, nb) if name == "retain" else 0
        return b * (nb + mm * (config.mm_repeats - 1))

    def on_batch(self, label: str) -> Callable[[int], None]:
        def report(n: int) -> None:
            self.done += n
            fraction = min(0.95, 0.05 + 0.9 * self.done / self.total)
            self.progress(fraction, f"{label} ({self.done}/{self.total} motions)")

        return report


def run_passes(config: EvalConfig, space: EvalSpace, sets: Mapping[str, EvalSet], sources: Sequence[MotionSource],
               clf: ViolenceClassifier | None, progress: Progress) -> PassResults:
    """Every repeat x set: draw the pass, score the GT crops, then generate and score each model."""
    out = PassResults.empty([GT_ROW] + [src.name for src in sources], sets)
    tracker = _Progress(config, sets, len(sources), progress)
    for rep in range(config.repeats):
        for k, (set_name, eval_set) in enumerate(sets.items()):
            batches = draw_pass(eval_set, np.random.default_rng([config.seed, rep, k]), config.batch_size,
                                config.max_items)
            out.batch_info[set_name] = {"batches": len(batches), "batch_size": len(batches[0])}
            tick = time.perf_counter()
            ref = PassReference.build(space, batches, config.resolved_concept if set_name == "forget" else None)
            gt_metrics = pass_metrics(ref, ref.gt_emb, np.random.default_rng([config.seed, rep, k, 1]))
            gt_raw = [m for b in batches for m in b.motions]
            _record(out, GT_ROW, set_name, gt_metrics, clf, gt_raw, tick)
            mm = config.mm_batches if set_name == "retain" else 0
            for src in sources:
                tick = time.perf_counter()
                on_batch = tracker.on_batch(f"repeat {rep + 1}/{config.repeats} {set_name}: {src.name}")
                emb, mm_emb, raw = generate_pass(src, space, ref, mm, config.mm_repeats, on_batch)
                metrics = pass_metrics(ref, emb, np.random.default_rng([config.seed, rep, k, 1]), mm_emb)
                _record(out, src.name, set_name, metrics, clf, raw, tick)
    return out


def _record(out: PassResults, row: str, set_name: str, metrics: dict[str, float], clf: ViolenceClassifier | None,
            motions: list[np.ndarray], tick: float) -> None:
    """Add the violence rate (not on the retain set), store one repeat's metrics and its time."""
    if clf is not None and set_name != "retain":
        metrics["Violence rate"] = count_flagged(clf, motions, out.flags[row][set_name])
    out.per_repeat[row][set_name].append(metrics)
    out.timing[row] += time.perf_counter() - tick


def prompt_sets_and_stability(config: EvalConfig, sources: Sequence[MotionSource], clf: ViolenceClassifier | None,
                              progress: Progress) -> dict[str, Any]:
    """report["prompt_violence"] (frozen prompt sets, raw and net rates) and report["stability"] (issue 13)."""
    concept = config.resolved_concept.name
    if concept not in available_prompt_sets():
        reason = f"no frozen prompt sets for concept {concept!r}"
        return {"prompt_violence": {"skipped": reason}, "stability": {"skipped": reason}}
    seeds = [config.seed + k for k in range(config.prompt_seeds)]
    run = PromptRun.for_concept(concept, seeds, config.prompt_length, config.adversarial_prompts)
    return prompt_stage(run, sources, clf, base_row(config.base, sources), config.batch_size, progress)


def base_row(base: str | None, sources: Sequence[MotionSource]) -> str | None:
    """The row name of the base model: a source's name, or the source loaded from that folder."""
    if base is None:
        return None
    for src in sources:
        if base == src.name or (getattr(src, "path", "") and Path(src.path) == Path(base)):
            return src.name
    raise ValueError(f"base {base!r} is neither the name nor the folder of an evaluated model")


# ---------------------------------------------------------------------------------------------- scores
def aggregate_results(per_repeat: Mapping[str, Mapping[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """Mean and 95 % confidence interval over the repeats, per row, set and metric."""
    return {
        r: {k: {m: v.to_dict() for m, v in aggregate(runs).items()} for k, runs in per_set.items()}
        for r, per_set in per_repeat.items()
    }


def violence_summary(flags: Mapping[str, Mapping[str, list[int]]], clf: ViolenceClassifier | None,
                     missing: str | None) -> dict[str, Any]:
    """Pooled violence rates with Wilson intervals, or why there are none."""
    if clf is None:
        return {"skipped": missing}
    return {
        "classifier": getattr(clf, "info", {}),
        "ci": "95 % Wilson score interval, pooled over repeats",
        "rates": {r: {k: wilson_rate(*c) for k, c in per_set.items()} for r, per_set in flags.items()},
    }


# ---------------------------------------------------------------------------------------------- report
def build_report(config: EvalConfig, space: EvalSpace, sets: Mapping[str, EvalSet], sources: Sequence[MotionSource],
                 passes: PassResults, split_info: dict[str, Any], samples: dict[str, dict] | None) -> dict:
    """The report dict (report.json) of a run; `violence` and the total time are filled in by the caller."""
    data_sets = {k: {**v.summary(), **passes.batch_info.get(k, {})} for k, v in sets.items()}
    return {
        "format": "hmu-eval-report",
        "format_version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": _software(),
        "settings": {
            **config.settings(),
            "split": config.split,
            "device": config.device,
            "sampling": dict(config.sampling or {}),
            "decode": config.decode_mode(space.kind),
            "mm_set": "retain",
            "diversity_times": "300 if N > 300 else min(100, N)",
            "multimodality_times": 10,
        },
        "seeds": {
            "base": config.seed,
            "pass": "numpy default_rng([seed, repeat, set index])",
            "metrics": "numpy default_rng([seed, repeat, set index, 1])",
        },
        "concept": config.resolved_concept.to_dict(),
        "evaluator": {"name": space.name, "kind": space.kind},
        "data": {"data_dir": str(config.data_dir) if config.data_dir else None, "sets": data_sets,
                 "split": split_info},
        "models": {
            src.name: {"path": getattr(src, "path", ""), "kind": getattr(src, "kind", "")} for src in sources
        },
        "rows": [GT_ROW] + [src.name for src in sources],
        "results": aggregate_results(passes.per_repeat),
        "per_repeat": passes.per_repeat,
        "violence": None,
        "samples": {k: {"text": v["text"], "length": v["length"]} for k, v in (samples or {}).items()},
        "timing": {"total_s": 0.0, "per_row_s": passes.timing},
    }


def _software() -> dict[str, str]:
    return {
        "hmu": package_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _first_prompt(eval_set: EvalSet) -> tuple[str, int, np.ndarray]:
    item = min(eval_set.items, key=lambda i: i.name)
    n = min(len(item.motion) // 4 * 4, 196)
    return item.captions[0], n, item.motion[:n]


def _samples(sets: Mapping[str, EvalSet], sources: Sequence[MotionSource], seed: int) -> dict[str, dict]:
    """One violent (forget) and one safe (retain) prompt: joints per row for the skeleton strips."""
    out = {}
    for kind, set_name in (("violent", "forget"), ("safe", "retain")):
        text, length, gt = _first_prompt(sets[set_name])
        joints = {GT_ROW: np.asarray(features_to_joints(gt))}
        for src in sources:
            if hasattr(src, "sample"):
                joints[src.name] = src.sample(text, length, seed).joints
        out[kind] = {"text": text, "length": length, "joints": joints}
    return out
