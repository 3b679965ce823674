"""Reader (and writer) of the official MoMask / BAMM checkpoint layout.

Layout (momask-architecture.md §1, bamm-differences.md §1):

    <checkpoints>/<dataset>/<vq_name>/{opt.txt, meta/mean.npy, meta/std.npy, model/net_best_fid.tar}
    <checkpoints>/<dataset>/<mask_name>/{opt.txt, model/latest.tar}            # MoMask base layer
    <checkpoints>/<dataset>/<res_name>/{opt.txt, model/net_best_fid.tar}       # residual transformer
    <checkpoints>/<dataset>/length_estimator/model/finest.tar
    <bamm log>/<dataset>/<bamm_name>/{opt.txt, model/latest.tar}               # BAMM base layer

`load_checkpoint(path)` accepts the checkpoints root, a dataset folder or a base-transformer run folder and
returns a `Checkpoint` (see models/io/checkpoint.py). Every `.tar` is read with `torch.load(weights_only=True)`
and applied strictly. `save_official_layout` writes a `Checkpoint` back in this layout (weights-only .tar).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.common.tensors import load_npy, load_state_dict_strict, load_tar, pick_state_dict
from models.common.transformer_config import TransformerConfig
from models.io.checkpoint import Checkpoint, base_transformer_class
from models.io.opt import read_opt, write_opt
from models.momask import LengthEstimator, ResidualTransformer
from models.text.base import TextEncoder, load_text_encoder
from models.vq import RVQVAE, VQConfig

DIM_POSE = {"t2m": 263, "kit": 251}
CLIP_DIM = 512
MASK_FILE, RES_FILE, VQ_FILE, LENGTH_FILE = "latest.tar", "net_best_fid.tar", "net_best_fid.tar", "finest.tar"
STATE_KEYS = {
    "vq": ("vq_model", "net"),
    "base": ("t2m_transformer", "trans"),
    "residual": ("res_transformer",),
    "length_estimator": ("estimator",),
}


def _is_run(path: Path) -> bool:
    return (path / "opt.txt").is_file() and (path / "model").is_dir()


def _is_vq_opt(opt: dict[str, Any]) -> bool:
    return "nb_code" in opt and "latent_dim" not in opt


def _dataset_dir(path: Path) -> Path:
    """Resolve a checkpoints root (holding t2m/ or kit/) or a dataset folder to the dataset folder."""
    if any(_is_run(child) for child in path.iterdir() if child.is_dir()):
        return path
    candidates = [path / name for name in DIM_POSE if (path / name).is_dir()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(
            f"{path} is neither a native checkpoint (config.json) nor an official layout: expected run folders "
            "with opt.txt and model/, or a checkpoints root holding t2m/ or kit/"
        )
    raise ValueError(f"{path} holds several datasets {[c.name for c in candidates]}: pass the dataset folder")


def find_runs(path: Path, base_name: str | None = None, res_name: str | None = None,
              checkpoints_dir: str | Path | None = None) -> dict[str, Path]:
    """Locate the run folders of the base transformer, residual transformer, VQ and length estimator."""
    path = Path(path)
    if _is_run(path) and not _is_vq_opt(read_opt(path)):
        base_dir = path
        dataset_dirs = [path.parent]
    else:
        dataset_dir = _dataset_dir(path)
        runs = [c for c in sorted(dataset_dir.iterdir()) if c.is_dir() and _is_run(c)]
        transformers = [
            c for c in runs
            if not _is_vq_opt(read_opt(c)) and not c.name.startswith("tres") and (c / "model" / MASK_FILE).is_file()
        ]
        if base_name is not None:
            transformers = [c for c in transformers if c.name == base_name]
        if len(transformers) != 1:
            raise ValueError(
                f"cannot choose the base transformer in {dataset_dir}: found {[c.name for c in transformers]}; "
                "pass base_name=... or the run folder itself"
            )
        base_dir = transformers[0]
        dataset_dirs = [dataset_dir]
    dataset = str(read_opt(base_dir).get("dataset_name", base_dir.parent.name))
    if checkpoints_dir is not None:
        dataset_dirs.insert(0, Path(checkpoints_dir) / dataset)
    dataset_dirs.append(base_dir.parent.parent / dataset)

    def first_existing(name: str, what: str) -> Path:
        tried = [d / name for d in dataset_dirs]
        for candidate in tried:
            if candidate.is_dir():
                return candidate
        raise FileNotFoundError(f"{what} folder not found; looked in {[str(t) for t in tried]}")

    vq_name = str(read_opt(base_dir)["vq_name"])
    runs = {"base": base_dir, "vq": first_existing(vq_name, f"RVQ-VAE ({vq_name})")}
    if res_name is None:
        for directory in dataset_dirs:
            found = sorted(c for c in directory.glob("tres*") if _is_run(c)) if directory.is_dir() else []
            if found:
                res_name = found[0].name
                break
    if res_name is None:
        raise FileNotFoundError(f"no residual transformer (tres_*) found in {[str(d) for d in dataset_dirs]}")
    runs["residual"] = first_existing(res_name, f"residual transformer ({res_name})")
    with contextlib.suppress(FileNotFoundError):  # optional: BAMM predicts lengths itself
        runs["length_estimator"] = first_existing("length_estimator", "length estimator")
    return runs


def vq_config_from_opt(opt: dict[str, Any], dataset: str) -> VQConfig:
    """VQConfig from an official RVQ opt.txt."""
    norm = opt.get("vq_norm", "None")
    return VQConfig(
        dim_pose=DIM_POSE[dataset], nb_code=int(opt["nb_code"]), code_dim=int(opt["code_dim"]),
        output_emb_width=int(opt["output_emb_width"]), down_t=int(opt["down_t"]), stride_t=int(opt["stride_t"]),
        width=int(opt["width"]), depth=int(opt["depth"]), dilation_growth_rate=int(opt["dilation_growth_rate"]),
        activation=str(opt.get("vq_act", "relu")), norm=None if norm in (None, "None") else str(norm),
        num_quantizers=int(opt["num_quantizers"]), shared_codebook=bool(opt.get("shared_codebook", False)),
        quantize_dropout_prob=float(opt.get("quantize_dropout_prob", 0.2)), mu=float(opt.get("mu", 0.99)),
    )


def transformer_config_from_opt(opt: dict[str, Any], vq_cfg: VQConfig, residual: bool) -> TransformerConfig:
    """TransformerConfig from an official transformer opt.txt plus the values the scripts take from the VQ."""
    return TransformerConfig(
        code_dim=vq_cfg.code_dim, latent_dim=int(opt["latent_dim"]), ff_size=int(opt["ff_size"]),
        num_layers=int(opt["n_layers"]), num_heads=int(opt["n_heads"]), dropout=float(opt["dropout"]),
        cond_dim=int(opt.get("clip_dim", CLIP_DIM)), cond_drop_prob=float(opt["cond_drop_prob"]),
        num_tokens=vq_cfg.nb_code, num_quantizers=vq_cfg.num_quantizers,
        share_weight=bool(opt.get("share_weight", False)) if residual else False,
        shared_codebook=vq_cfg.shared_codebook,
    )


def _default_text_encoder(cond_dim: int, clip_path: str | Path | None) -> TextEncoder:
    clip_path = clip_path or os.environ.get("HMU_CLIP_PATH")
    if clip_path is None:
        raise FileNotFoundError(
            "official MoMask/BAMM checkpoints need the CLIP ViT-B/32 text encoder: pass clip_path=PATH "
            "(a local CLIP weights folder) or set HMU_CLIP_PATH"
        )
    encoder = load_text_encoder({"type": "clip", "path": str(clip_path)})
    if encoder.dim != cond_dim:
        raise ValueError(f"text encoder gives {encoder.dim}-dim features, the checkpoint expects {cond_dim}")
    return encoder


def load_checkpoint(
    path: Path,
    text_encoder: TextEncoder | None = None,
    clip_path: str | Path | None = None,
    checkpoints_dir: str | Path | None = None,
    base_name: str | None = None,
    res_name: str | None = None,
) -> Checkpoint:
    """Read an official MoMask or BAMM checkpoint layout (every component strictly)."""
    runs = find_runs(path, base_name=base_name, res_name=res_name, checkpoints_dir=checkpoints_dir)
    base_opt, vq_opt = read_opt(runs["base"]), read_opt(runs["vq"])
    dataset = str(vq_opt.get("dataset_name", base_opt.get("dataset_name", "t2m")))
    if dataset not in DIM_POSE:
        raise ValueError(f"unsupported dataset_name {dataset!r} in {runs['vq'] / 'opt.txt'}")

    vq_cfg = vq_config_from_opt(vq_opt, dataset)
    vq = RVQVAE(vq_cfg)
    vq_file = runs["vq"] / "model" / VQ_FILE
    load_state_dict_strict(vq, pick_state_dict(load_tar(vq_file), STATE_KEYS["vq"], vq_file), vq_file)

    base_file = runs["base"] / "model" / MASK_FILE
    base_state = pick_state_dict(load_tar(base_file), STATE_KEYS["base"], base_file)
    rows = base_state["token_emb.weight"].shape[0] if "token_emb.weight" in base_state else None
    kind = "bamm" if rows == vq_cfg.nb_code + 3 else "momask"  # BAMM's vocabulary has the end token too
    base_cfg = transformer_config_from_opt(base_opt, vq_cfg, residual=False)
    base = base_transformer_class(kind)(base_cfg)
    load_state_dict_strict(base, base_state, base_file)

    res_cfg = transformer_config_from_opt(read_opt(runs["residual"]), vq_cfg, residual=True)
    residual = ResidualTransformer(res_cfg)
    res_file = runs["residual"] / "model" / RES_FILE
    load_state_dict_strict(residual, pick_state_dict(load_tar(res_file), STATE_KEYS["residual"], res_file), res_file)

    length_estimator = None
    if "length_estimator" in runs:
        length_file = runs["length_estimator"] / "model" / LENGTH_FILE
        length_estimator = LengthEstimator(cond_dim=base_cfg.cond_dim, num_classes=50)
        state = pick_state_dict(load_tar(length_file), STATE_KEYS["length_estimator"], length_file)
        load_state_dict_strict(length_estimator, state, length_file)

    meta = runs["vq"] / "meta"
    mean = load_npy(meta / "mean.npy", (vq_cfg.dim_pose,))
    std = load_npy(meta / "std.npy", (vq_cfg.dim_pose,))
    encoder = text_encoder or _default_text_encoder(base_cfg.cond_dim, clip_path)
    manifest = {"source": "official", "runs": {k: str(v) for k, v in runs.items()}}
    return Checkpoint(
        kind=kind, dataset=dataset, text_encoder=encoder, vq=vq, base=base, residual=residual,
        length_estimator=length_estimator, mean=mean, std=std, manifest=manifest,
    )


def _vq_opt(cfg: VQConfig, name: str, dataset: str) -> dict[str, Any]:
    return {
        "name": name, "dataset_name": dataset, "nb_code": cfg.nb_code, "code_dim": cfg.code_dim,
        "output_emb_width": cfg.output_emb_width, "down_t": cfg.down_t, "stride_t": cfg.stride_t,
        "width": cfg.width, "depth": cfg.depth, "dilation_growth_rate": cfg.dilation_growth_rate,
        "vq_act": cfg.activation, "vq_norm": cfg.norm, "num_quantizers": cfg.num_quantizers,
        "shared_codebook": cfg.shared_codebook, "quantize_dropout_prob": float(cfg.quantize_dropout_prob),
        "mu": float(cfg.mu),
    }


def _transformer_opt(cfg: TransformerConfig, name: str, vq_name: str, dataset: str, residual: bool) -> dict[str, Any]:
    opt = {
        "name": name, "dataset_name": dataset, "vq_name": vq_name, "latent_dim": cfg.latent_dim,
        "ff_size": cfg.ff_size, "n_layers": cfg.num_layers, "n_heads": cfg.num_heads,
        "dropout": float(cfg.dropout), "cond_drop_prob": float(cfg.cond_drop_prob),
    }
    if residual:
        opt["share_weight"] = cfg.share_weight
    if cfg.cond_dim != CLIP_DIM:
        opt["clip_dim"] = cfg.cond_dim  # our extension for non-CLIP text features
    return opt


def save_official_layout(checkpoint: Checkpoint, root: str | Path, base_name: str | None = None,
                         vq_name: str = "rvq", res_name: str = "tres_model") -> Path:
    """Write `checkpoint` (e.g. `checkpoint.checkpoint()`) in the official folder layout under `root/<dataset>/`
    (weights-only .tar files)."""
    dataset = checkpoint.dataset
    base_name = base_name or f"{dataset}_{checkpoint.kind}"
    if not res_name.startswith("tres"):
        raise ValueError("the residual run name must start with 'tres' (the official naming)")
    folder = Path(root) / dataset
    entries = [
        (vq_name, _vq_opt(checkpoint.vq.cfg, vq_name, dataset), VQ_FILE, "vq_model", checkpoint.vq),
        (base_name, _transformer_opt(checkpoint.base.cfg, base_name, vq_name, dataset, False), MASK_FILE,
         "t2m_transformer", checkpoint.base),
        (res_name, _transformer_opt(checkpoint.residual.cfg, res_name, vq_name, dataset, True), RES_FILE,
         "res_transformer", checkpoint.residual),
    ]
    for name, opt, filename, key, module in entries:
        (folder / name / "model").mkdir(parents=True, exist_ok=True)
        write_opt(folder / name / "opt.txt", opt)
        torch.save({key: module.state_dict(), "ep": 0}, folder / name / "model" / filename)
    meta = folder / vq_name / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    np.save(meta / "mean.npy", torch.as_tensor(checkpoint.mean).cpu().numpy())
    np.save(meta / "std.npy", torch.as_tensor(checkpoint.std).cpu().numpy())
    if checkpoint.length_estimator is not None:
        (folder / "length_estimator" / "model").mkdir(parents=True, exist_ok=True)
        torch.save({"estimator": checkpoint.length_estimator.state_dict(), "epoch": 0, "niter": 0},
                   folder / "length_estimator" / "model" / LENGTH_FILE)
    return folder
