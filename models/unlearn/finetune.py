"""FT baseline: continue the standard training of the base and residual transformers on the retain set
(unlearning-methods.md §3.3), with validation on the retain part of the val split and early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.data.concepts import Concept
from models.data.datasets import EpochSampler, TextMotionDataset, attach_text_features, cache_codes, generator_for
from models.data.forget_retain import caption_lines, is_forget
from models.motion.normalize import Normalizer
from models.unlearn.params import MethodParams, require

Progress = Callable[[float, str], None]
MODELS = ("base", "residual")


@dataclass
class FTParams(MethodParams):
    """Fine-tuning on the retain set: the paper's +5 epochs, batch 64, MoMask's lr 2e-4."""

    method = "ft"
    models: list[str] = field(default_factory=lambda: list(MODELS))
    epochs: float = 5.0
    max_steps: int | None = None  # cap on iterations per model
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 1e-5
    split: str = "train"
    val_split: str | None = "val"  # None: no validation, no early stopping
    eval_every: int = 50
    patience: int = 3  # evaluations without improvement before stopping
    min_occurrence: int = 1
    match_mode: str | None = None
    seed: int = 0

    def validate(self) -> None:
        require(
            bool(self.models) and all(m in MODELS for m in self.models),
            f"models must be a non-empty subset of {list(MODELS)}, got {self.models}",
        )
        require(0.0 < self.epochs <= 1000.0, f"epochs must be in (0, 1000], got {self.epochs}")
        require(
            self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"
        )
        require(1 <= self.batch_size <= 4096, f"batch_size must be in 1..4096, got {self.batch_size}")
        require(0.0 < self.lr <= 1.0, f"lr must be in (0, 1], got {self.lr}")
        require(self.weight_decay >= 0.0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.eval_every >= 1 and self.patience >= 1, "eval_every and patience must be >= 1")
        require(self.min_occurrence >= 1, f"min_occurrence must be >= 1, got {self.min_occurrence}")


def retain_dataset(pipeline, data_dir: Path, split: str, concept: Concept, min_occurrence: int):
    """TextMotionDataset of `split` restricted to retain items, with text features and codes attached."""
    normalizer = Normalizer(pipeline.mean.cpu().numpy(), pipeline.std.cpu().numpy())
    dataset = TextMotionDataset(data_dir, split, normalizer)
    labels: dict[str, bool] = {}
    keep = []
    for i, item in enumerate(dataset.items):
        clip = item.name.split("#")[0]
        if clip not in labels:
            labels[clip] = is_forget(caption_lines(data_dir, clip), concept, min_occurrence)
        if not labels[clip]:
            keep.append(i)
    require(bool(keep), f"split {split!r} of {data_dir} has no retain item for {concept.name!r}")
    dropped = len(dataset.items) - len(keep)
    dataset.items = [dataset.items[i] for i in keep]
    dataset.lengths = dataset.lengths[keep]
    attach_text_features(dataset, pipeline.text_encoder)
    cache_codes(dataset, pipeline.vq, pipeline.device)
    return dataset, dropped


def _loss(name: str, model: nn.Module, batch: dict[str, torch.Tensor], gen: torch.Generator):
    ids = batch["ids"]
    if name == "base":
        return model.loss(ids[..., 0], batch["cond"], batch["token_lens"], generator=gen)
    return model.loss(ids, batch["cond"], batch["token_lens"], generator=gen)


def finetune_model(
    name: str,
    model: nn.Module,
    train,
    val,
    params: FTParams,
    device: torch.device,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train one transformer on `train` with validation-loss early stopping; keeps the best weights."""
    sampler = EpochSampler(len(train), params.batch_size, params.seed)
    steps = max(1, math.ceil(params.epochs * len(train) / sampler.batch_size))
    steps = min(steps, params.max_steps) if params.max_steps else steps
    model.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)

    def to_dev(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def validate() -> float:
        model.eval()
        data_gen, model_gen = generator_for(params.seed, 0, 5), generator_for(params.seed, 0, 6)
        total = 0.0
        for start in range(0, len(val), params.batch_size):
            idx = torch.arange(start, min(start + params.batch_size, len(val)))
            loss, _ = _loss(name, model, to_dev(val.batch(idx, data_gen, motion=False, ids=True)), model_gen)
            total += float(loss) * len(idx)
        return total / len(val)

    best = validate() if val is not None else None
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = [{"step": 0, "val_loss": best}] if best is not None else []
    bad = 0
    for it in range(steps):
        model.train()
        torch.manual_seed(params.seed * 7919 + it)  # dropout
        batch = to_dev(
            train.batch(sampler.indices(it), generator_for(params.seed, it, 3), motion=False, ids=True)
        )
        loss, acc = _loss(name, model, batch, generator_for(params.seed, it, 2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss = loss.detach()
        if progress is not None:
            progress((it + 1) / steps, f"FT {name}: step {it + 1}/{steps}, loss {float(loss):.4f}")
        if val is not None and ((it + 1) % params.eval_every == 0 or it + 1 == steps):
            score = validate()
            history.append(
                {"step": it + 1, "train_loss": float(loss), "train_acc": float(acc), "val_loss": score}
            )
            if score < best:
                best, bad = score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= params.patience:
                    break
    if val is not None:
        model.load_state_dict(best_state)
    model.requires_grad_(False).eval()
    return {"steps": steps, "steps_run": it + 1, "best_val_loss": best, "history": history}


def apply_ft(
    pipeline, concept: Concept, params: FTParams, data_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Fine-tune the chosen transformers of `pipeline` on the retain set, in place -> the manifest result."""
    if params.match_mode is not None:
        concept = concept.with_mode(params.match_mode)
    train, dropped = retain_dataset(pipeline, data_dir, params.split, concept, params.min_occurrence)
    val = None
    if params.val_split is not None:
        val, _ = retain_dataset(pipeline, data_dir, params.val_split, concept, params.min_occurrence)
    result: dict[str, Any] = {
        "train_items": len(train),
        "forget_items_dropped": dropped,
        "val_items": len(val) if val is not None else 0,
        "models": {},
    }
    modules = {"base": pipeline.base, "residual": pipeline.residual}
    for i, name in enumerate(params.models):

        def report(f: float, msg: str, i: int = i) -> None:
            if progress is not None:
                progress((i + f) / len(params.models), msg)

        result["models"][name] = finetune_model(
            name, modules[name], train, val, params, pipeline.device, report
        )
    return result
