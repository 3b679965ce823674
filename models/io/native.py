"""Our native checkpoint format: one directory with config.json, safetensors per component and a model card.

Reads a directory into a `Checkpoint` (`load_checkpoint`) and writes one (`save_checkpoint`); pipelines
wrap these (`MotionPipeline.from_pretrained` / `save_pretrained`). Deterministic buffers (the sinusoidal
`position_enc.pe` tables) are not stored: they are rebuilt by the module constructors, which keeps shipped
bundles small. Everything else loads strictly.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from models.common.markdown import render
from models.common.sampling_config import SamplingConfig
from models.common.tensors import load_state_dict_strict
from models.common.transformer_config import TransformerConfig
from models.io.checkpoint import Checkpoint, base_transformer_class
from models.momask import LengthEstimator, LengthEstimatorConfig, ResidualTransformer
from models.presets import TRANSFORMER_PRESETS, VQ_PRESETS, preset
from models.text.base import TextEncoder, load_text_encoder
from models.version import package_version
from models.vq import RVQVAE, VQConfig

FORMAT = "hmu-native"
FORMAT_VERSION = 1
DERIVED_BUFFER_SUFFIXES = ("position_enc.pe",)
COMPONENT_FILES = ("vq", "base", "residual", "length_estimator")


def is_native(path: Path) -> bool:
    """True when `path` is a directory holding a native config.json."""
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError):
        return False


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_components(config: dict[str, Any]) -> tuple[torch.nn.Module, ...]:
    """Instantiate (vq, base, residual, length_estimator|None) with random weights from a native config.

    `config` holds either explicit component configs ("vq", "base", "residual", "length_estimator") or a
    preset "size" plus "cond_dim".
    """
    base_class = base_transformer_class(config["kind"])
    size = config.get("size")
    if "vq" in config:
        vq_cfg = VQConfig.from_dict(config["vq"])
    else:
        dim_pose = 263 if config.get("dataset", "t2m") == "t2m" else 251
        vq_cfg = VQConfig(dim_pose=dim_pose, **preset(VQ_PRESETS, size))
    shared = {"num_tokens": vq_cfg.nb_code, "code_dim": vq_cfg.code_dim, "num_quantizers": vq_cfg.num_quantizers}
    if "base" in config:
        base_cfg = TransformerConfig.from_dict(config["base"])
        res_cfg = TransformerConfig.from_dict(config["residual"])
    else:
        overrides = {**preset(TRANSFORMER_PRESETS, size), **shared, "cond_dim": int(config["cond_dim"])}
        base_cfg = TransformerConfig(**overrides)
        res_cfg = TransformerConfig(**{**overrides, "cond_drop_prob": 0.2, "share_weight": True})
    base = base_class(base_cfg)
    residual = ResidualTransformer(res_cfg)
    length_cfg = config.get("length_estimator", {"cond_dim": base_cfg.cond_dim, "num_classes": 50})
    length_estimator = None
    if length_cfg is not None:
        length_estimator = LengthEstimator.from_config(LengthEstimatorConfig.from_dict(length_cfg))
    return RVQVAE(vq_cfg), base, residual, length_estimator


def _stored_state(module: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    state = module.state_dict()
    return {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().clone().contiguous()
        for k, v in state.items()
        if not k.endswith(DERIVED_BUFFER_SUFFIXES)
    }


def _load_component(module: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"missing component file {path}")
    state = load_file(str(path))
    for key, value in module.state_dict().items():
        if key.endswith(DERIVED_BUFFER_SUFFIXES):
            state.setdefault(key, value)
    load_state_dict_strict(module, state, path)


def checkpoint_config(checkpoint: Checkpoint) -> dict[str, Any]:
    """The config.json dict describing `checkpoint`."""
    sampling = checkpoint.sampling or SamplingConfig()
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": checkpoint.kind,
        "dataset": checkpoint.dataset,
        "software_version": package_version(),
        "text_encoder": checkpoint.text_encoder.spec(),
        "vq": checkpoint.vq.cfg.to_dict(),
        "base": checkpoint.base.cfg.to_dict(),
        "residual": checkpoint.residual.cfg.to_dict(),
        "length_estimator": None,
        "sampling": sampling.to_dict(),
        "storage_dtype": "float32",
    }
    if checkpoint.length_estimator is not None:
        config["length_estimator"] = checkpoint.length_estimator.cfg.to_dict()
    return config


STORAGE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def save_checkpoint(checkpoint: Checkpoint, out: Path, card: str | None = None, dtype: str = "float32") -> Path:
    """Write `checkpoint` to directory `out` (created; existing component files are overwritten).

    dtype: storage precision of the weights ("float16" halves shipped bundles); loading casts back to the
    modules' float32, so a float32 save round-trips bit-exactly and a float16 save to float16 precision.
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}")
    out.mkdir(parents=True, exist_ok=True)
    for name, module in checkpoint.modules().items():
        save_file(_stored_state(module, STORAGE_DTYPES[dtype]), str(out / f"{name}.safetensors"),
                  metadata={"component": name})  # one key: safetensors orders several keys at random
    stats = {name: torch.as_tensor(value, dtype=torch.float32).cpu().contiguous()
             for name, value in (("mean", checkpoint.mean), ("std", checkpoint.std))}
    save_file(stats, str(out / "stats.safetensors"), metadata={"component": "stats"})
    config = {**checkpoint_config(checkpoint), "storage_dtype": dtype}
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "MODEL_CARD.md").write_text(card if card is not None else (checkpoint.card or default_card(checkpoint)))
    manifest = dict(checkpoint.manifest)
    manifest.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    manifest["files"] = {
        p.name: sha256_file(p) for p in sorted(out.glob("*.safetensors")) + [out / "config.json"]
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def default_card(checkpoint: Checkpoint) -> str:
    """A minimal model card for checkpoints saved without one (package template `templates/default_card.md`)."""
    return render(__file__, "templates/default_card.md", kind=checkpoint.kind, dataset=checkpoint.dataset,
                  text_encoder=checkpoint.text_encoder.spec())


def load_checkpoint(path: Path, text_encoder: TextEncoder | None = None) -> Checkpoint:
    """Read a native checkpoint directory (every component file strictly)."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported native format version {config.get('format_version')}")
    vq, base, residual, length_estimator = build_components(config)
    for name, module in (("vq", vq), ("base", base), ("residual", residual), ("length_estimator", length_estimator)):
        if module is not None:
            _load_component(module, path / f"{name}.safetensors")
    stats_path = path / "stats.safetensors"
    if not stats_path.is_file():
        raise FileNotFoundError(f"missing normalisation statistics {stats_path}")
    stats = load_file(str(stats_path))
    mean, std = stats["mean"].numpy(), stats["std"].numpy()
    if mean.shape != (vq.cfg.dim_pose,) or std.shape != (vq.cfg.dim_pose,) or not np.isfinite(std).all():
        raise ValueError(f"{stats_path}: mean/std must be finite vectors of size {vq.cfg.dim_pose}")
    encoder = text_encoder or load_text_encoder(config["text_encoder"])
    if encoder.dim != base.cfg.cond_dim:
        raise ValueError(f"text encoder gives {encoder.dim}-dim features but the model expects {base.cfg.cond_dim}")
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    card_path = path / "MODEL_CARD.md"
    return Checkpoint(
        kind=config["kind"], dataset=config.get("dataset", "t2m"), text_encoder=encoder, vq=vq, base=base,
        residual=residual, length_estimator=length_estimator, mean=mean, std=std,
        sampling=SamplingConfig.from_dict(config.get("sampling")),
        card=card_path.read_text() if card_path.is_file() else "", manifest=manifest,
    )
