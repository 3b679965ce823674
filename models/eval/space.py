"""The evaluator's embedding space: the evaluator, its normalisation statistics and its kind of text input.

GT crops and generated motions (our pipeline returns de-normalised features) are normalised with the
*evaluator's* statistics and zero-padded to 196 frames before embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file

from models.data.concepts import Concept
from models.eval.passes import MAX_MOTION_LEN
from models.evaluator.our_evaluator import OurEvaluator
from models.evaluator.protocol import Evaluator
from models.evaluator.t2m_evaluator import load_official_evaluator
from models.pipelines import default_model_dir


class EvalSpace:
    """An evaluator with its normalisation statistics and its kind of text input.

    kind "ours": texts are captions (sentence features), MM-Safe masks the caption with
    `concept.mask_caption`; kind "official": texts are `word/POS` tokens, MM-Safe masks tokens with
    `concept.mask_tokens` (masked words become out-of-vocabulary -> `unk`).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        mean: np.ndarray,
        std: np.ndarray,
        kind: str = "ours",
        name: str = "evaluator",
        max_motion_len: int = MAX_MOTION_LEN,
        batch_size: int = 128,
    ):
        if kind not in ("ours", "official"):
            raise ValueError(f"evaluator kind must be 'ours' or 'official', got {kind!r}")
        mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
        if mean.shape != (evaluator.dim_pose,) or std.shape != (evaluator.dim_pose,):
            raise ValueError(f"evaluator statistics must be ({evaluator.dim_pose},), got {mean.shape}, {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("evaluator statistics must be finite with a positive std")
        self.evaluator, self.mean, self.std, self.kind, self.name = evaluator, mean, std, kind, name
        self.max_motion_len, self.batch_size = max_motion_len, batch_size
        self._text_cache: dict[Any, np.ndarray] = {}

    @property
    def dim_pose(self) -> int:
        return self.evaluator.dim_pose

    def motion_embeddings(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (m_i, D) features -> (N, E): x_eval = (x - mean_eval) / std_eval, zero-padded to 196 frames."""
        out = []
        for s in range(0, len(motions), self.batch_size):
            chunk = motions[s : s + self.batch_size]
            x = torch.zeros(len(chunk), self.max_motion_len, self.dim_pose)
            lens = []
            for row, m in enumerate(chunk):
                m = np.asarray(m, np.float32)
                if m.ndim != 2 or m.shape[1] != self.dim_pose or not 0 < len(m) <= self.max_motion_len:
                    raise ValueError(
                        f"motion of shape {m.shape} does not fit the evaluator "
                        f"(T <= {self.max_motion_len}, D = {self.dim_pose})"
                    )
                x[row, : len(m)] = torch.from_numpy((m - self.mean) / self.std)
                lens.append(len(m))
            emb = self.evaluator.motion_embeddings(x, torch.tensor(lens))
            out.append(emb.detach().cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    def text_embeddings(self, captions: Sequence[str], tokens: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, E) embeddings of the captions (ours) or their tokens (official), cached per text."""
        keys = list(captions) if self.kind == "ours" else [tuple(t) for t in tokens]
        missing = list(dict.fromkeys(k for k in keys if k not in self._text_cache))
        for s in range(0, len(missing), self.batch_size):
            chunk = missing[s : s + self.batch_size]
            texts = chunk if self.kind == "ours" else [list(k) for k in chunk]
            emb = self.evaluator.text_embeddings(texts).detach().cpu().numpy().astype(np.float64)
            self._text_cache.update(zip(chunk, emb, strict=True))
        return np.stack([self._text_cache[k] for k in keys])

    def masked_text_embeddings(
        self, captions: Sequence[str], tokens: Sequence[Sequence[str]], concept: Concept
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the concept-masked texts and a bool (N,) array of which texts changed."""
        if self.kind == "ours":
            masked = [concept.mask_caption(c) for c in captions]
            changed = np.array([m != c for m, c in zip(masked, captions, strict=True)])
            return self.text_embeddings(masked, tokens), changed
        masked_tokens = [concept.mask_tokens(t) for t in tokens]
        changed = np.array([list(m) != list(t) for m, t in zip(masked_tokens, tokens, strict=True)])
        return self.text_embeddings(captions, masked_tokens), changed


def load_eval_space(
    spec: str | Path | EvalSpace = "default", glove_dir: str | Path | None = None, device: str = "cpu"
) -> EvalSpace:
    """`default` (the shipped weights/evaluator), our evaluator folder (config.json, evaluator.safetensors,
    stats.safetensors) or an official `checkpoints/t2m` root (text_mot_match, Comp_v6_KLD005/meta, GloVe)."""
    if isinstance(spec, EvalSpace):
        return spec
    path = default_model_dir("evaluator") if str(spec) == "default" else Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(
            f"evaluator folder {path} not found"
            + (
                " (train it with `hmu train evaluator` or set HMU_WEIGHTS_DIR)"
                if str(spec) == "default"
                else ""
            )
        )
    if (path / "evaluator.safetensors").is_file():
        model = OurEvaluator.from_pretrained(path).to(device)
        if (path / "stats.safetensors").is_file():
            stats = load_file(str(path / "stats.safetensors"))
            mean, std = stats["mean"], stats["std"]
        elif (path / "Mean.npy").is_file() and (path / "Std.npy").is_file():
            mean, std = np.load(path / "Mean.npy"), np.load(path / "Std.npy")
        else:
            raise FileNotFoundError(
                f"{path}: no stats.safetensors (or Mean.npy/Std.npy) with the evaluator's "
                "normalisation statistics"
            )
        return EvalSpace(model, mean, std, "ours", str(path))
    meta = path / "Comp_v6_KLD005" / "meta"
    if not (meta / "mean.npy").is_file() or not (meta / "std.npy").is_file():
        raise FileNotFoundError(
            f"{path} is neither our evaluator folder nor an official checkpoints/<dataset> "
            f"root with {meta}/mean.npy and std.npy"
        )
    if glove_dir is None:
        found = [
            p
            for p in (path / "glove", path.parent / "glove", path.parent.parent / "glove")
            if (p / "our_vab_data.npy").is_file()
        ]
        if not found:
            raise FileNotFoundError(f"GloVe files (our_vab_*) not found next to {path}: pass glove_dir")
        glove_dir = found[0]
    model = load_official_evaluator(path, glove_dir=glove_dir, device=device)
    return EvalSpace(model, np.load(meta / "mean.npy"), np.load(meta / "std.npy"), "official", str(path))
