"""Reader (and writer) of the official MoMask / BAMM checkpoint layout.

Layout (momask-architecture.md §1, bamm-differences.md §1):

    <checkpoints>/<dataset>/<vq_name>/{opt.txt, meta/mean.npy, meta/std.npy, model/net_best_fid.tar}
    <checkpoints>/<dataset>/<mask_name>/{opt.txt, model/latest.tar}            # MoMask base layer
    <checkpoints>/<dataset>/<res_name>/{opt.txt, model/net_best_fid.tar}       # residual transformer
    <checkpoints>/<dataset>/length_estimator/model/finest.tar
    <repo>/log/t2m/<dataset>/<bamm_name>/{opt.txt, model/latest.tar}           # BAMM base layer
    <repo>/log/vq/<dataset>/<vq_name>/{opt.txt, meta/, model/}                  # BAMM's copy of the RVQ run
    <repo>/checkpoints/<dataset>/{<res_name>, length_estimator, <vq_name>}     # MoMask's, used by BAMM

`load_checkpoint(path)` accepts a checkpoints root (or a repository holding `checkpoints/` or `log/t2m/`), a
dataset folder or a base-transformer run folder and returns a `Checkpoint` (see models/io/checkpoint.py).
`find_runs` resolves the folders: the base run (`base_name`, file `which_epoch`), then the RVQ run, its meta/,
the residual run (`res_name`) and the length estimator (`length_mode`) in `checkpoints_dir/<dataset>`, the
base's dataset folder, BAMM's `log/vq/<dataset>` and `<repo>/checkpoints/<dataset>`. A choice with several
candidates and no option raises an error naming them; only the chosen runs' opt.txt files are read.
Every `.tar` is read with `torch.load(weights_only=True)` and applied strictly. `save_official_layout` writes a
`Checkpoint` back in this layout (weights-only .tar).
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
from models.text.clip import OPENAI_BPE_FILE
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


LENGTH_MODES = ("estimator", "end_token")
SKIPPED_RUNS = ("length_estimator",)


def _is_run(path: Path) -> bool:
    return (path / "opt.txt").is_file() and (path / "model").is_dir()


def _is_vq_opt(opt: dict[str, Any]) -> bool:
    return "nb_code" in opt and "latent_dim" not in opt


def _epoch_file(which_epoch: str | None) -> str:
    """`which_epoch` as a file name: None -> latest.tar (the official default), "net_best_fid" -> ".tar" added."""
    name = which_epoch or "latest"
    return name if name.endswith(".tar") else f"{name}.tar"


def _base_candidates(dataset_dir: Path, epoch_file: str) -> list[Path]:
    """Base-transformer run folders of a dataset folder, told apart by their files only (no opt.txt is read,
    so a malformed file in an unrelated run cannot break a load): a run folder with model/<epoch_file>, no
    meta/ (RVQ and evaluator runs have one), not a residual (tres*) or the length estimator."""
    if not dataset_dir.is_dir():
        return []
    return [
        c for c in sorted(dataset_dir.iterdir())
        if c.is_dir() and _is_run(c) and not c.name.startswith("tres") and c.name not in SKIPPED_RUNS
        and not (c / "meta").is_dir() and (c / "model" / epoch_file).is_file()
    ]


def _dataset_dirs(path: Path) -> list[Path]:
    """The dataset folders `path` may mean: itself (it holds run folders), or <root>/{t2m, kit} of a checkpoints
    root, of a repository's `checkpoints/` (MoMask) or `log/t2m/` (BAMM)."""
    if any(_is_run(child) for child in path.iterdir() if child.is_dir()):
        return [path]
    found = []
    for root in (path, path / "checkpoints", path / "log" / "t2m"):
        found += [root / name for name in DIM_POSE if (root / name).is_dir()]
    if not found:
        raise FileNotFoundError(
            f"{path} is neither a native checkpoint (config.json) nor an official layout: expected run folders "
            "with opt.txt and model/, or a checkpoints root holding t2m/ or kit/"
        )
    datasets = sorted({d.name for d in found})
    if len(datasets) > 1:
        raise ValueError(f"{path} holds several datasets {datasets}: pass the dataset folder")
    return found


def _choose(candidates: list[Path], what: str, option: str, root: Path) -> Path:
    """The only candidate, else an error naming every candidate and the option that chooses."""
    if len(candidates) == 1:
        return candidates[0]
    names = [str(c.relative_to(root)) if c.is_relative_to(root) else str(c) for c in candidates]
    if not candidates:
        raise FileNotFoundError(f"no {what} found under {root}")
    raise ValueError(f"several {what} runs under {root}: {names}; choose one with {option}=NAME")


def _find_base(path: Path, base_name: str | None, epoch_file: str) -> Path:
    if _is_run(path) and not _is_vq_opt(read_opt(path)):
        return path
    dirs = _dataset_dirs(path)
    if base_name is not None:
        named = [d / base_name for d in dirs if _is_run(d / base_name)]
        if not named:
            raise FileNotFoundError(f"base transformer run {base_name!r} not found in {[str(d) for d in dirs]}")
        return _choose(named, f"base transformer ({base_name})", "base_name", path)
    candidates = [c for d in dirs for c in _base_candidates(d, epoch_file)]
    return _choose(candidates, f"base transformer (a run with model/{epoch_file})", "base_name", path)


def _search_dirs(base_dir: Path, dataset: str, checkpoints_dir: str | Path | None) -> list[Path]:
    """Where the other components of a base run are looked for, in order: `checkpoints_dir/<dataset>`, the
    base run's own dataset folder, BAMM's `log/vq/<dataset>` and the repository's `checkpoints/<dataset>`
    (for a BAMM run at <repo>/log/t2m/<dataset>/<run>), and `<root>/<dataset>` next to the base's root."""
    up = base_dir.resolve().parents
    dirs = [Path(checkpoints_dir) / dataset] if checkpoints_dir is not None else []
    dirs.append(base_dir.parent)
    if len(up) > 3:
        dirs += [up[2] / "vq" / dataset, up[3] / "checkpoints" / dataset]
    dirs.append(base_dir.parent.parent / dataset)
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


def _first(dirs: list[Path], name: str, what: str, needs: str = "") -> Path:
    tried = [d / name for d in dirs]
    for candidate in tried:
        if candidate.is_dir() and (not needs or (candidate / needs).exists()):
            return candidate
    raise FileNotFoundError(f"{what} folder not found; looked in {[str(t) for t in tried]}")


def _find_residual(dirs: list[Path], res_name: str | None, base_dir: Path) -> Path:
    if res_name is not None:
        return _first(dirs, res_name, f"residual transformer ({res_name})", "opt.txt")
    found: dict[str, Path] = {}
    for d in dirs:
        for c in (sorted(d.glob("tres*")) if d.is_dir() else []):
            if _is_run(c):
                found.setdefault(c.name, c)
    if not found:
        raise FileNotFoundError(f"no residual transformer (tres*) found in {[str(d) for d in dirs]}")
    return _choose(list(found.values()), "residual transformer (tres*)", "res_name", base_dir.parent.parent)


def find_runs(  # reason: one keyword per official choice (run names, epoch file, length mode)
    path: Path, base_name: str | None = None, res_name: str | None = None,
    checkpoints_dir: str | Path | None = None, which_epoch: str | None = None, length_mode: str | None = None,
) -> dict[str, Path]:
    """Locate the runs of one model: "base" (its run folder), "base_file" (the chosen epoch file), "vq", "meta"
    (the RVQ meta/ folder), "residual" and, unless length_mode is "end_token", "length_estimator" (required
    with length_mode "estimator", optional with None). Ambiguous choices raise a ValueError naming the
    candidates; only the opt.txt files of the chosen runs are read."""
    if length_mode is not None and length_mode not in LENGTH_MODES:
        raise ValueError(f"length_mode must be one of {LENGTH_MODES}, got {length_mode!r}")
    path, epoch_file = Path(path), _epoch_file(which_epoch)
    base_dir = _find_base(path, base_name, epoch_file)
    base_file = base_dir / "model" / epoch_file
    if not base_file.is_file():
        available = sorted(p.name for p in (base_dir / "model").glob("*.tar"))
        raise FileNotFoundError(f"{base_file} not found (which_epoch={which_epoch!r}); available: {available}")
    base_opt = read_opt(base_dir)
    dataset = str(base_opt.get("dataset_name", base_dir.parent.name))
    dirs = _search_dirs(base_dir, dataset, checkpoints_dir)
    vq_name = str(base_opt["vq_name"])
    runs = {
        "base": base_dir, "base_file": base_file,
        "vq": _first(dirs, vq_name, f"RVQ-VAE ({vq_name})", f"model/{VQ_FILE}"),
        "meta": _first(dirs, vq_name, f"RVQ-VAE statistics ({vq_name}/meta)", "meta/mean.npy") / "meta",
        "residual": _find_residual(dirs, res_name, base_dir),
    }
    res_vq = read_opt(runs["residual"]).get("vq_name")
    if res_vq is not None and str(res_vq) != vq_name:
        raise ValueError(f"the residual run {runs['residual'].name} was trained on vq_name {res_vq!r}, the base "
                         f"run {base_dir.name} on {vq_name!r}: they must be equal (choose another res_name)")
    if length_mode == "estimator":
        runs["length_estimator"] = _first(dirs, "length_estimator", "length estimator", f"model/{LENGTH_FILE}")
    elif length_mode is None:
        with contextlib.suppress(FileNotFoundError):  # optional: BAMM predicts lengths itself
            runs["length_estimator"] = _first(dirs, "length_estimator", "length estimator", f"model/{LENGTH_FILE}")
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
        shared_codebook=vq_cfg.shared_codebook, trans="official" if residual else str(opt.get("trans", "official")),
    )


def _default_text_encoder(cond_dim: int, clip_path: str | Path | None) -> TextEncoder:
    clip_path = clip_path or os.environ.get("HMU_CLIP_PATH")
    if clip_path is None:
        raise FileNotFoundError(
            "official MoMask/BAMM checkpoints need the CLIP ViT-B/32 text encoder: pass clip_path=PATH (CLI: "
            "--clip-path) or set HMU_CLIP_PATH, PATH being the OpenAI weights file ViT-B-32.pt (with "
            f"{OPENAI_BPE_FILE} next to it) or a local Hugging Face openai/clip-vit-base-patch32 folder "
            "(config.json, model.safetensors or pytorch_model.bin, vocab.json, merges.txt)"
        )
    encoder = load_text_encoder({"type": "clip", "path": str(clip_path)})
    if encoder.dim != cond_dim:
        raise ValueError(f"text encoder gives {encoder.dim}-dim features, the checkpoint expects {cond_dim}")
    return encoder


def load_components(runs: dict[str, Path]) -> dict[str, Any]:
    """Build and strictly load every component of resolved `runs` (see `find_runs`): a dict with kind,
    dataset, vq, base, residual, length_estimator (or None), mean and std. No text encoder is needed."""
    base_opt, vq_opt = read_opt(runs["base"]), read_opt(runs["vq"])
    dataset = str(vq_opt.get("dataset_name", base_opt.get("dataset_name", "t2m")))
    if dataset not in DIM_POSE:
        raise ValueError(f"unsupported dataset_name {dataset!r} in {runs['vq'] / 'opt.txt'}")

    vq_cfg = vq_config_from_opt(vq_opt, dataset)
    vq = RVQVAE(vq_cfg)
    vq_file = runs["vq"] / "model" / VQ_FILE
    load_state_dict_strict(vq, pick_state_dict(load_tar(vq_file), STATE_KEYS["vq"], vq_file), vq_file)

    base_file = runs["base_file"]
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

    mean = load_npy(runs["meta"] / "mean.npy", (vq_cfg.dim_pose,))
    std = load_npy(runs["meta"] / "std.npy", (vq_cfg.dim_pose,))
    return {"kind": kind, "dataset": dataset, "vq": vq, "base": base, "residual": residual,
            "length_estimator": length_estimator, "mean": mean, "std": std}


def load_checkpoint(  # reason: the official choices of `find_runs` plus the text encoder
    path: Path,
    text_encoder: TextEncoder | None = None,
    clip_path: str | Path | None = None,
    checkpoints_dir: str | Path | None = None,
    base_name: str | None = None,
    res_name: str | None = None,
    which_epoch: str | None = None,
    length_mode: str | None = None,
) -> Checkpoint:
    """Read an official MoMask or BAMM checkpoint layout (every component strictly).

    base_name / res_name choose the base and residual runs, which_epoch the base run's file in model/
    ("latest" by default, e.g. "net_best_fid"), length_mode how missing lengths are found: "estimator" (the
    length estimator, required), "end_token" (BAMM's own end-token prediction; the estimator is not loaded) or
    None (the estimator where one is found, else BAMM's end token). See `find_runs` for the folder search.
    """
    runs = find_runs(path, base_name=base_name, res_name=res_name, checkpoints_dir=checkpoints_dir,
                     which_epoch=which_epoch, length_mode=length_mode)
    parts = load_components(runs)
    if length_mode == "end_token" and parts["kind"] != "bamm":
        raise ValueError("length_mode 'end_token' needs a BAMM base transformer (MoMask has no end token)")
    encoder = text_encoder or _default_text_encoder(parts["base"].cfg.cond_dim, clip_path)
    mode = length_mode or ("estimator" if parts["length_estimator"] is not None else "end_token")
    manifest = {"source": "official", "runs": {k: str(v) for k, v in runs.items()}, "length_mode": mode}
    return Checkpoint(text_encoder=encoder, manifest=manifest, **parts)


def _vq_opt(cfg: VQConfig, name: str, dataset: str) -> dict[str, Any]:
    return {
        "name": name, "dataset_name": dataset, "nb_code": cfg.nb_code, "code_dim": cfg.code_dim,
        "output_emb_width": cfg.output_emb_width, "down_t": cfg.down_t, "stride_t": cfg.stride_t,
        "width": cfg.width, "depth": cfg.depth, "dilation_growth_rate": cfg.dilation_growth_rate,
        "vq_act": cfg.activation, "vq_norm": cfg.norm, "num_quantizers": cfg.num_quantizers,
        "shared_codebook": cfg.shared_codebook, "quantize_dropout_prob": float(cfg.quantize_dropout_prob),
        "mu": float(cfg.mu),
    }


def _transformer_opt(cfg: TransformerConfig, name: str, vq_name: str, dataset: str, kind: str) -> dict[str, Any]:
    """The opt.txt of a base (kind "momask"/"bamm") or residual (kind "residual") transformer run."""
    residual = kind == "residual"
    opt = {
        "name": name, "dataset_name": dataset, "vq_name": vq_name, "latent_dim": cfg.latent_dim,
        "ff_size": cfg.ff_size, "n_layers": cfg.num_layers, "n_heads": cfg.num_heads,
        "dropout": float(cfg.dropout), "cond_drop_prob": float(cfg.cond_drop_prob),
    }
    if residual:
        opt["share_weight"] = cfg.share_weight
    elif kind == "bamm":
        opt["trans"] = cfg.trans  # BAMM's option (official or t2mgpt)
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
        (base_name, _transformer_opt(checkpoint.base.cfg, base_name, vq_name, dataset, checkpoint.kind), MASK_FILE,
         "t2m_transformer", checkpoint.base),
        (res_name, _transformer_opt(checkpoint.residual.cfg, res_name, vq_name, dataset, "residual"), RES_FILE,
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
