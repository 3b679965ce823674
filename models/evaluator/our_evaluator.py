"""Our text/motion co-embedding evaluator for the project's own (small-data) models.

T2M-style: motion side = the official kind of conv movement encoder + BiGRU over normalised
features (foot contacts dropped, as in the official evaluator), text side = a small MLP over the
frozen 384-d sentence feature of our MiniLM text encoder (`models/text`). Embeddings are
L2-normalised and multiplied by `embed_scale`, so Euclidean ranking (what the metrics use) equals
cosine ranking (what InfoNCE trains). Trained with `contrastive_loss` by `models/train`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from models.common.config import DictConfig
from models.common.tensors import load_state_dict_strict
from models.evaluator.t2m_evaluator import (
    CoEmbeddingEvaluator,
    MotionEncoderBiGRUCo,
    MovementConvEncoder,
    init_weights,
)
from models.text.base import load_text_encoder as load_spec

FORMAT = "hmu-evaluator"
FORMAT_VERSION = 1


class SentenceEncoder(Protocol):
    def encode(self, texts: list[str]):  # (B, D) float32, tensor or array
        ...


@dataclass
class OurEvaluatorConfig(DictConfig):
    dim_pose: int = 263
    n_contacts: int = 4  # trailing foot-contact dims dropped before the movement encoder
    unit_length: int = 4  # the movement encoder down-samples by 4
    movement_hidden: int = 256
    movement_latent: int = 256
    motion_hidden: int = 256
    text_dim: int = 384  # MiniLM sentence feature
    text_hidden: int = 256
    embed_dim: int = 256
    embed_scale: float = 1.0  # embeddings live on a sphere of this radius
    dropout: float = 0.2
    # loss
    temperature: float = 0.1  # InfoNCE on cosine similarity
    margin: float = 1.0  # T2M-style margin term (in embedding units; <= 2 * embed_scale)
    margin_weight: float = 0.0  # 0 -> InfoNCE only
    dedup_threshold: float = 0.95  # off-diagonal pairs whose sentence features have cos >= this
    # are not used as negatives (templated captions repeat)

    def __post_init__(self):
        if self.dim_pose <= self.n_contacts:
            raise ValueError(f"dim_pose {self.dim_pose} must exceed n_contacts {self.n_contacts}")
        if self.unit_length != 4:
            raise ValueError("the conv movement encoder down-samples by exactly 4; unit_length must be 4")
        if self.temperature <= 0 or self.embed_scale <= 0:
            raise ValueError("temperature and embed_scale must be positive")



class TextProjection(nn.Module):
    """(B, text_dim) sentence feature -> (B, embed_dim)."""

    def __init__(self, cfg: OurEvaluatorConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.text_hidden),
            nn.LayerNorm(cfg.text_hidden),
            nn.LeakyReLU(0.2),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.text_hidden, cfg.embed_dim),
        )
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OurEvaluator(CoEmbeddingEvaluator):
    """Co-embedding evaluator. `text_encoder` (frozen, not part of the state_dict) turns captions
    into sentence features; without it, `text_embeddings` accepts only pre-computed features."""

    def __init__(self, cfg: OurEvaluatorConfig | None = None, text_encoder: SentenceEncoder | None = None):
        super().__init__()
        self.cfg = cfg = cfg or OurEvaluatorConfig()
        if text_encoder is not None and getattr(text_encoder, "dim", cfg.text_dim) != cfg.text_dim:
            raise ValueError(f"text encoder gives {text_encoder.dim}-d features, expected {cfg.text_dim}")
        self.text_encoder = text_encoder  # plain attribute: not an nn.Module child, not saved
        self.movement_encoder = MovementConvEncoder(
            cfg.dim_pose - cfg.n_contacts, cfg.movement_hidden, cfg.movement_latent, cfg.dropout
        )
        self.motion_encoder = MotionEncoderBiGRUCo(cfg.movement_latent, cfg.motion_hidden, cfg.embed_dim)
        self.text_proj = TextProjection(cfg)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def _sphere(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.cfg.embed_scale

    def sentence_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Captions -> (B, text_dim) with the attached frozen text encoder."""
        if self.text_encoder is None:
            raise ValueError("OurEvaluator has no text_encoder; pass sentence features (B, text_dim) instead")
        if isinstance(texts, str) or len(texts) == 0 or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a non-empty list of captions (str)")
        with torch.no_grad():
            return torch.as_tensor(self.text_encoder.encode(list(texts)), dtype=torch.float32)

    def embed_text(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Captions or features (B, text_dim) -> (B, embed_dim), with gradients (for training)."""
        feats = texts if isinstance(texts, torch.Tensor) else self.sentence_features(texts)
        if feats.ndim != 2 or feats.shape[1] != self.cfg.text_dim or feats.shape[0] == 0:
            raise ValueError(f"sentence features must be (B, {self.cfg.text_dim}), got {tuple(feats.shape)}")
        return self._sphere(self.text_proj(feats.to(self.device, torch.float32)))

    def embed_motion(self, motions: torch.Tensor, m_lens) -> torch.Tensor:
        """(B, T, dim_pose) normalised, m_lens (B,) frames -> (B, embed_dim), with gradients."""
        return self._sphere(self.encode_motion(motions, m_lens))

    def forward(self, texts, motions, m_lens) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_text(texts), self.embed_motion(motions, m_lens)

    # ---- persistence ----------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, text_encoder_spec: dict | None = None) -> None:
        """Write `config.json` (config + text encoder spec) and `evaluator.safetensors` to `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if text_encoder_spec is None and self.text_encoder is not None and hasattr(self.text_encoder, "spec"):
            text_encoder_spec = self.text_encoder.spec()
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.cfg.to_dict()}
        meta["text_encoder"] = text_encoder_spec
        (path / "config.json").write_text(json.dumps(meta, indent=2))
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path / "evaluator.safetensors"))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, text_encoder: SentenceEncoder | None = None, load_text_encoder: bool = True
    ) -> OurEvaluator:
        """Load a directory written by `save_pretrained` (strict keys/shapes), in eval mode. Without
        `text_encoder`, the stored spec is loaded with `models.text.load_text_encoder` if asked."""
        path = Path(path)
        cfg_path, weights = path / "config.json", path / "evaluator.safetensors"
        for p in (cfg_path, weights):
            if not p.is_file():
                raise FileNotFoundError(f"evaluator file not found: {p}")
        meta = json.loads(cfg_path.read_text())
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: not a {FORMAT} v{FORMAT_VERSION} config")
        spec = meta.get("text_encoder")
        if text_encoder is None and load_text_encoder and spec is not None:
            text_encoder = load_spec(spec, search_paths=[path])
        model = cls(OurEvaluatorConfig.from_dict(meta["config"]), text_encoder)
        load_state_dict_strict(model, load_file(str(weights)), weights)
        return model.eval()

    # ---- Evaluator protocol (no grad, input order) ----------------------------------------------

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        return self.embed_text(texts)

    @torch.no_grad()
    def motion_embeddings(self, motions: torch.Tensor, m_lens) -> torch.Tensor:
        return self.embed_motion(motions, m_lens)


def contrastive_loss(
    text_emb: torch.Tensor,
    motion_emb: torch.Tensor,
    cfg: OurEvaluatorConfig,
    text_features: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE on cosine similarity (+ `margin_weight` x the T2M margin loss).

    text_emb, motion_emb: (B, E) aligned pairs. text_features (B, text_dim), if given, removes
    near-duplicate captions (cos >= dedup_threshold) from each other's negatives. The margin term
    (T2M): positives' squared distance + clamp(margin - d(t_i, m_{i+s}), 0)^2 with one random cyclic
    shift s in [1, B-1] drawn from `generator`. Returns (loss, {name: value}) for logging.
    """
    if text_emb.ndim != 2 or text_emb.shape != motion_emb.shape:
        raise ValueError(
            f"embeddings must be equal (B, E) shapes, got {tuple(text_emb.shape)}, {tuple(motion_emb.shape)}"
        )
    b = text_emb.shape[0]
    if b < 2:
        raise ValueError("contrastive loss needs a batch of at least 2 pairs")
    logits = F.normalize(text_emb, dim=-1) @ F.normalize(motion_emb, dim=-1).T / cfg.temperature  # (B, B)
    if text_features is not None:
        if text_features.shape[0] != b:
            raise ValueError(f"text_features has {text_features.shape[0]} rows for a batch of {b}")
        f = F.normalize(text_features.to(logits.device, torch.float32), dim=-1)
        dup = (f @ f.T >= cfg.dedup_threshold) & ~torch.eye(b, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(dup, float("-inf"))
    target = torch.arange(b, device=logits.device)
    nce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    logs = {"infonce": float(nce.detach())}
    loss = nce
    if cfg.margin_weight > 0:
        shift = int(torch.randint(1, b, (1,), generator=generator))
        pos = (text_emb - motion_emb).pow(2).sum(-1)
        neg_d = F.pairwise_distance(text_emb, motion_emb.roll(shift, dims=0))
        margin = (pos + (cfg.margin - neg_d).clamp(min=0).pow(2)).mean()
        logs["margin"] = float(margin.detach())
        loss = loss + cfg.margin_weight * margin
    logs["loss"] = float(loss.detach())
    return loss, logs
