"""The official T2M text/motion evaluator (Guo et al. 2022) with the exact checkpoint layout.

Networks and state_dict keys follow evaluator.md §4; `get_co_embeddings` follows §5 (MoMask's
ordering by motion length). Motions are normalised features (B, T, dim_pose); the last 4 dims (foot
contacts) are dropped before the movement encoder (§3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from models.common.config import DictConfig
from models.common.tensors import load_state_dict_strict, load_tar
from models.evaluator.protocol import check_motion_batch
from models.evaluator.word_vectorizer import WordVectorizer

CHECKPOINT_SUBPATH = Path("text_mot_match") / "model" / "finest.tar"
MODULE_NAMES = ("movement_encoder", "motion_encoder", "text_encoder")


@dataclass
class T2MEvaluatorConfig(DictConfig):
    dim_pose: int = 263  # 251 for KIT
    n_contacts: int = 4  # trailing foot-contact dims dropped before the movement encoder
    dim_word: int = 300
    dim_pos_ohot: int = 15
    dim_movement_enc_hidden: int = 512
    dim_movement_latent: int = 512
    dim_motion_hidden: int = 1024
    dim_text_hidden: int = 512
    dim_coemb_hidden: int = 512
    max_text_len: int = 20
    unit_length: int = 4

    @classmethod
    def for_dataset(cls, name: str) -> T2MEvaluatorConfig:
        if name == "t2m":
            return cls()
        if name == "kit":
            return cls(dim_pose=251)
        raise ValueError(f"unknown dataset {name!r} (expected 't2m' or 'kit')")



def init_weights(m: nn.Module) -> None:
    """Xavier-normal weights, zero biases for conv / linear layers (the official initialisation)."""
    if isinstance(m, (nn.Conv1d, nn.Linear)):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class MovementConvEncoder(nn.Module):
    """(B, T, input) -> (B, T // 4, output): two stride-2 convs, then a per-step linear."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float = 0.2):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.main(x.transpose(1, 2)).transpose(1, 2)  # (B, T/4, output)
        return self.out_net(x)


class BiGRUCo(nn.Module):
    """input_emb -> BiGRU (learned initial state, packed by length) -> [h_fwd, h_bwd] -> output_net."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))
        self.apply(init_weights)

    def encode(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """x: (B, T, input), lens: (B,) valid steps (any order) -> (B, output) in input order."""
        h0 = self.hidden.repeat(1, x.shape[0], 1)  # (2, B, H)
        packed = pack_padded_sequence(self.input_emb(x), lens.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed, h0)  # (2, B, H), unsorted back to input order
        return self.output_net(torch.cat([h_n[0], h_n[1]], dim=-1))


class MotionEncoderBiGRUCo(BiGRUCo):
    def forward(self, movements: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """movements (B, T/4, latent), lens (B,) in movement steps -> (B, output)."""
        return self.encode(movements, lens)


class TextEncoderBiGRUCo(BiGRUCo):
    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int):
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)
        init_weights(self.pos_emb)

    def forward(
        self, word_embs: torch.Tensor, pos_ohot: torch.Tensor, sent_len: torch.Tensor
    ) -> torch.Tensor:
        """word_embs (B, L, 300) + pos_emb(pos_ohot (B, L, 15)), sent_len (B,) -> (B, output)."""
        return self.encode(word_embs + self.pos_emb(pos_ohot), sent_len)


class CoEmbeddingEvaluator(nn.Module):
    """The motion side both evaluators share. Subclasses set `cfg` (with dim_pose, n_contacts and
    unit_length), `movement_encoder` and `motion_encoder`."""

    @property
    def dim_pose(self) -> int:
        return self.cfg.dim_pose

    @property
    def unit_length(self) -> int:
        return self.cfg.unit_length

    @property
    def device(self) -> torch.device:
        return self.motion_encoder.hidden.device

    def encode_motion(self, motions: torch.Tensor, m_lens) -> torch.Tensor:
        """(B, T, dim_pose) normalised, m_lens (B,) frames -> motion encoder output (B, E), input order
        (foot contacts dropped, lengths in movement steps)."""
        m_lens = check_motion_batch(motions, m_lens, self.cfg.dim_pose, self.cfg.unit_length)
        x = motions.to(self.device, torch.float32)[..., : self.cfg.dim_pose - self.cfg.n_contacts]
        movements = self.movement_encoder(x)  # (B, T/4, movement latent)
        return self.motion_encoder(movements, m_lens // self.cfg.unit_length)


def momask_order(m_lens) -> np.ndarray:
    """MoMask's batch permutation: `np.argsort(m_lens)[::-1]` (descending; numpy's tie order)."""
    return np.argsort(np.asarray(m_lens).tolist())[::-1].copy()


class T2MEvaluator(CoEmbeddingEvaluator):
    """Official evaluator networks (+ optional GloVe vectorizer for `text_embeddings`)."""

    def __init__(self, cfg: T2MEvaluatorConfig | None = None, vectorizer: WordVectorizer | None = None):
        super().__init__()
        self.cfg = cfg = cfg or T2MEvaluatorConfig()
        if vectorizer is not None and vectorizer.dim_word != cfg.dim_word:
            raise ValueError(
                f"word vectors have {vectorizer.dim_word} dims, the evaluator expects {cfg.dim_word}"
            )
        self.vectorizer = vectorizer
        self.movement_encoder = MovementConvEncoder(
            cfg.dim_pose - cfg.n_contacts, cfg.dim_movement_enc_hidden, cfg.dim_movement_latent
        )
        self.motion_encoder = MotionEncoderBiGRUCo(
            cfg.dim_movement_latent, cfg.dim_motion_hidden, cfg.dim_coemb_hidden
        )
        self.text_encoder = TextEncoderBiGRUCo(
            cfg.dim_word, cfg.dim_pos_ohot, cfg.dim_text_hidden, cfg.dim_coemb_hidden
        )

    # Evaluator protocol attributes (dim_pose, unit_length, device: CoEmbeddingEvaluator)
    @property
    def embed_dim(self) -> int:
        return self.cfg.dim_coemb_hidden

    # ---- raw encoders (input order; encode_motion: CoEmbeddingEvaluator) ----------------------

    def encode_text(self, word_embs, pos_ohot, sent_len) -> torch.Tensor:
        """word_embs (B, L, 300), pos_ohot (B, L, 15), sent_len (B,) -> (B, 512), input order."""
        w = torch.as_tensor(word_embs).to(self.device, torch.float32)
        p = torch.as_tensor(pos_ohot).to(self.device, torch.float32)
        n = torch.as_tensor(sent_len).to("cpu", torch.int64).reshape(-1)
        if (
            w.ndim != 3
            or w.shape[-1] != self.cfg.dim_word
            or p.shape != (*w.shape[:2], self.cfg.dim_pos_ohot)
        ):
            raise ValueError(f"bad text inputs: word_embs {tuple(w.shape)}, pos_ohot {tuple(p.shape)}")
        if n.shape[0] != w.shape[0] or (n < 1).any() or (n > w.shape[1]).any():
            raise ValueError(f"sent_len must hold {w.shape[0]} values in [1, {w.shape[1]}], got {n.tolist()}")
        return self.text_encoder(w, p, n)

    # ---- official API (MoMask wrapper semantics) ----------------------------------------------

    @torch.no_grad()
    def get_co_embeddings(self, word_embs, pos_ohot, sent_len, motions, m_lens, sort: bool = True):
        """(text_emb, motion_emb), row-aligned. sort=True (MoMask): rows reordered by `momask_order(m_lens)`;
        sort=False (BAMM): input order."""
        t_emb = self.encode_text(word_embs, pos_ohot, sent_len)
        m_emb = self.encode_motion(motions, m_lens)
        if sort:
            idx = torch.as_tensor(momask_order(m_lens), device=t_emb.device)
            t_emb, m_emb = t_emb[idx], m_emb[idx]
        return t_emb, m_emb

    @torch.no_grad()
    def get_motion_embeddings(self, motions, m_lens, sort: bool = True) -> torch.Tensor:
        """Motion embeddings; sort=True reorders rows by `momask_order(m_lens)` as MoMask does."""
        m_emb = self.encode_motion(motions, m_lens)
        if sort:
            m_emb = m_emb[torch.as_tensor(momask_order(m_lens), device=m_emb.device)]
        return m_emb

    # ---- Evaluator protocol (input order) ------------------------------------------------------

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str | Sequence[str]] | tuple) -> torch.Tensor:
        """Token sequences ('word/POS' lists or HumanML3D token strings), or a prepared
        (word_embs, pos_ohot, sent_len) tuple -> (B, 512)."""
        if isinstance(texts, tuple) and len(texts) == 3 and not isinstance(texts[0], str):
            return self.encode_text(*texts)
        if self.vectorizer is None:
            raise ValueError("this T2MEvaluator has no WordVectorizer; load it with glove_dir=...")
        return self.encode_text(*self.vectorizer.batch(texts, self.cfg.max_text_len))

    @torch.no_grad()
    def motion_embeddings(self, motions: torch.Tensor, m_lens) -> torch.Tensor:
        return self.encode_motion(motions, m_lens)


def load_official_evaluator(
    root: str | Path,
    dataset: str = "t2m",
    glove_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> T2MEvaluator:
    """Load `<root>/text_mot_match/model/finest.tar` (root = `checkpoints/<dataset>`, or the .tar
    itself) with torch.load(weights_only=True) and strict key/shape checks (a missing, unexpected or
    mis-shaped key raises a ValueError naming the entry and the key). With `glove_dir`, the
    GloVe WordVectorizer (`our_vab_*`) is attached for `text_embeddings`. Returns the model in eval mode."""
    root = Path(root)
    path = root if root.is_file() else root / CHECKPOINT_SUBPATH
    if not path.is_file():
        raise FileNotFoundError(f"official evaluator checkpoint not found: {path}")
    ckpt = load_tar(path)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    missing = [k for k in MODULE_NAMES if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: missing entries {missing} (has {sorted(ckpt)})")
    vectorizer = WordVectorizer.from_dir(glove_dir) if glove_dir is not None else None
    model = T2MEvaluator(T2MEvaluatorConfig.for_dataset(dataset), vectorizer)
    for name in MODULE_NAMES:
        if not isinstance(ckpt[name], dict):
            raise ValueError(f"{path}: entry {name!r} is a {type(ckpt[name]).__name__}, not a state_dict")
        load_state_dict_strict(getattr(model, name), ckpt[name], f"{path} [{name}]")
    model.epoch = ckpt.get("epoch")
    return model.to(device).eval()
