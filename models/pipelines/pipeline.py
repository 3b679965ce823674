"""Text-to-motion generation pipeline: text encoder -> base transformer -> residual -> RVQ decoder -> joints.

`MotionPipeline` owns every component of a MoMask- or BAMM-style model and reads/writes both the official
checkpoint layout and our native format (see ARCHITECTURE.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.motion.features import features_to_joints
from models.text.base import TextEncoder

FPS = 20
UNIT_LENGTH = 4
MAX_FRAMES = 196
MAX_TOKENS = MAX_FRAMES // UNIT_LENGTH
JOINTS_NUM = {"t2m": 22, "kit": 21}
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
DEFAULT_MODEL = "momask-small"

# Sampling defaults of the official generation scripts (momask-inference.md §6, bamm-differences.md §5.1).
DEFAULT_SAMPLING: dict[str, dict[str, Any]] = {
    "momask": {"timesteps": 18, "cond_scale": 4.0, "temperature": 1.0, "topk_filter_thres": 0.9,
               "gsample": False, "res_cond_scale": 5.0},
    "bamm": {"cond_scale": 4.0, "res_cond_scale": 5.0},
}


def default_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a shipped model (`weights/<name>` in the repo, or under HMU_WEIGHTS_DIR)."""
    return Path(os.environ.get("HMU_WEIGHTS_DIR", WEIGHTS_DIR)) / name


@dataclass
class GeneratedMotion:
    """One generated motion: features (T, D) de-normalised and joints (T, J, 3) in metres at 20 fps."""

    text: str
    length: int
    joints: np.ndarray
    features: np.ndarray
    seed: int | None = None


def make_generators(seeds: Sequence[int | None]) -> list[torch.Generator]:
    """One CPU generator per batch row, so a row's samples do not depend on its batch neighbours."""
    generators = []
    for seed in seeds:
        generator = torch.Generator()
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed() % (2**63)))
        generators.append(generator)
    return generators


class MotionPipeline:
    """A complete text-to-motion model (MoMask or BAMM) ready to generate."""

    def __init__(
        self,
        *,
        kind: str,
        text_encoder: TextEncoder,
        vq: torch.nn.Module,
        base: torch.nn.Module,
        residual: torch.nn.Module,
        length_estimator: torch.nn.Module | None,
        mean: np.ndarray,
        std: np.ndarray,
        dataset: str = "t2m",
        sampling: dict[str, Any] | None = None,
        card: str = "",
        manifest: dict[str, Any] | None = None,
    ) -> None:
        if kind not in DEFAULT_SAMPLING:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(DEFAULT_SAMPLING)}")
        if dataset not in JOINTS_NUM:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(JOINTS_NUM)}")
        self.kind = kind
        self.dataset = dataset
        self.text_encoder = text_encoder
        self.vq = vq.eval()
        self.base = base.eval()
        self.residual = residual.eval()
        self.length_estimator = length_estimator.eval() if length_estimator is not None else None
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float32))
        self.sampling = {**DEFAULT_SAMPLING[kind], **(sampling or {})}
        self.card = card
        self.manifest = manifest or {}
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        text_encoder: TextEncoder | None = None,
        **official_options: Any,
    ) -> MotionPipeline:
        """Load a native checkpoint directory or an official MoMask/BAMM checkpoint layout.

        `official_options` (e.g. `clip_path`, `checkpoints_dir`, `res_name`) only apply to the official layout.
        """
        from models.io import native, official

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model path {path} does not exist")
        if native.is_native(path):
            pipeline = native.load_pipeline(path, text_encoder=text_encoder)
        else:
            pipeline = official.load_pipeline(path, text_encoder=text_encoder, **official_options)
        return pipeline.to(device)

    def save_pretrained(self, path: str | Path, card: str | None = None, dtype: str = "float32") -> Path:
        """Write the pipeline in the native format (safetensors + config.json + MODEL_CARD.md)."""
        from models.io import native

        return native.save_pipeline(self, Path(path), card=card, dtype=dtype)

    @classmethod
    def random(
        cls, kind: str = "momask", size: str = "tiny", seed: int = 0, text_encoder: TextEncoder | None = None
    ) -> MotionPipeline:
        """A random-weight pipeline of a preset size (for tests and benchmarks)."""
        from models.io.native import build_components
        from models.text.base import load_text_encoder

        encoder = text_encoder or load_text_encoder({"type": "minilm"})
        torch.manual_seed(seed)
        config = {"kind": kind, "dataset": "t2m", "size": size, "cond_dim": encoder.dim}
        vq, base, residual, length_estimator = build_components(config)
        # Untrained codebooks are zeros (they are initialised from the first training batch): fill them so that
        # different codes decode to different motions.
        vq.load_state_dict({k: torch.randn_like(v) if k.endswith("codebook") else v
                            for k, v in vq.state_dict().items()})
        dim = vq.cfg.dim_pose
        rng = np.random.default_rng(seed)
        mean = rng.normal(0, 0.1, dim).astype(np.float32)
        std = rng.uniform(0.05, 0.5, dim).astype(np.float32)
        return cls(kind=kind, text_encoder=encoder, vq=vq, base=base, residual=residual,
                   length_estimator=length_estimator, mean=mean, std=std)

    def to(self, device: str | torch.device) -> MotionPipeline:
        """Move every module to `device` (sampling stays on CPU generators for reproducibility)."""
        self.device = torch.device(device)
        for module in self.modules().values():
            module.to(self.device)
        self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
        if hasattr(self.text_encoder, "to"):
            self.text_encoder.to(self.device)
        return self

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable components by file name in the native format."""
        parts = {"vq": self.vq, "base": self.base, "residual": self.residual}
        if self.length_estimator is not None:
            parts["length_estimator"] = self.length_estimator
        return parts

    @property
    def joints_num(self) -> int:
        return JOINTS_NUM[self.dataset]

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text features (B, cond_dim) for the transformers' `cond_emb`."""
        return self.text_encoder.encode(list(texts)).to(self.device, torch.float32)

    @torch.no_grad()
    def generate(
        self,
        texts: Sequence[str],
        lengths: Sequence[int | None] | None = None,
        seed: int | None = None,
        seeds: Sequence[int | None] | None = None,
        num_samples: int = 1,
        **sampling: Any,
    ) -> list[GeneratedMotion]:
        """Generate motions for `texts`.

        lengths: frames per text (None = estimated); each is floored to a multiple of 4 as in the official code.
        seed: base seed; sample i of the flattened batch uses `seed + i`. `seeds` gives one seed per text instead.
        num_samples: motions per text (outputs are grouped by text).
        sampling: timesteps, cond_scale, temperature, topk_filter_thres, gsample, res_cond_scale (None = default).
        """
        texts = list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("texts must be a non-empty list of non-empty strings")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        lengths = list(lengths) if lengths is not None else [None] * len(texts)
        if len(lengths) != len(texts):
            raise ValueError(f"got {len(lengths)} lengths for {len(texts)} texts")
        if seeds is not None and len(seeds) != len(texts):
            raise ValueError(f"got {len(seeds)} seeds for {len(texts)} texts")
        unknown = set(sampling) - set(DEFAULT_SAMPLING["momask"])
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        knobs = {**self.sampling, **{k: v for k, v in sampling.items() if v is not None}}

        rows = [(t, n, j) for t, n in zip(texts, lengths, strict=True) for j in range(num_samples)]
        if seeds is not None:
            row_seeds = [None if s is None else int(s) + j for s in seeds for j in range(num_samples)]
        elif seed is not None:
            row_seeds = [int(seed) + i for i in range(len(rows))]
        else:
            row_seeds = [None] * len(rows)
        generators = make_generators(row_seeds)

        cond = self.encode_text([t for t, _, _ in rows])
        token_lens = self._token_lengths([n for _, n, _ in rows], cond, generators)
        all_ids, token_lens = self._generate_tokens(cond, token_lens, generators, knobs)
        features = self.decode_by_length(all_ids, token_lens)
        outputs = []
        for b, (text, _, _) in enumerate(rows):
            frames = int(token_lens[b]) * UNIT_LENGTH
            feats = features[b]
            joints = features_to_joints(feats, self.joints_num)
            outputs.append(GeneratedMotion(
                text=text, length=frames, seed=row_seeds[b],
                features=feats.cpu().numpy().astype(np.float32),
                joints=joints.cpu().numpy().astype(np.float32),
            ))
        return outputs

    def _token_lengths(
        self, frames: list[int | None], cond: torch.Tensor, generators: list[torch.Generator]
    ) -> torch.Tensor | None:
        """Token lengths (B,) from requested frames; missing ones sampled by the length estimator.

        Returns None for BAMM when every length is missing, so BAMM predicts lengths with its end token.
        """
        for n in frames:
            if n is not None and not (UNIT_LENGTH <= int(n) <= MAX_FRAMES):
                raise ValueError(f"length must be between {UNIT_LENGTH} and {MAX_FRAMES} frames, got {n}")
        if all(n is None for n in frames) and self.kind == "bamm" and self.length_estimator is None:
            return None
        tokens = torch.tensor([int(n) // UNIT_LENGTH if n is not None else 0 for n in frames], dtype=torch.long)
        missing = [i for i, n in enumerate(frames) if n is None]
        if missing:
            if self.length_estimator is None:
                raise ValueError("this model has no length estimator: give a length for every text")
            idx = torch.tensor(missing)
            sampled = self.length_estimator.sample_token_lengths(cond[idx], [generators[i] for i in missing])
            tokens[idx] = sampled.cpu().clamp(1, MAX_TOKENS)
        return tokens.to(self.device)

    def _generate_tokens(
        self, cond: torch.Tensor, token_lens: torch.Tensor | None, generators: list[torch.Generator],
        knobs: dict[str, Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All RVQ layers' ids (B, L, Q) with -1 at pads, and the token lengths used."""
        if self.kind == "momask":
            base_ids = self.base.generate(
                cond, token_lens, timesteps=int(knobs["timesteps"]), cond_scale=float(knobs["cond_scale"]),
                temperature=float(knobs["temperature"]), topk_filter_thres=float(knobs["topk_filter_thres"]),
                gsample=bool(knobs["gsample"]), generator=generators,
            )
        else:
            base_ids, token_lens = self.base.generate(
                cond, token_lens, cond_scale=float(knobs["cond_scale"]), generator=generators
            )
            base_ids = base_ids[:, : int(token_lens.max())]
        all_ids = self.residual.generate(
            base_ids, cond, token_lens, temperature=float(knobs.get("temperature", 1.0)),
            cond_scale=float(knobs["res_cond_scale"]), generator=generators,
        )
        return all_ids, token_lens

    @torch.no_grad()
    def decode_by_length(self, all_ids: torch.Tensor, token_lens: torch.Tensor) -> list[torch.Tensor]:
        """Decode each row at its own length (rows of equal length share one decoder call).

        The convolutional decoder sees neighbouring frames, so decoding a short row inside a longer padded batch
        would let the padding leak into its last frames; grouping by length keeps every row independent of its
        batch neighbours.
        """
        decoded: list[torch.Tensor] = [torch.empty(0)] * all_ids.shape[0]
        lengths = token_lens.tolist()
        for n in sorted(set(lengths)):
            rows = [b for b, length in enumerate(lengths) if length == n]
            features = self.decode_tokens(all_ids[rows, : int(n)])
            for row, feats in zip(rows, features, strict=True):
                decoded[row] = feats
        return decoded

    @torch.no_grad()
    def decode_tokens(self, all_ids: torch.Tensor) -> torch.Tensor:
        """RVQ ids (B, L, Q') -> de-normalised features (B, 4L, D)."""
        normalised = self.vq.forward_decoder(all_ids)
        return normalised * self.std + self.mean

    @torch.no_grad()
    def encode_motion(self, features: torch.Tensor) -> torch.Tensor:
        """De-normalised features (B, T, D) -> RVQ ids (B, T/4, Q)."""
        return self.vq.encode((features.to(self.device) - self.mean) / self.std)
