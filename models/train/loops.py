"""One training function per model: train_vq, train_mask, train_residual, train_bamm,
train_length_estimator, train_evaluator. Each writes `<out>/<stage>/` (latest.pt, best.pt,
log.jsonl, train_config.json) via `engine.fit` and returns the best model in eval mode.

The transformers, the length estimator and the evaluator train on cached inputs: every caption's
sentence feature is computed once (`<out>/cache/text-*.safetensors`) and every item's RVQ codes are
computed once with the trained VQ (`<out>/cache/codes-*.safetensors`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from models.bamm import BAMMTransformer
from models.data.datasets import (
    EpochSampler,
    MotionWindowDataset,
    TextMotionDataset,
    attach_text_features,
    cache_codes,
    generator_for,
    index_batches,
    training_normalizer,
)
from models.evaluator.training import build_evaluator, evaluator_objective
from models.momask import LengthEstimator, MaskTransformer, ResidualTransformer, TransformerConfig
from models.motion.features import features_to_joints
from models.motion.normalize import Normalizer
from models.presets import TRANSFORMER_PRESETS, VQ_PRESETS, preset
from models.text.base import load_text_encoder
from models.train.config import TrainConfig, load_config
from models.train.engine import BEST, FitResult, RunOptions, fit, load_checkpoint
from models.vq import RVQVAE, VQConfig

STAGE_DIRS = {"vq": "vq", "mask": "mask", "res": "res", "bamm": "bamm", "length": "length",
              "evaluator": "evaluator_train"}


@dataclass
class StageResult:
    stage: str
    model: torch.nn.Module                 # best weights, eval mode
    fit: FitResult
    metrics: dict[str, float]              # validation metrics of the best checkpoint
    directory: Path                        # <out>/<stage dir>: latest.pt, best.pt, log.jsonl
    info: dict[str, Any] = field(default_factory=dict)  # data counts etc. for the model card


# ------------------------------------------------------------------------------------ helpers
def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return device


def _finish(stage: str, model: torch.nn.Module, result: FitResult, stage_dir: Path, device: torch.device,
            info: dict[str, Any]) -> StageResult:
    best = load_checkpoint(stage_dir / BEST, device)
    model.load_state_dict(best["model"])
    return StageResult(stage, model.eval(), result, dict(best["metrics"]), stage_dir, info)


def _text_encoder(cfg: TrainConfig, opts: RunOptions):
    if opts.text_encoder is not None:
        return opts.text_encoder
    return load_text_encoder(cfg.text_encoder, device=opts.device)


def mpjpe_cm(pred_joints: torch.Tensor, gt_joints: torch.Tensor) -> torch.Tensor:
    """Per-frame mean joint error in cm after aligning each frame's pelvis (official VQ metric): (T,)."""
    pred = pred_joints - pred_joints[..., :1, :]
    gt = gt_joints - gt_joints[..., :1, :]
    return 100.0 * (pred - gt).norm(dim=-1).mean(-1)


# ------------------------------------------------------------------------------------ VQ
def build_vq(cfg: TrainConfig, dim_pose: int) -> torch.nn.Module:
    return RVQVAE(VQConfig(dim_pose=dim_pose, **{**preset(VQ_PRESETS, cfg.size), **cfg.model}))


def _vq_ema_state(vq) -> tuple:
    layers = list(vq.quantizer.layers)

    def get() -> dict[str, torch.Tensor]:
        out = {}
        for q, layer in enumerate(layers):
            if layer.initialized:
                out[f"{q}.code_sum"] = layer.code_sum
                out[f"{q}.code_count"] = layer.code_count
        return out

    def set_(state: dict[str, torch.Tensor]) -> None:
        for q, layer in enumerate(layers):
            if f"{q}.code_sum" in state:
                layer.codebook = layer.codebook.clone()
                layer.code_sum = state[f"{q}.code_sum"].clone()
                layer.code_count = state[f"{q}.code_count"].clone()
                layer.initialized = True

    return get, set_


def load_vq(vq_dir: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Normalizer]:
    """The best VQ of a `train_vq` output directory and its training normaliser (mean.npy, std.npy)."""
    vq_dir = Path(vq_dir)
    config_path = vq_dir / "vq_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{vq_dir} holds no trained VQ (missing vq_config.json): run `hmu train vq`")
    vq = RVQVAE(VQConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))))
    vq.load_state_dict(load_checkpoint(vq_dir / BEST, device)["model"])
    return vq.to(device).eval(), Normalizer.from_files(vq_dir)


@torch.no_grad()
def vq_validation(vq, clips: list[torch.Tensor], normalizer: Normalizer, cfg: TrainConfig,
                  device: torch.device) -> dict[str, float]:
    """Reconstruct each clip (first <= max_motion_len frames, cut to a multiple of unit_length) with
    argmin codes; MPJPE (cm, pelvis-aligned) on the de-normalised joints and the L1 feature error."""
    errors, l1 = [], []
    u = cfg.unit_length
    for clip in clips:
        n = min(len(clip), cfg.max_motion_len) // u * u
        x = clip[:n].unsqueeze(0).to(device)
        recon = vq.forward_decoder(vq.encode(x))
        l1.append(float((recon - x).abs().mean()))
        joints = features_to_joints(normalizer.denormalize(torch.cat([recon, x])))
        errors.append(mpjpe_cm(joints[0], joints[1]).mean().item())
    return {"val_mpjpe_cm": float(np.mean(errors)), "val_l1": float(np.mean(l1))}


def train_vq(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig | None = None,
             opts: RunOptions | None = None) -> StageResult:
    """RVQ-VAE on 64-frame windows (official MotionDataset); best = lowest val MPJPE."""
    cfg = cfg or load_config("vq")
    opts = opts or RunOptions()
    device = _device(opts.device)
    stage_dir = Path(out_dir) / STAGE_DIRS["vq"]
    stage_dir.mkdir(parents=True, exist_ok=True)
    normalizer = training_normalizer(data_dir, cfg.feat_bias)
    train = MotionWindowDataset(data_dir, "train", normalizer, cfg.window_size)
    val = MotionWindowDataset(data_dir, "val", normalizer, cfg.window_size)
    np.save(stage_dir / "mean.npy", normalizer.mean)
    np.save(stage_dir / "std.npy", normalizer.std)

    torch.manual_seed(cfg.seed)
    vq = build_vq(cfg, train.dim).to(device)
    (stage_dir / "vq_config.json").write_text(json.dumps(vq.cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
    sampler = EpochSampler(len(train), cfg.batch_size, cfg.seed)
    joints_num = normalizer.joints_num
    val_clips = val.clips[: cfg.val_items]

    def step(it: int, gen: torch.Generator):
        x = train.batch(sampler.indices(it)).to(device)
        loss, _, perplexity = vq.loss(x, joints_num, cfg.commit_weight, cfg.vel_weight, generator=gen)
        return loss, {"perplexity": float(perplexity)}

    result = fit(vq, step, lambda: vq_validation(vq, val_clips, normalizer, cfg, device), cfg, stage_dir, opts,
                 metric="val_mpjpe_cm", extra_state=_vq_ema_state(vq))
    info = {"train_windows": len(train), "train_clips": len(train.clips), "val_clips": len(val_clips)}
    return _finish("vq", vq, result, stage_dir, device, info)


# ------------------------------------------------------------------------------------ text-motion data
def _dataset_key(ds: TextMotionDataset) -> str:
    h = hashlib.sha256()
    for item in ds.items:
        h.update(f"{item.name}:{len(item.motion)};".encode())
    h.update(ds.items[0].motion[:4].numpy().tobytes())
    return h.hexdigest()[:12]


def _vq_key(vq) -> str:
    h = hashlib.sha256()
    for k, v in sorted(vq.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def text_motion_data(data_dir: str | Path, split: str, normalizer: Normalizer, cfg: TrainConfig,
                     opts: RunOptions, cache_dir: Path, encoder, vq=None) -> TextMotionDataset:
    """A TextMotionDataset with cached text features and (given a VQ) cached codes."""
    ds = TextMotionDataset(data_dir, split, normalizer, cfg.min_motion_len, cfg.max_clip_len,
                           cfg.max_motion_len, cfg.unit_length)
    attach_text_features(ds, encoder, cache_dir)
    if vq is not None:
        path = cache_dir / f"codes-{split}-{_dataset_key(ds)}-{_vq_key(vq)}.safetensors"
        if path.is_file():
            ds.codes = load_file(str(path))["codes"]
        else:
            cache_codes(ds, vq, opts.device)
            save_file({"codes": ds.codes.contiguous()}, str(path))
    return ds


def _datasets(data_dir, out_dir, cfg, opts, normalizer, vq=None):
    """The text encoder and the train / val TextMotionDatasets (with cached codes of `vq` if given)."""
    encoder = _text_encoder(cfg, opts)
    cache = Path(out_dir) / "cache"
    train = text_motion_data(data_dir, "train", normalizer, cfg, opts, cache, encoder, vq)
    val = text_motion_data(data_dir, "val", normalizer, cfg, opts, cache, encoder, vq)
    return encoder, train, val


def _token_setup(data_dir, out_dir, cfg, opts, vq_dir):
    """(device, vq, encoder, train, val) for the token transformers: the trained VQ and its codes."""
    device = _device(opts.device)
    vq, normalizer = load_vq(vq_dir or Path(out_dir) / STAGE_DIRS["vq"], device)
    return (device, vq, *_datasets(data_dir, out_dir, cfg, opts, normalizer, vq))


def transformer_config(cfg: TrainConfig, vq, cond_dim: int, **extra: Any):
    shared = {"num_tokens": vq.cfg.nb_code, "code_dim": vq.cfg.code_dim,
              "num_quantizers": vq.cfg.num_quantizers, "shared_codebook": vq.cfg.shared_codebook,
              "cond_dim": cond_dim}
    return TransformerConfig(**{**preset(TRANSFORMER_PRESETS, cfg.size), **shared, **extra, **cfg.model})


def _train_tokens(stage: str, model: torch.nn.Module, loss_fn, out_dir, cfg: TrainConfig, opts: RunOptions,
                  train: TextMotionDataset, val: TextMotionDataset) -> StageResult:
    """Shared loop of the token transformers: loss_fn(model, batch, generator) -> (loss, accuracy)."""
    device = _device(opts.device)
    stage_dir = Path(out_dir) / STAGE_DIRS[stage]
    sampler = EpochSampler(len(train), cfg.batch_size, cfg.seed)

    def to_dev(batch):
        return {k: v.to(device) for k, v in batch.items()}

    def step(it: int, gen: torch.Generator):
        batch = train.batch(sampler.indices(it), generator_for(cfg.seed, it, 3), motion=False, ids=True)
        batch = to_dev(batch)
        loss, acc = loss_fn(model, batch, gen)
        return loss, {"acc": float(acc)}

    @torch.no_grad()
    def validate() -> dict[str, float]:
        n = min(len(val), cfg.val_items)
        data_gen, model_gen = generator_for(cfg.seed, 0, 5), generator_for(cfg.seed, 0, 6, device=device)
        total, acc_total = 0.0, 0.0
        for idx in index_batches(n, cfg.batch_size):
            batch = to_dev(val.batch(idx, data_gen, motion=False, ids=True))
            loss, acc = loss_fn(model, batch, model_gen)
            total += float(loss) * len(idx)
            acc_total += float(acc) * len(idx)
        return {"val_loss": total / n, "val_acc": acc_total / n}

    result = fit(model, step, validate, cfg, stage_dir, opts, metric="val_loss")
    (stage_dir / "model_config.json").write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n",
                                                 encoding="utf-8")
    info = {"train_items": len(train), "train_captions": len(train.captions), "val_items": len(val)}
    return _finish(stage, model, result, stage_dir, device, info)


# ------------------------------------------------------------------------------------ transformers
def _layer0_loss(model, batch, gen):
    """Loss of a base-layer transformer (MoMask mask, BAMM) on RVQ layer 0."""
    return model.loss(batch["ids"][..., 0], batch["cond"], batch["token_lens"], generator=gen)


def _residual_loss(model, batch, gen):
    """Loss of the residual transformer on all RVQ layers."""
    return model.loss(batch["ids"], batch["cond"], batch["token_lens"], generator=gen)


@dataclass(frozen=True)
class TokenStage:
    """A token transformer stage: its name, model class, loss and fixed config entries."""

    name: str
    model_cls: type
    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    config_extra: dict[str, Any] = field(default_factory=dict)


MASK_STAGE = TokenStage("mask", MaskTransformer, _layer0_loss)
RES_STAGE = TokenStage("res", ResidualTransformer, _residual_loss, {"cond_drop_prob": 0.2, "share_weight": True})
BAMM_STAGE = TokenStage("bamm", BAMMTransformer, _layer0_loss)


def _train_transformer(spec: TokenStage, data_dir, out_dir, cfg: TrainConfig | None, opts: RunOptions | None,
                       vq_dir) -> StageResult:
    """Token data + `spec.model_cls(transformer_config(..., **spec.config_extra))`, trained by `_train_tokens`."""
    cfg = cfg or load_config(spec.name)
    opts = opts or RunOptions()
    device, vq, encoder, train, val = _token_setup(data_dir, out_dir, cfg, opts, vq_dir)
    torch.manual_seed(cfg.seed)
    model = spec.model_cls(transformer_config(cfg, vq, encoder.dim, **spec.config_extra)).to(device)
    return _train_tokens(spec.name, model, spec.loss_fn, out_dir, cfg, opts, train, val)


def train_mask(data_dir, out_dir, cfg: TrainConfig | None = None, opts: RunOptions | None = None,
               vq_dir: str | Path | None = None) -> StageResult:
    """MoMask base masked transformer on cached layer-0 codes; best = lowest val loss."""
    return _train_transformer(MASK_STAGE, data_dir, out_dir, cfg, opts, vq_dir)


def train_residual(data_dir, out_dir, cfg: TrainConfig | None = None, opts: RunOptions | None = None,
                   vq_dir: str | Path | None = None) -> StageResult:
    """MoMask residual transformer (layers 1..Q-1) on cached codes; best = lowest val loss."""
    return _train_transformer(RES_STAGE, data_dir, out_dir, cfg, opts, vq_dir)


def train_bamm(data_dir, out_dir, cfg: TrainConfig | None = None, opts: RunOptions | None = None,
               vq_dir: str | Path | None = None) -> StageResult:
    """BAMM base transformer on cached layer-0 codes; best = lowest val loss."""
    return _train_transformer(BAMM_STAGE, data_dir, out_dir, cfg, opts, vq_dir)


# ------------------------------------------------------------------------------------ length, evaluator
def _text_setup(data_dir, out_dir, cfg, opts, vq_dir):
    """(device, normalizer, encoder, train, val) for the length estimator and the evaluator."""
    device = _device(opts.device)
    normalizer = _vq_normalizer(data_dir, out_dir, cfg, vq_dir)
    return (device, normalizer, *_datasets(data_dir, out_dir, cfg, opts, normalizer))


def _vq_normalizer(data_dir, out_dir, cfg, vq_dir) -> Normalizer:
    """The VQ's training statistics when a VQ was trained, else the same recipe from the data folder."""
    vq_dir = Path(vq_dir) if vq_dir else Path(out_dir) / STAGE_DIRS["vq"]
    if (vq_dir / "mean.npy").is_file():
        return Normalizer.from_files(vq_dir)
    return training_normalizer(data_dir, cfg.feat_bias)


def train_length_estimator(data_dir, out_dir, cfg: TrainConfig | None = None, opts: RunOptions | None = None,
                           vq_dir: str | Path | None = None) -> StageResult:
    """LengthEstimator(cond_dim, 50): text feature -> token length (m // 4) class; best = lowest val CE."""
    cfg = cfg or load_config("length")
    opts = opts or RunOptions()
    device, _, encoder, train, val = _text_setup(data_dir, out_dir, cfg, opts, vq_dir)
    torch.manual_seed(cfg.seed)
    model = LengthEstimator(encoder.dim, int(cfg.model.get("num_classes", 50))).to(device)
    stage_dir = Path(out_dir) / STAGE_DIRS["length"]
    sampler = EpochSampler(len(train), cfg.batch_size, cfg.seed)

    def loss_acc(batch):
        labels = batch["token_lens"].clamp(max=model.num_classes - 1).to(device)
        logits = model(batch["cond"].to(device))
        return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).float().mean()

    def step(it: int, gen: torch.Generator):
        loss, acc = loss_acc(train.batch(sampler.indices(it), generator_for(cfg.seed, it, 3), motion=False))
        return loss, {"acc": float(acc)}

    @torch.no_grad()
    def validate() -> dict[str, float]:
        n = min(len(val), cfg.val_items)
        data_gen = generator_for(cfg.seed, 0, 5)
        sums = np.zeros(2)
        for idx in index_batches(n, cfg.batch_size):
            loss, acc = loss_acc(val.batch(idx, data_gen, motion=False))
            sums += np.array([float(loss), float(acc)]) * len(idx)
        return {"val_loss": sums[0] / n, "val_acc": sums[1] / n}

    result = fit(model, step, validate, cfg, stage_dir, opts)
    info = {"train_items": len(train), "val_items": len(val)}
    return _finish("length", model, result, stage_dir, device, info)


def train_evaluator(data_dir, out_dir, cfg: TrainConfig | None = None, opts: RunOptions | None = None,
                    vq_dir: str | Path | None = None) -> StageResult:
    """Our text/motion co-embedding evaluator (contrastive, `models.evaluator.training`); motions normalised
    with the VQ's statistics so generated (VQ-normalised) motions can be embedded directly; best = lowest
    val loss."""
    cfg = cfg or load_config("evaluator")
    opts = opts or RunOptions()
    device, normalizer, encoder, train, val = _text_setup(data_dir, out_dir, cfg, opts, vq_dir)
    torch.manual_seed(cfg.seed)
    model = build_evaluator(normalizer.dim, encoder.dim, cfg.model).to(device)
    stage_dir = Path(out_dir) / STAGE_DIRS["evaluator"]
    step, validate = evaluator_objective(model, train, val, batch_size=cfg.batch_size, val_items=cfg.val_items,
                                         seed=cfg.seed, device=device)
    result = fit(model, step, validate, cfg, stage_dir, opts)
    model.text_encoder = encoder
    info = {"train_items": len(train), "val_items": len(val)}
    return _finish("evaluator", model, result, stage_dir, device, info)


TRAINERS = {"vq": train_vq, "mask": train_mask, "res": train_residual, "bamm": train_bamm,
            "length": train_length_estimator, "evaluator": train_evaluator}
