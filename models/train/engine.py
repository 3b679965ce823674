"""The training loop shared by every stage: schedule, checkpoints, resume, validation, time budget.

Randomness is a pure function of (seed, iteration): before each step the global torch RNG (dropout)
is re-seeded and a fresh generator is handed to the step for data and model sampling. A checkpoint
therefore only needs the model, the optimiser and the iteration to resume bit-exactly on CPU; the
learning rate is computed from the iteration, so there is no scheduler state either.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from models.data.datasets import generator_for, seed_for
from models.train.config import TrainConfig

StepFn = Callable[[int, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
ValFn = Callable[[], dict[str, float]]
LATEST, BEST = "latest.pt", "best.pt"


def lr_at(cfg: TrainConfig, it: int) -> float:
    """Learning rate of iteration `it` (0-based): linear warm-up, then multistep / cosine / constant."""
    warm = min(1.0, (it + 1) / cfg.warmup_iters) if cfg.warmup_iters else 1.0
    if cfg.schedule == "multistep":
        factor = cfg.gamma ** sum(it >= round(m * cfg.iters) for m in cfg.milestones)
    elif cfg.schedule == "cosine":
        progress = min(1.0, it / max(1, cfg.iters))
        factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    return cfg.lr * warm * factor


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `fit` (tensors and plain containers only: weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location=device, weights_only=True)


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a truncated checkpoint


@dataclass
class FitResult:
    iteration: int                        # iterations done in total
    best_metric: float | None
    best_iteration: int | None
    history: list[dict[str, Any]] = field(default_factory=list)  # validation records of this run
    stopped_early: bool = False           # time budget or stop_after reached before cfg.iters
    seconds: float = 0.0


def fit(
    model: torch.nn.Module,
    step: StepFn,
    validate: ValFn,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    metric: str = "val_loss",
    resume: bool = False,
    max_minutes: float | None = None,
    stop_after: int | None = None,
    device: str | torch.device = "cpu",
    extra_state: tuple[Callable[[], dict[str, torch.Tensor]], Callable[[dict[str, torch.Tensor]], None]]
    | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model` for cfg.iters iterations of `step` (returns (loss, logs)); the smaller `metric` of
    `validate()` selects best.pt. Writes out_dir/{latest.pt, best.pt, log.jsonl, train_config.json}.

    resume: continue from out_dir/latest.pt. max_minutes: wall-time budget of this invocation, after which
    the run validates, saves and stops. stop_after: run at most this many iterations in this invocation.
    extra_state: (get, set) of tensors that live outside the state_dict (e.g. EMA codebook statistics).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    optimizer = make_optimizer(model, cfg)
    start, best, best_it = 0, None, None
    if resume:
        state = load_checkpoint(out_dir / LATEST, device)
        if state["config"] != json.dumps(cfg.to_dict(), sort_keys=True):
            raise ValueError(f"{out_dir / LATEST} was written with a different training config; "
                             "resume with the same config or start a new --out directory")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if extra_state is not None:
            extra_state[1](state.get("extra", {}))
        start, best, best_it = int(state["iteration"]), state["best_metric"], state["best_iteration"]
    (out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")

    def save_latest(it: int) -> None:
        _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": it,
               "best_metric": best, "best_iteration": best_it,
               "extra": extra_state[0]() if extra_state is not None else {},
               "config": json.dumps(cfg.to_dict(), sort_keys=True)}, out_dir / LATEST)

    t0 = time.monotonic()
    end = cfg.iters if stop_after is None else min(cfg.iters, start + stop_after)
    history: list[dict[str, Any]] = []
    running: dict[str, float] = {}
    count = 0
    it = start
    bar = tqdm(total=cfg.iters, initial=start, desc=f"train {cfg.stage}", disable=not progress,
               dynamic_ncols=True)
    with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
        while it < end:
            torch.manual_seed(seed_for(cfg.seed, it, 1))  # dropout and any global-RNG use
            gen = generator_for(cfg.seed, it, 2, device=device)
            lr = lr_at(cfg, it)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            loss, logs = step(it, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{cfg.stage}: non-finite loss {float(loss)} at iteration {it}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            it += 1
            count += 1
            for k, v in {"loss": float(loss.detach()), **logs}.items():
                running[k] = running.get(k, 0.0) + float(v)
            bar.update(1)
            out_of_time = max_minutes is not None and time.monotonic() - t0 > 60 * max_minutes
            if it % cfg.eval_every == 0 or it == end or out_of_time:
                model.eval()
                val = {k: float(v) for k, v in validate().items()}
                record = {"iteration": it, "lr": lr, "elapsed_s": round(time.monotonic() - t0, 1),
                          **{f"train_{k}": v / count for k, v in running.items()}, **val}
                running, count = {}, 0
                value = float(val[metric])
                if best is None or value < best:
                    best, best_it = value, it
                    _save({"model": model.state_dict(), "iteration": it, "metrics": val,
                           "config": json.dumps(cfg.to_dict(), sort_keys=True)}, out_dir / BEST)
                record["best"] = best
                history.append(record)
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix({metric: f"{value:.4g}", "best": f"{best:.4g}"})
            if it % cfg.save_every == 0 or it == end or out_of_time:
                save_latest(it)
            if out_of_time:
                break
    bar.close()
    return FitResult(iteration=it, best_metric=best, best_iteration=best_it, history=history,
                     stopped_early=it < cfg.iters, seconds=time.monotonic() - t0)
