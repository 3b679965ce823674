"""`train default`: every stage in order, then the native bundles momask-<size>, bamm-<size>, evaluator."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from models.common.markdown import render
from models.motion.normalize import Normalizer
from models.pipelines import MotionPipeline
from models.text.base import load_text_encoder
from models.train.config import CONFIG_DIR, TrainConfig, load_config
from models.train.loops import STAGE_DIRS, TRAINERS, RunOptions, StageResult, load_vq

ORDER = ("vq", "mask", "res", "bamm", "length", "evaluator")
# Share of a --max-minutes budget given to each stage (re-normalised over the stages still to run).
BUDGET_SHARE = {"vq": 0.18, "mask": 0.21, "res": 0.19, "bamm": 0.31, "length": 0.01, "evaluator": 0.10}

def load_stage_configs(config_dir: str | Path | None = None, **overrides: Any) -> dict[str, TrainConfig]:
    """configs/train/<stage>.json for every stage (or from `config_dir`), with overrides applied to all."""
    directory = Path(config_dir) if config_dir is not None else CONFIG_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"training config directory {directory} not found")
    return {stage: load_config(stage, directory / f"{stage}.json", **overrides) for stage in ORDER}


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} = {v:.4g}" for k, v in sorted(metrics.items()))


def _stage_row(stage: str, result: StageResult, config: TrainConfig, seconds: float) -> str:
    done = f"{result.fit.iteration}/{config.iters}" + (" (stopped early)" if result.fit.stopped_early else "")
    return render(__file__, "templates/stage_row.md", stage=stage,
                  size=config.size if stage in ("vq", "mask", "res", "bamm") else "-", done=done,
                  batch_size=config.batch_size, minutes=f"{seconds / 60:.2f}", metrics=_fmt(result.metrics),
                  best_iteration=result.fit.best_iteration)


def model_card(title: str, stages: list[str], results: dict[str, StageResult],
               configs: dict[str, TrainConfig], data_dir: Path, command: str,
               seconds: dict[str, float]) -> str:
    """MODEL_CARD.md of a trained bundle (package template `templates/model_card.md`, licence included)."""
    counts = {s: {k: v for k, v in results[s].info.items() if isinstance(v, int)} for s in stages}
    return render(
        __file__, "templates/model_card.md", title=title, command=command,
        minutes=f"{sum(seconds.values()) / 60:.1f}", torch_version=torch.__version__,
        threads=torch.get_num_threads(), data_dir=data_dir, text_encoder=json.dumps(configs["mask"].text_encoder),
        stage_rows="".join(_stage_row(s, results[s], configs[s], seconds[s]) for s in stages),
        counts=json.dumps(counts),
    )


def train_default(data_dir: str | Path, out_dir: str | Path, config_dir: str | Path | None = None,
                  opts: RunOptions | None = None, command: str | None = None,
                  configs: dict[str, TrainConfig] | None = None) -> dict[str, Path]:
    """Train every stage into out_dir and write out_dir/{momask-<size>, bamm-<size>, evaluator}."""
    opts = opts or RunOptions()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    configs = configs or load_stage_configs(config_dir)
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    t_start = time.monotonic()  # --max-minutes covers the text encoder's loading too
    if opts.text_encoder is None:
        specs = {json.dumps(c.text_encoder, sort_keys=True) for s, c in configs.items() if s != "vq"}
        if len(specs) != 1:
            raise ValueError("every stage must use the same text_encoder spec")
        opts.text_encoder = load_text_encoder(configs["mask"].text_encoder, device=opts.device)
    results, seconds = _run_stages(ORDER, data_dir, out_dir, configs, opts, t_start)
    encoder = opts.text_encoder
    stats = Normalizer.from_files(out_dir / STAGE_DIRS["vq"])
    bundles = {}
    for kind, base, stages in (("momask", "mask", ["vq", "mask", "res", "length"]),
                               ("bamm", "bamm", ["vq", "bamm", "res"])):
        name = f"{kind}-{configs[base].size}"
        bundles[name] = _save_bundle(kind, stages, results, results["vq"].model, stats, encoder, configs,
                                     data_dir, out_dir / name, command, seconds)

    evaluator = results["evaluator"].model.cpu()
    ev_dir = out_dir / "evaluator"
    evaluator.save_pretrained(ev_dir, text_encoder_spec=encoder.spec())
    stats_tensors = {"mean": torch.from_numpy(stats.mean), "std": torch.from_numpy(stats.std)}
    save_file(stats_tensors, str(ev_dir / "stats.safetensors"))
    (ev_dir / "MODEL_CARD.md").write_text(
        model_card("evaluator: our text/motion co-embedding evaluator", ["evaluator"], results, configs,
                   data_dir, command, seconds)
        + "\nMotions are embedded in the space normalised with `stats.safetensors` (the VQ's training "
          "statistics), so VQ-decoded motions can be embedded without re-normalising.\n", encoding="utf-8")
    bundles["evaluator"] = ev_dir
    return bundles


def train_momask(data_dir: str | Path, out_dir: str | Path, vq_dir: str | Path, config_dir: str | Path | None = None,
                 opts: RunOptions | None = None, command: str | None = None) -> Path:
    """The masked, residual and length stages on `data_dir` with an already trained VQ -> OUT/momask-<size>.

    For the paper's retain-only reference model: train on a dataset folder whose splits hold the retain
    set only, with the VQ (tokeniser and normalisation) of the full model it is compared with.
    """
    opts = opts or RunOptions()
    data_dir, out_dir, vq_dir = Path(data_dir), Path(out_dir), Path(vq_dir)
    configs = load_stage_configs(config_dir)
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    t_start = time.monotonic()
    vq, stats = load_vq(vq_dir, opts.device)
    if opts.text_encoder is None:
        opts.text_encoder = load_text_encoder(configs["mask"].text_encoder, device=opts.device)
    stages = ("mask", "res", "length")
    results, seconds = _run_stages(stages, data_dir, out_dir, configs, opts, t_start, vq_dir=vq_dir)
    name = f"momask-{configs['mask'].size}"
    return _save_bundle("momask", list(stages), results, vq.cpu(), stats, opts.text_encoder, configs, data_dir,
                        out_dir / name, command, seconds, vq_dir=vq_dir)


def _run_stages(stages: tuple[str, ...], data_dir: Path, out_dir: Path, configs: dict[str, TrainConfig],
                opts: RunOptions, t_start: float, vq_dir: Path | None = None
                ) -> tuple[dict[str, StageResult], dict[str, float]]:
    """Train `stages` in order, sharing what is left of opts.max_minutes by BUDGET_SHARE."""
    results: dict[str, StageResult] = {}
    seconds: dict[str, float] = {}
    for k, stage in enumerate(stages):
        stage_opts = RunOptions(**{**opts.__dict__})
        stage_opts.resume = opts.resume and (out_dir / STAGE_DIRS[stage] / "latest.pt").is_file()
        if opts.max_minutes is not None:
            left = opts.max_minutes - (time.monotonic() - t_start) / 60
            share = BUDGET_SHARE[stage] / sum(BUDGET_SHARE[s] for s in stages[k:])
            stage_opts.max_minutes = max(0.1, left * share)
        kwargs = {} if stage == "vq" or vq_dir is None else {"vq_dir": vq_dir}
        t0 = time.monotonic()
        results[stage] = TRAINERS[stage](data_dir, out_dir, configs[stage], stage_opts, **kwargs)
        seconds[stage] = time.monotonic() - t0
    return results, seconds


# reason: the bundle's parts and its card's inputs; the card's signature is being reworked on another branch
def _save_bundle(kind: str, stages: list[str], results: dict[str, StageResult], vq: torch.nn.Module,
                 stats: Normalizer, encoder, configs: dict[str, TrainConfig], data_dir: Path, path: Path,
                 command: str, seconds: dict[str, float], vq_dir: Path | None = None) -> Path:
    """A native MoMask or BAMM bundle from trained stages, with its manifest and model card."""
    base = "mask" if kind == "momask" else "bamm"
    manifest = {"method": "train", "command": command, "stages": {
        s: {"best_iteration": results[s].fit.best_iteration, "metrics": results[s].metrics} for s in stages}}
    if vq_dir is not None:
        manifest["vq_dir"] = str(vq_dir)
    pipeline = MotionPipeline.for_kind(kind)(
        text_encoder=encoder, vq=vq, base=results[base].model, residual=results["res"].model,
        length_estimator=results["length"].model if kind == "momask" else None,
        mean=stats.mean, std=stats.std, dataset="t2m", manifest=manifest,
    )
    card = model_card(f"{path.name}: {kind} text-to-motion model", stages, results, configs, data_dir, command,
                      seconds)
    if vq_dir is not None:
        card += f"\nThe VQ (tokeniser and normalisation statistics) was trained before, in `{vq_dir}`.\n"
    return pipeline.save_pretrained(path, card=card)

