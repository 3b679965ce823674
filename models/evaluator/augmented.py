"""The violence classifier for *generated* motion (issue 13): generated-style augmentation and a grouped hold-out.

Generated motion is smoother than mocap: it passes through a VQ-VAE. Every clip is therefore also encoded and
decoded with a shipped model's RVQ-VAE (all residual layers, argmin codes), and the reconstruction is a
training example with the clip's label. The hold-out is made per *source clip*: the windows of one clip and
their mirrors (`M` prefix), and their reconstructions, all land on the same side, so held-out recall is not
the recall of a mirror the classifier has seen. Reported on the held-out side: recall on violent clips and
false-positive rate on safe clips, real and reconstructed, and the false-positive rate on generations of the
concept's frozen safe prompts (`models/data/prompts/<concept>.json`), each with a 95 % Wilson interval.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.data.concepts import Concept, get_concept
from models.data.datasets import check_data_dir, load_features, read_split
from models.data.prompt_sets import available_prompt_sets, load_prompt_sets
from models.evaluator.violence_classifier import (
    ClassifierConfig,
    ClassifierTraining,
    ViolenceClassifier,
    classification_metrics,
    clip_labels,
    fit_classifier,
    wilson_interval,
)
from models.pipelines import MotionPipeline, default_model_dir

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------------------------- grouping
def group_key(clip_id: str, record: Mapping | None) -> str:
    """The source clip a motion comes from: `source/source_clip` from its meta.json record (the dataset
    builder's windows and mirrors share it), else the id without the mirror prefix `M`."""
    if record and record.get("source_clip") is not None:
        return f"{record.get('source', '')}/{record['source_clip']}"
    return clip_id[1:] if clip_id.startswith("M") and len(clip_id) > 1 else clip_id


def grouped_split(
    ids: Sequence[str], groups: Sequence[str], strata: Sequence[str], fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices (train, held out): whole groups are held out, per stratum round(fraction * groups) of them (at
    least one, and at least one left for training, when a stratum has two or more), in salted-hash order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must lie in (0, 1), got {fraction}")
    if not len(ids) == len(groups) == len(strata):
        raise ValueError("ids, groups and strata must have the same length")
    stratum_groups: dict[str, set[str]] = defaultdict(set)
    for g, s in zip(groups, strata, strict=True):
        stratum_groups[s].add(g)
    held: set[str] = set()
    for s in sorted(stratum_groups):
        order = sorted(stratum_groups[s] - held,
                       key=lambda g: (hashlib.sha256(f"{seed}/{g}".encode()).digest(), g))
        n = len(order)
        k = min(max(1, int(n * fraction + 0.5)), n - 1) if n >= 2 else 0
        held.update(order[:k])
    train = [i for i, g in enumerate(groups) if g not in held]
    return train, [i for i, g in enumerate(groups) if g in held]


# ---------------------------------------------------------------------------------------------- augmentation
@torch.no_grad()
def vq_reconstructions(pipeline: MotionPipeline, motions: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each raw (T, D) motion encoded and decoded by the pipeline's RVQ-VAE (every residual layer), cut to a
    multiple of the VQ's unit length -> raw (T', D) features."""
    unit = pipeline.vq.cfg.unit_length
    out = []
    for m in motions:
        n = len(m) // unit * unit
        if n < unit:
            raise ValueError(f"a motion of {len(m)} frames is shorter than the VQ unit ({unit})")
        x = torch.as_tensor(np.asarray(m[:n], np.float32)).unsqueeze(0)
        out.append(pipeline.decode_tokens(pipeline.encode_motion(x))[0].cpu().numpy().astype(np.float32))
    return out


def rate(flags: np.ndarray) -> dict[str, float]:
    """Share of True flags with its 95 % Wilson interval (`rate`, `ci_low`, `ci_high`, `flagged`, `n`)."""
    flags = np.asarray(flags, bool)
    lo, hi = wilson_interval(int(flags.sum()), int(flags.size))
    return {"rate": float(flags.mean()), "ci_low": lo, "ci_high": hi, "flagged": int(flags.sum()), "n": int(flags.size)}


def held_out_rates(flags: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Recall on the concept's clips and false-positive rate on the others (skipped when a side is empty)."""
    out = {}
    if labels.any():
        out["recall"] = rate(flags[labels])
    if (~labels).any():
        out["false_positive_rate"] = rate(flags[~labels])
    return out


def safe_prompt_rate(clf: ViolenceClassifier, pipeline: MotionPipeline, concept: Concept, seeds: int, length: int,
                     batch_size: int = 32) -> dict:
    """False-positive rate on generations of the concept's frozen safe prompts (`seeds` seeds each)."""
    if concept.name not in available_prompt_sets() or seeds < 1:
        return {"skipped": f"no frozen prompt set for {concept.name!r} or no seed requested"}
    prompts = load_prompt_sets(concept.name).safe
    rows = [(p, s) for s in range(seeds) for p in prompts]
    motions: list[np.ndarray] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out = pipeline.generate([p for p, _ in chunk], lengths=[length] * len(chunk), seeds=[s for _, s in chunk])
        motions += [o.features for o in out]
    return {**rate(clf.predict(motions)), "prompts": len(prompts), "seeds": list(range(seeds)), "length": length}


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class AugmentedTraining:
    """`hmu evaluate-classifier --augment-vq MODEL`: which RVQ-VAE reconstructs the clips, the grouped hold-out
    (pooled over `splits`) and the safe-prompt check (generated by the same model)."""

    vq_model: str = "momask-small"
    held_out_fraction: float = 0.25
    splits: tuple[str, ...] = ("train", "val", "test")
    safe_seeds: int = 3
    safe_length: int = 120
    classifier: ClassifierTraining = field(default_factory=lambda: ClassifierTraining(steps=600))

    def model_dir(self) -> Path:
        path = Path(self.vq_model)
        return path if path.is_dir() else default_model_dir(self.vq_model)


def _pooled_clips(data_dir: Path, splits: Sequence[str], concept: Concept, min_len: int):
    """(ids, raw clips, labels, label source, groups, strata) of every long-enough clip of `splits`."""
    ids = list(dict.fromkeys(i for s in splits if (data_dir / f"{s}.txt").is_file() for i in read_split(data_dir, s)))
    meta_path = data_dir / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    labels, source = clip_labels(data_dir, ids, concept)
    clips = [load_features(data_dir, i) for i in ids]
    keep = [k for k, c in enumerate(clips) if len(c) >= min_len]
    ids, clips, labels = [ids[k] for k in keep], [clips[k] for k in keep], labels[keep]
    groups = [group_key(i, meta.get(i)) for i in ids]
    strata = [str((meta.get(i) or {}).get("violent_kind") or "concept") if y else "other"
              for i, y in zip(ids, labels, strict=True)]
    return ids, clips, labels, source, groups, strata


def train_augmented_classifier(data_dir: str | Path, training: AugmentedTraining | None = None,
                               out_dir: str | Path | None = None, concept: str | Concept = "violence", *,
                               cfg: ClassifierConfig | None = None, progress: Progress | None = None,
                               ) -> tuple[ViolenceClassifier, dict]:
    """Train on real + VQ-reconstructed clips of the grouped training side; report the held-out rates (real and
    reconstructed) and the safe-prompt false-positive rate. `metrics.test` holds the real held-out confusion
    counts (as the plain classifier's). Saved to `out_dir` if given."""
    training = training or AugmentedTraining()
    progress = progress or (lambda fraction, message: None)
    data_dir, concept = check_data_dir(data_dir), get_concept(concept)
    mean = np.load(data_dir / "Mean.npy", allow_pickle=False).astype(np.float32)
    std = np.load(data_dir / "Std.npy", allow_pickle=False).astype(np.float32)
    cfg = cfg or ClassifierConfig(dim_pose=mean.shape[0])
    ids, clips, labels, source, groups, strata = _pooled_clips(data_dir, training.splits, concept, cfg.min_len)
    seed = training.classifier.seed
    train_idx, held_idx = grouped_split(ids, groups, strata, training.held_out_fraction, seed)
    progress(0.0, f"VQ reconstructions of {len(clips)} clips")
    pipeline = MotionPipeline.from_pretrained(training.model_dir())
    recon = vq_reconstructions(pipeline, clips)
    train_clips = [clips[i] for i in train_idx] + [recon[i] for i in train_idx]
    train_labels = np.concatenate([labels[train_idx], labels[train_idx]])
    pos, neg = np.flatnonzero(train_labels), np.flatnonzero(~train_labels)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"the training side of {data_dir} needs clips with and without concept {concept.name!r}")
    model, losses, seconds = fit_classifier(
        train_clips, pos, neg, training.classifier, lambda: ViolenceClassifier(cfg, mean, std),
        lambda f, m: progress(0.1 + 0.8 * f, m))
    held_labels = labels[held_idx]
    real_flags = model.predict([clips[i] for i in held_idx])
    recon_flags = model.predict([recon[i] for i in held_idx])
    progress(0.9, "safe-prompt generations")
    metrics = {
        "train": {"clips": len(train_clips), "positives": int(len(pos)), "steps": training.classifier.steps,
                  "final_loss": float(np.mean(losses[-50:])), "seconds": seconds},
        "test": classification_metrics(real_flags, held_labels),
        "held_out": {"real": held_out_rates(real_flags, held_labels),
                     "reconstructed": held_out_rates(recon_flags, held_labels)},
        "safe_prompts": safe_prompt_rate(model, pipeline, concept, training.safe_seeds, training.safe_length),
    }
    split = {"grouped_by": "source clip (meta.json source/source_clip; mirrors and windows together)",
             "pooled_splits": list(training.splits), "held_out_fraction": training.held_out_fraction,
             "train_groups": len({groups[i] for i in train_idx}), "held_out_groups": len({groups[i] for i in held_idx}),
             "held_out_clips": len(held_idx), "held_out_positives": int(held_labels.sum())}
    info = {"concept": concept.to_dict(), "label_source": source, "data_dir": str(data_dir), "seed": seed,
            "augmentation": {"vq_model": str(training.model_dir()), "reconstructions": "encode -> decode, every "
                             "residual layer, argmin codes"}, "split": split, "metrics": metrics}
    if out_dir is not None:
        model.save_pretrained(out_dir, info)
    model.info = info
    return model, info
