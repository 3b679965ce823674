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


@dataclass
class RunOptions:
    """Per-invocation options shared by every stage (not part of the training config)."""

    resume: bool = False
    max_minutes: float | None = None
    stop_after: int | None = None
    device: str = "cpu"
    progress: bool = True
    text_encoder: Any = None               # an already loaded TextEncoder (else cfg.text_encoder is loaded)


ExtraState = tuple[Callable[[], dict[str, torch.Tensor]], Callable[[dict[str, torch.Tensor]], None]]


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: StepFn, cfg: TrainConfig, it: int,
                device: torch.device) -> tuple[float, torch.Tensor, dict[str, float]]:
    """One optimisation step of iteration `it` -> (lr, loss, logs); randomness is a function of (seed, it)."""
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
    return lr, loss, logs


class _Run:
    """The state of one `fit` invocation: best metric, running training logs, checkpoint writing."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, out_dir: Path,
                 metric: str, extra_state: ExtraState | None):
        self.model, self.optimizer, self.cfg, self.out_dir = model, optimizer, cfg, out_dir
        self.metric, self.extra_state = metric, extra_state
        self.best: float | None = None
        self.best_it: int | None = None
        self.running: dict[str, float] = {}
        self.count = 0
        self.history: list[dict[str, Any]] = []

    def resume(self, device: torch.device) -> int:
        """Load out_dir/latest.pt -> the iteration to continue from."""
        state = load_checkpoint(self.out_dir / LATEST, device)
        if state["config"] != json.dumps(self.cfg.to_dict(), sort_keys=True):
            raise ValueError(f"{self.out_dir / LATEST} was written with a different training config; "
                             "resume with the same config or start a new --out directory")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.extra_state is not None:
            self.extra_state[1](state.get("extra", {}))
        self.best, self.best_it = state["best_metric"], state["best_iteration"]
        return int(state["iteration"])

    def add(self, loss: torch.Tensor, logs: dict[str, float]) -> None:
        self.count += 1
        for k, v in {"loss": float(loss.detach()), **logs}.items():
            self.running[k] = self.running.get(k, 0.0) + float(v)

    def validate(self, validate: ValFn, it: int, lr: float, elapsed: float) -> dict[str, Any]:
        """Validate, keep best.pt up to date -> the log record."""
        self.model.eval()
        val = {k: float(v) for k, v in validate().items()}
        record = {"iteration": it, "lr": lr, "elapsed_s": round(elapsed, 1),
                  **{f"train_{k}": v / self.count for k, v in self.running.items()}, **val}
        self.running, self.count = {}, 0
        value = float(val[self.metric])
        if self.best is None or value < self.best:
            self.best, self.best_it = value, it
            _save({"model": self.model.state_dict(), "iteration": it, "metrics": val,
                   "config": json.dumps(self.cfg.to_dict(), sort_keys=True)}, self.out_dir / BEST)
        record["best"] = self.best
        self.history.append(record)
        return record

    def save_latest(self, it: int) -> None:
        _save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "iteration": it,
               "best_metric": self.best, "best_iteration": self.best_it,
               "extra": self.extra_state[0]() if self.extra_state is not None else {},
               "config": json.dumps(self.cfg.to_dict(), sort_keys=True)}, self.out_dir / LATEST)


def fit(model: torch.nn.Module, step: StepFn, validate: ValFn, cfg: TrainConfig, out_dir: str | Path,
        opts: RunOptions | None = None, *, metric: str = "val_loss",
        extra_state: ExtraState | None = None) -> FitResult:
    """Train `model` for cfg.iters iterations of `step` (returns (loss, logs)); the smaller `metric` of
    `validate()` selects best.pt. Writes out_dir/{latest.pt, best.pt, log.jsonl, train_config.json}.

    opts.resume: continue from out_dir/latest.pt. opts.max_minutes: wall-time budget of this invocation, after
    which the run validates, saves and stops. opts.stop_after: run at most this many iterations in this
    invocation. extra_state: (get, set) of tensors outside the state_dict (e.g. EMA codebook statistics).
    """
    opts = opts or RunOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(opts.device)
    run = _Run(model, make_optimizer(model, cfg), cfg, out_dir, metric, extra_state)
    start = run.resume(device) if opts.resume else 0
    (out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")

    t0 = time.monotonic()
    end = cfg.iters if opts.stop_after is None else min(cfg.iters, start + opts.stop_after)
    it = start
    bar = tqdm(total=cfg.iters, initial=start, desc=f"train {cfg.stage}", disable=not opts.progress,
               dynamic_ncols=True)
    with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
        while it < end:
            lr, loss, logs = _train_step(model, run.optimizer, step, cfg, it, device)
            it += 1
            run.add(loss, logs)
            bar.update(1)
            out_of_time = opts.max_minutes is not None and time.monotonic() - t0 > 60 * opts.max_minutes
            if it % cfg.eval_every == 0 or it == end or out_of_time:
                record = run.validate(validate, it, lr, time.monotonic() - t0)
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix({metric: f"{record[metric]:.4g}", "best": f"{run.best:.4g}"})
            if it % cfg.save_every == 0 or it == end or out_of_time:
                run.save_latest(it)
            if out_of_time:
                break
    bar.close()
    return FitResult(iteration=it, best_metric=run.best, best_iteration=run.best_it, history=run.history,
                     stopped_early=it < cfg.iters, seconds=time.monotonic() - t0)
