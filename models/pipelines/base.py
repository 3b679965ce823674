"""`MotionPipeline`: text encoder -> base transformer -> residual transformer -> RVQ decoder -> joints.

The base class owns everything the model families share: building, loading (`from_pretrained`, native or
official layout, through `models.io`), saving, `to(device)`, `copy()`, sampling defaults and decoding. One
subclass per family (`MoMaskPipeline`, `BAMMPipeline`) sets `kind`, its default `SamplingConfig` and how the
base layer is generated; subclasses register themselves by `kind`, so `MotionPipeline.from_pretrained(path)`
and `MotionPipeline.random(kind=...)` return the right one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from models.common.precision import autocast, check_precision, quantized_copy
from models.common.sampling_config import SamplingConfig
from models.io import native, official
from models.io.checkpoint import Checkpoint
from models.motion.features import features_to_joints
from models.pipelines.constants import JOINTS_NUM, MAX_FRAMES, MAX_TOKENS, UNIT_LENGTH
from models.pipelines.outputs import GeneratedMotion, make_generators, row_seeds
from models.text.base import TextEncoder, load_text_encoder

DECODE_MODES = ("per_row", "official")


def _stat(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float32 CPU tensor of normalisation statistics."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


class MotionPipeline:
    """A complete text-to-motion model ready to generate (use a subclass, or the class methods here)."""

    kind: ClassVar[str] = ""
    default_sampling: ClassVar[SamplingConfig] = SamplingConfig()
    predicts_lengths: ClassVar[bool] = False  # the base layer can choose lengths without a length estimator
    _kinds: ClassVar[dict[str, type[MotionPipeline]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:  # a family's class, not a further subclass of one
            MotionPipeline._kinds[cls.kind] = cls

    def __init__(  # reason: one keyword per component, as in diffusers pipelines (see Checkpoint)
        self,
        *,
        text_encoder: TextEncoder,
        vq: torch.nn.Module,
        base: torch.nn.Module,
        residual: torch.nn.Module,
        length_estimator: torch.nn.Module | None,
        mean: np.ndarray | torch.Tensor,
        std: np.ndarray | torch.Tensor,
        dataset: str = "t2m",
        sampling: SamplingConfig | None = None,
        card: str = "",
        manifest: dict[str, Any] | None = None,
    ) -> None:
        if not self.kind:
            raise TypeError("MotionPipeline is abstract: use MotionPipeline.for_kind(kind) or a subclass")
        if dataset not in JOINTS_NUM:
            raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(JOINTS_NUM)}")
        self.dataset = dataset
        self.text_encoder = text_encoder
        self.vq = vq.eval()
        self.base = base.eval()
        self.residual = residual.eval()
        self.length_estimator = length_estimator.eval() if length_estimator is not None else None
        self.mean, self.std = _stat(mean), _stat(std)
        self.sampling = (sampling or SamplingConfig()).over(self.default_sampling)
        self.card = card
        self.manifest = manifest or {}
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self._int8: tuple[torch.nn.Module, torch.nn.Module] | None = None

    @classmethod
    def for_kind(cls, kind: str) -> type[MotionPipeline]:
        """The pipeline class of a model kind ("momask", "bamm")."""
        if kind not in MotionPipeline._kinds:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MotionPipeline._kinds)}")
        return MotionPipeline._kinds[kind]

    # ------------------------------------------------------------------ building / loading / saving
    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> MotionPipeline:
        """The pipeline of `checkpoint.kind` holding the checkpoint's components (not copied)."""
        pipeline_class = cls if cls.kind == checkpoint.kind else cls.for_kind(checkpoint.kind)
        if not issubclass(pipeline_class, cls):
            raise ValueError(f"the checkpoint holds a {checkpoint.kind} model, not a {cls.__name__}")
        parts = {f.name: getattr(checkpoint, f.name) for f in fields(checkpoint) if f.name != "kind"}
        return pipeline_class(**parts)

    def checkpoint(self) -> Checkpoint:
        """This pipeline's components and settings (shared, not copied) for the format writers."""
        return Checkpoint(
            kind=self.kind, text_encoder=self.text_encoder, vq=self.vq, base=self.base, residual=self.residual,
            length_estimator=self.length_estimator, mean=self.mean, std=self.std, dataset=self.dataset,
            sampling=self.sampling, card=self.card, manifest=self.manifest,
        )

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
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model path {path} does not exist")
        if native.is_native(path):
            checkpoint = native.load_checkpoint(path, text_encoder=text_encoder)
        else:
            checkpoint = official.load_checkpoint(path, text_encoder=text_encoder, **official_options)
        return cls.from_checkpoint(checkpoint).to(device)

    def save_pretrained(self, path: str | Path, card: str | None = None, dtype: str = "float32") -> Path:
        """Write the pipeline in the native format (safetensors + config.json + MODEL_CARD.md)."""
        return native.save_checkpoint(self.checkpoint(), Path(path), card=card, dtype=dtype)

    @classmethod
    def random(
        cls, kind: str | None = None, size: str = "tiny", seed: int = 0, text_encoder: TextEncoder | None = None
    ) -> MotionPipeline:
        """A random-weight pipeline of a preset size (for tests and benchmarks); kind defaults to the class's
        own, else "momask"."""
        pipeline_class = cls.for_kind(kind or cls.kind or "momask")
        encoder = text_encoder or load_text_encoder({"type": "minilm"})
        torch.manual_seed(seed)
        config = {"kind": pipeline_class.kind, "dataset": "t2m", "size": size, "cond_dim": encoder.dim}
        vq, base, residual, length_estimator = native.build_components(config)
        # Untrained codebooks are zeros (they are initialised from the first training batch): fill them so that
        # different codes decode to different motions.
        vq.load_state_dict({k: torch.randn_like(v) if k.endswith("codebook") else v
                            for k, v in vq.state_dict().items()})
        dim = vq.cfg.dim_pose
        rng = np.random.default_rng(seed)
        mean = rng.normal(0, 0.1, dim).astype(np.float32)
        std = rng.uniform(0.05, 0.5, dim).astype(np.float32)
        return pipeline_class(text_encoder=encoder, vq=vq, base=base, residual=residual,
                              length_estimator=length_estimator, mean=mean, std=std)

    def copy(self) -> MotionPipeline:
        """A deep copy of every module, statistic and setting, on the same device, whose weights can be edited
        without touching this pipeline; the frozen text encoder is shared."""
        copied = copy.deepcopy(replace(self.checkpoint(), text_encoder=None))
        copied.text_encoder = self.text_encoder
        return self.from_checkpoint(copied).to(self.device)

    def to(self, device: str | torch.device) -> MotionPipeline:
        """Move every module to `device` (sampling stays on CPU generators for reproducibility)."""
        self.device = torch.device(device)
        self._int8 = None
        for module in self.modules().values():
            module.to(self.device)
        self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
        if hasattr(self.text_encoder, "to"):
            self.text_encoder.to(self.device)
        return self

    def set_precision(self, precision: str) -> MotionPipeline:
        """Run token generation at `precision` (models.common.precision): "fp32" (default), "bf16" (autocast) or
        "int8" (dynamically quantised copies of the base and residual transformers, CPU only, made at the next
        generation: edit the weights before, or call this again after editing them)."""
        if check_precision(precision) == "int8" and self.device.type != "cpu":
            raise ValueError("int8 precision runs on the CPU only")
        self.precision, self._int8 = precision, None
        return self

    def token_models(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(base, residual) transformers as generation runs them at this pipeline's precision."""
        if self.precision != "int8":
            return self.base, self.residual
        if self._int8 is None:
            self._int8 = (quantized_copy(self.base), quantized_copy(self.residual))
        return self._int8

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable components by file name in the native format."""
        return self.checkpoint().modules()

    @property
    def joints_num(self) -> int:
        return JOINTS_NUM[self.dataset]

    # ------------------------------------------------------------------ generation
    def resolve_sampling(self, sampling: SamplingConfig | None = None, **knobs: Any) -> SamplingConfig:
        """Legacy keyword `knobs` where set, else `sampling` where set, else this model's defaults."""
        return SamplingConfig.from_dict(knobs).over((sampling or SamplingConfig()).over(self.sampling))

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
        sampling: SamplingConfig | None = None,
        decode: str = "per_row",
        **knobs: Any,
    ) -> list[GeneratedMotion]:
        """Generate motions for `texts`.

        lengths: frames per text (None = estimated); each is floored to a multiple of 4 as in the official code.
        seed: base seed; sample i of the flattened batch uses `seed + i`. `seeds` gives one seed per text instead.
        num_samples: motions per text (outputs are grouped by text).
        sampling: the knobs to use where set (the model's defaults elsewhere). The legacy keyword `knobs`
        (timesteps=..., cond_scale=..., ...; None = default) override it.
        decode: "per_row" (default: each row decoded at its own length, independent of its batch neighbours,
        `decode_by_length`) or "official" (the padded batch decoded at once and cropped, as the official
        evaluation does, `decode_padded`; use it to reproduce official numbers).
        """
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
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
        resolved = self.resolve_sampling(sampling, **knobs)

        rows = [(t, n) for t, n in zip(texts, lengths, strict=True) for _ in range(num_samples)]
        seeds_of_rows = row_seeds(len(texts), num_samples, seed, seeds)
        generators = make_generators(seeds_of_rows)
        cond = self.encode_text([t for t, _ in rows])
        token_lens = self.token_lengths([n for _, n in rows], cond, generators)
        all_ids, token_lens = self.generate_tokens(cond, token_lens, generators, resolved)
        decoder = self.decode_padded if decode == "official" else self.decode_by_length
        features = decoder(all_ids, token_lens)
        outputs = []
        for b, (text, _) in enumerate(rows):
            joints = features_to_joints(features[b], self.joints_num)
            outputs.append(GeneratedMotion(
                text=text, length=int(token_lens[b]) * UNIT_LENGTH, seed=seeds_of_rows[b],
                features=features[b].cpu().numpy().astype(np.float32),
                joints=joints.cpu().numpy().astype(np.float32),
            ))
        return outputs

    def token_lengths(
        self, frames: list[int | None], cond: torch.Tensor, generators: list[torch.Generator]
    ) -> torch.Tensor | None:
        """Token lengths (B,) from requested frames; missing ones sampled by the length estimator.

        Returns None when every length is missing, the model has no length estimator and its base layer
        predicts lengths itself (`predicts_lengths`, BAMM).
        """
        for n in frames:
            if n is not None and not (UNIT_LENGTH <= int(n) <= MAX_FRAMES):
                raise ValueError(f"length must be between {UNIT_LENGTH} and {MAX_FRAMES} frames, got {n}")
        if all(n is None for n in frames) and self.predicts_lengths and self.length_estimator is None:
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

    def generate_tokens(
        self, cond: torch.Tensor, token_lens: torch.Tensor | None, generators: list[torch.Generator],
        sampling: SamplingConfig | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All RVQ layers' ids (B, L, Q) with -1 at pads, and the token lengths used.

        sampling: the knobs where set, this model's defaults elsewhere.
        """
        sampling = (sampling or SamplingConfig()).over(self.sampling)
        base, residual = self.token_models()
        with autocast(self.precision, self.device):
            base_ids, token_lens = self.generate_base(cond, token_lens, generators, sampling, base)
            all_ids = residual.generate(base_ids, cond, token_lens, sampling, generator=generators)
        return all_ids, token_lens

    def generate_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor | None, generators: list[torch.Generator],
        sampling: SamplingConfig, base: torch.nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Base-layer ids (B, max(token_lens)) with -1 at pads, and the token lengths (B,) used; `base`: the base
        transformer to run (default `self.base`; `token_models()` gives the one of this pipeline's precision)."""
        raise NotImplementedError

    @torch.no_grad()
    def infill_tokens(
        self, cond: torch.Tensor, token_lens: torch.Tensor, known_ids: torch.Tensor,
        generators: list[torch.Generator], sampling: SamplingConfig | None = None,
    ) -> torch.Tensor:
        """Token in-filling: known_ids (B, L, Q) RVQ ids with -1 where to generate -> all ids (B, L, Q), -1 at pads.

        Base-layer positions with a known id are kept and the others generated from the text around them
        (`infill_base`); the residual layers are then predicted for the whole sequence, keeping every known
        residual id. token_lens (B,) in 1..L; sampling: the knobs where set, this model's defaults elsewhere.
        """
        sampling = (sampling or SamplingConfig()).over(self.sampling)
        known_ids = known_ids.to(self.device).long()
        token_lens = token_lens.to(self.device)
        valid = torch.arange(known_ids.shape[1], device=self.device).unsqueeze(0) < token_lens.unsqueeze(1)
        base = known_ids[..., 0]
        if bool((valid & (base < 0)).any()):
            base = self.infill_base(cond, token_lens, torch.where(valid, base, -1), generators, sampling)
        known = torch.cat([base.unsqueeze(-1), known_ids[..., 1:]], dim=-1)
        return self.residual.generate(known, cond, token_lens, sampling, generator=generators)

    def infill_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor, known_base: torch.Tensor,
        generators: list[torch.Generator], sampling: SamplingConfig,
    ) -> torch.Tensor:
        """Base-layer ids (B, L) with the known codes of known_base (B, L) (-1 = generate) kept; -1 at pads."""
        raise NotImplementedError

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
    def decode_padded(self, all_ids: torch.Tensor, token_lens: torch.Tensor) -> list[torch.Tensor]:
        """Decode the padded batch in one decoder call, then crop each row to its 4 * length frames (the official
        evaluation: `-1` codes after a row's length are zero latents, which the convolutional decoder sees near
        the end of short rows, so a short row's frames depend on the batch's longest row)."""
        features = self.decode_tokens(all_ids)
        return [features[b, : int(n) * UNIT_LENGTH] for b, n in enumerate(token_lens.tolist())]

    @torch.no_grad()
    def decode_tokens(self, all_ids: torch.Tensor) -> torch.Tensor:
        """RVQ ids (B, L, Q') -> de-normalised features (B, 4L, D)."""
        normalised = self.vq.forward_decoder(all_ids)
        return normalised * self.std + self.mean

    @torch.no_grad()
    def encode_motion(self, features: torch.Tensor) -> torch.Tensor:
        """De-normalised features (B, T, D) -> RVQ ids (B, T/4, Q)."""
        return self.vq.encode((features.to(self.device) - self.mean) / self.std)
