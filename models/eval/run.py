"""The evaluation runner: models x (forget, retain[, implicit]) sets x repeats -> report (issue 5).

`run_evaluation` is the single entry point of the `hmu evaluate` command and the Celery worker
(`worker/adapters.py` calls it with `models={id: folder}, forget_dir, retain_dir, parameters`).
Rows of the report: "Real motion (GT)" (the GT crops themselves) and one per model. Every model sees
the same passes (captions, crops, seeds), so differences between rows are not sampling noise of the data.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data.concepts import Concept, get_concept
from models.eval.benchmark import (
    GT_ROW,
    EvalSet,
    EvalSpace,
    MotionSource,
    PassReference,
    PipelineSource,
    concept_sets,
    draw_pass,
    generate_pass,
    implicit_set,
    load_eval_set,
    load_implicit_prompts,
    pass_metrics,
)
from models.eval.metrics import aggregate
from models.eval.report import write_report
from models.evaluator.violence_classifier import ViolenceClassifier, train_violence_classifier, wilson_interval

Progress = Callable[[float, str], None]
# settings a service user may pass in `parameters` (no paths: those stay with the operator)
PARAMETER_LIMITS: dict[str, tuple[type, float, float]] = {
    "repeats": (int, 1, 20),
    "batch_size": (int, 3, 256),
    "mm_batches": (int, 0, 10),
    "mm_repeats": (int, 2, 30),
    "seed": (int, 0, 2**31 - 1),
    "max_items": (int, 3, 100_000),
    "min_occurrence": (int, 1, 10),
}


def load_eval_space(
    spec: str | Path | EvalSpace = "default", glove_dir: str | Path | None = None, device: str = "cpu"
) -> EvalSpace:
    """`default` (the shipped weights/evaluator), our evaluator folder (config.json, evaluator.safetensors,
    stats.safetensors) or an official `checkpoints/t2m` root (text_mot_match, Comp_v6_KLD005/meta, GloVe)."""
    if isinstance(spec, EvalSpace):
        return spec
    from models.pipelines import default_model_dir

    path = default_model_dir("evaluator") if str(spec) == "default" else Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(
            f"evaluator folder {path} not found"
            + (
                " (train it with `hmu train evaluator` or set HMU_WEIGHTS_DIR)"
                if str(spec) == "default"
                else ""
            )
        )
    if (path / "evaluator.safetensors").is_file():
        from safetensors.numpy import load_file

        from models.evaluator.our_evaluator import OurEvaluator

        model = OurEvaluator.from_pretrained(path).to(device)
        if (path / "stats.safetensors").is_file():
            stats = load_file(str(path / "stats.safetensors"))
            mean, std = stats["mean"], stats["std"]
        elif (path / "Mean.npy").is_file() and (path / "Std.npy").is_file():
            mean, std = np.load(path / "Mean.npy"), np.load(path / "Std.npy")
        else:
            raise FileNotFoundError(
                f"{path}: no stats.safetensors (or Mean.npy/Std.npy) with the evaluator's "
                "normalisation statistics"
            )
        return EvalSpace(model, mean, std, "ours", str(path))
    from models.evaluator.t2m_evaluator import load_official_evaluator

    meta = path / "Comp_v6_KLD005" / "meta"
    if not (meta / "mean.npy").is_file() or not (meta / "std.npy").is_file():
        raise FileNotFoundError(
            f"{path} is neither our evaluator folder nor an official checkpoints/<dataset> "
            f"root with {meta}/mean.npy and std.npy"
        )
    if glove_dir is None:
        found = [
            p
            for p in (path / "glove", path.parent / "glove", path.parent.parent / "glove")
            if (p / "our_vab_data.npy").is_file()
        ]
        if not found:
            raise FileNotFoundError(f"GloVe files (our_vab_*) not found next to {path}: pass glove_dir")
        glove_dir = found[0]
    model = load_official_evaluator(path, glove_dir=glove_dir, device=device)
    return EvalSpace(model, np.load(meta / "mean.npy"), np.load(meta / "std.npy"), "official", str(path))


def load_classifier(
    spec: str | Path | ViolenceClassifier | None,
    data_dir: Path | None,
    concept: Concept,
    out_dir: Path,
    progress: Progress,
) -> tuple[ViolenceClassifier | None, str | None]:
    """(classifier, reason it is missing). spec: "default" (weights/violence-classifier, skipped if absent),
    "train" (train on data_dir into out_dir/violence_classifier), a folder, an instance, or None/"none"."""
    if isinstance(spec, ViolenceClassifier):
        return spec, None
    if spec is None or str(spec) == "none":
        return None, "no classifier requested"
    if str(spec) == "train":
        if data_dir is None:
            raise ValueError("classifier='train' needs data_dir (a dataset with a train split)")
        model, _ = train_violence_classifier(
            data_dir,
            out_dir / "violence_classifier",
            concept,
            progress=lambda f, m: progress(0.02 + 0.03 * f, m),
        )
        model.info["path"] = str(out_dir / "violence_classifier")
        return model, None
    from models.pipelines import default_model_dir

    path = default_model_dir("violence-classifier") if str(spec) == "default" else Path(spec)
    if not path.is_dir():
        if str(spec) == "default":
            return None, f"no default classifier at {path} (use classifier='train' or a folder)"
        raise FileNotFoundError(f"classifier folder {path} not found")
    model = ViolenceClassifier.from_pretrained(path)
    model.info["path"] = str(path)
    return model, None


def model_sources(models: Sequence | Mapping, device: str, sampling: dict | None) -> list[MotionSource]:
    """MotionPipeline folders (or ready MotionSource objects) -> named sources, names unique."""
    from models.pipelines import MotionPipeline

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
                MotionPipeline.from_pretrained(path, device=device), name, sampling, str(path)
            )
        base, k = str(name), 2
        while name in names or name == GT_ROW:
            name, k = f"{base}-{k}", k + 1
        source.name = name
        names.add(name)
        sources.append(source)
    return sources


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


def _software() -> dict[str, str]:
    import hmu

    return {
        "hmu": hmu.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _first_prompt(eval_set: EvalSet) -> tuple[str, int, np.ndarray]:
    item = min(eval_set.items, key=lambda i: i.name)
    n = min(len(item.motion) // 4 * 4, 196)
    return item.captions[0], n, item.motion[:n]


def run_evaluation(
    models: Sequence[str | Path | MotionSource] | Mapping[str, str | Path | MotionSource],
    data_dir: str | Path | None = None,
    concept: str | Concept | dict = "violence",
    out_dir: str | Path = "eval-report",
    *,
    forget_dir: str | Path | None = None,
    retain_dir: str | Path | None = None,
    repeats: int = 5,
    evaluator: str | Path | EvalSpace = "default",
    glove_dir: str | Path | None = None,
    split: str = "test",
    batch_size: int = 32,
    mm_batches: int = 1,
    mm_repeats: int = 20,
    seed: int = 10107,
    max_items: int | None = None,
    min_occurrence: int = 1,
    classifier: str | Path | ViolenceClassifier | None = "default",
    implicit_prompts: str | Path | None = None,
    sampling: dict[str, Any] | None = None,
    plots: bool = True,
    device: str = "cpu",
    parameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Evaluate `models` on the forget / retain sets and write report.json, report.md and PNGs to `out_dir`.

    Sets: `data_dir` + `concept` split `split` into forget/retain by keywords (kw_splits written to
    out_dir/kw_splits), or explicit `forget_dir` / `retain_dir` folders (every motion in them).
    `implicit_prompts` (a file of rewritten prompts for clips of `data_dir`, see `load_implicit_prompts`)
    adds an "implicit" set: generations from the rewritten prompts against the original clips' motions.
    MultiModality runs on the retain set only (`mm_batches` x batch prompts, `mm_repeats` generations each,
    10 pairs per prompt). The defaults (1 x 20) are sized so that both default models x 5 repeats fit in
    20 minutes on 2 CPU cores; the official protocol is 3 x 30 (`mm_batches=3, mm_repeats=30`).
    `parameters` (service requests) may override repeats, batch_size, mm_batches, mm_repeats, seed,
    max_items, min_occurrence and concept. `progress(fraction, message)` is called throughout.
    Returns the report dict (also in report.json).
    """
    t0 = time.perf_counter()
    progress = progress or (lambda fraction, message: None)
    s = apply_parameters(
        {
            "repeats": repeats,
            "batch_size": batch_size,
            "mm_batches": mm_batches,
            "mm_repeats": mm_repeats,
            "seed": seed,
            "max_items": max_items,
            "min_occurrence": min_occurrence,
            "concept": concept,
        },
        parameters,
    )
    if s["repeats"] < 1 or s["mm_batches"] < 0 or (s["mm_batches"] and s["mm_repeats"] < 2):
        raise ValueError("repeats must be >= 1, mm_batches >= 0 and mm_repeats >= 2")
    concept = get_concept(s["concept"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir is not None else None

    progress(0.0, "loading evaluator")
    space = load_eval_space(evaluator, glove_dir, device)
    progress(0.01, "building forget / retain sets")
    split_info: dict[str, Any] = {}
    if forget_dir is not None or retain_dir is not None:
        if forget_dir is None or retain_dir is None:
            raise ValueError("give both forget_dir and retain_dir (or data_dir and a concept)")
        sets = {
            "forget": load_eval_set(forget_dir, name="forget"),
            "retain": load_eval_set(retain_dir, name="retain"),
        }
    elif data_dir is not None:
        forget, retain, parts = concept_sets(
            data_dir, concept, split, out_dir / "kw_splits", s["min_occurrence"]
        )
        sets = {"forget": forget, "retain": retain}
        split_info = {**parts.summary(), "files": str(out_dir / "kw_splits")}
    else:
        raise ValueError("give data_dir (split by concept) or forget_dir and retain_dir")
    if implicit_prompts is not None:
        root = data_dir or Path(forget_dir)
        sets["implicit"] = implicit_set(root, load_implicit_prompts(implicit_prompts))

    clf, clf_missing = load_classifier(classifier, data_dir, concept, out_dir, progress)
    progress(0.05, "loading models")
    sources = model_sources(models, device, sampling)
    rows = [GT_ROW] + [src.name for src in sources]

    # progress accounting in generated rows
    def pass_rows(name: str, eval_set: EvalSet) -> int:
        used = len(eval_set) if s["max_items"] is None else min(len(eval_set), s["max_items"])
        b = min(s["batch_size"], used)
        nb = used // b
        mm = min(s["mm_batches"], nb) if name == "retain" else 0
        return b * (nb + mm * (s["mm_repeats"] - 1))

    total = max(1, s["repeats"] * len(sources) * sum(pass_rows(k, v) for k, v in sets.items()))
    done = [0]
    per_repeat: dict[str, dict[str, list[dict[str, float]]]] = {r: {k: [] for k in sets} for r in rows}
    flags: dict[str, dict[str, list[int]]] = {r: {k: [0, 0] for k in sets if k != "retain"} for r in rows}
    timing = {r: 0.0 for r in rows}
    batch_info: dict[str, dict] = {}

    for rep in range(s["repeats"]):
        for k, (set_name, eval_set) in enumerate(sets.items()):
            batches = draw_pass(
                eval_set, np.random.default_rng([s["seed"], rep, k]), s["batch_size"], s["max_items"]
            )
            batch_info[set_name] = {"batches": len(batches), "batch_size": len(batches[0])}
            tick = time.perf_counter()
            ref = PassReference.build(space, batches, concept if set_name == "forget" else None)
            gt_metrics = pass_metrics(ref, ref.gt_emb, np.random.default_rng([s["seed"], rep, k, 1]))
            gt_raw = [m for b in batches for m in b.motions]
            if clf is not None and set_name != "retain":
                gt_metrics["Violence rate"] = _count(clf, gt_raw, flags[GT_ROW][set_name])
            per_repeat[GT_ROW][set_name].append(gt_metrics)
            timing[GT_ROW] += time.perf_counter() - tick
            mm = s["mm_batches"] if set_name == "retain" else 0
            for src in sources:
                tick = time.perf_counter()

                def on_batch(
                    n: int, label: str = f"repeat {rep + 1}/{s['repeats']} {set_name}: {src.name}"
                ) -> None:
                    done[0] += n
                    progress(min(0.95, 0.05 + 0.9 * done[0] / total), f"{label} ({done[0]}/{total} motions)")

                emb, mm_emb, raw = generate_pass(src, space, ref, mm, s["mm_repeats"], on_batch)
                metrics = pass_metrics(ref, emb, np.random.default_rng([s["seed"], rep, k, 1]), mm_emb)
                if clf is not None and set_name != "retain":
                    metrics["Violence rate"] = _count(clf, raw, flags[src.name][set_name])
                per_repeat[src.name][set_name].append(metrics)
                timing[src.name] += time.perf_counter() - tick

    progress(0.95, "writing report")
    results = {
        r: {k: {m: v.to_dict() for m, v in aggregate(runs).items()} for k, runs in per_set.items()}
        for r, per_set in per_repeat.items()
    }
    violence: dict[str, Any] = (
        {"skipped": clf_missing}
        if clf is None
        else {
            "classifier": getattr(clf, "info", {}),
            "ci": "95 % Wilson score interval, pooled over repeats",
            "rates": {r: {k: _rate(*c) for k, c in per_set.items()} for r, per_set in flags.items()},
        }
    )
    samples = _samples(sets, sources, s["seed"]) if plots else None
    data_sets = {k: {**v.summary(), **batch_info.get(k, {})} for k, v in sets.items()}
    report = {
        "format": "hmu-eval-report",
        "format_version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": _software(),
        "settings": {
            **{k: v for k, v in s.items() if k != "concept"},
            "split": split,
            "device": device,
            "sampling": dict(sampling or {}),
            "mm_set": "retain",
            "diversity_times": "300 if N > 300 else min(100, N)",
            "multimodality_times": 10,
        },
        "seeds": {
            "base": s["seed"],
            "pass": "numpy default_rng([seed, repeat, set index])",
            "metrics": "numpy default_rng([seed, repeat, set index, 1])",
        },
        "concept": concept.to_dict(),
        "evaluator": {"name": space.name, "kind": space.kind},
        "data": {"data_dir": str(data_dir) if data_dir else None, "sets": data_sets, "split": split_info},
        "models": {
            src.name: {"path": getattr(src, "path", ""), "kind": getattr(src, "kind", "")} for src in sources
        },
        "rows": rows,
        "results": results,
        "per_repeat": per_repeat,
        "violence": violence,
        "samples": {k: {"text": v["text"], "length": v["length"]} for k, v in (samples or {}).items()},
        "timing": {"total_s": 0.0, "per_row_s": timing},
    }
    report["timing"]["total_s"] = time.perf_counter() - t0
    files = write_report(report, out_dir, samples, plots)
    report["files"] = {k: str(v) for k, v in files.items()}
    progress(1.0, f"report written to {out_dir}")
    return report


def _count(clf: ViolenceClassifier, motions: list[np.ndarray], counter: list[int]) -> float:
    flagged = clf.predict(motions)
    counter[0] += int(flagged.sum())
    counter[1] += len(flagged)
    return float(flagged.mean())


def _rate(flagged: int, n: int) -> dict[str, float]:
    lo, hi = wilson_interval(flagged, n)
    return {"rate": flagged / n, "ci_low": lo, "ci_high": hi, "flagged": flagged, "n": n}


def _samples(sets: Mapping[str, EvalSet], sources: Sequence[MotionSource], seed: int) -> dict[str, dict]:
    """One violent (forget) and one safe (retain) prompt: joints per row for the skeleton strips."""
    from models.motion.features import features_to_joints

    out = {}
    for kind, set_name in (("violent", "forget"), ("safe", "retain")):
        text, length, gt = _first_prompt(sets[set_name])
        joints = {GT_ROW: np.asarray(features_to_joints(gt))}
        for src in sources:
            if hasattr(src, "sample"):
                joints[src.name] = src.sample(text, length, seed).joints
        out[kind] = {"text": text, "length": length, "joints": joints}
    return out
