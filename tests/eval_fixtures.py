"""A tiny synthetic HumanML3D-format folder with violent and safe clips, and a tiny random evaluator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from models.data.pos import pos_tokens
from models.eval.space import EvalSpace
from models.evaluator.our_evaluator import OurEvaluator, OurEvaluatorConfig
from models.motion.normalize import compute_statistics

VIOLENT = ("a person kicks forward", "someone punches the air twice", "a man kicks with the left leg")
SAFE = (
    "a person walks forward",
    "someone waves the right hand",
    "a man sits down slowly",
    "a person jumps up",
)


def _line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    return f"{caption}#{' '.join(pos_tokens(caption))}#{start}#{end}"


def make_eval_dataset(root: Path, n_clips: int = 60, seed: int = 0) -> Path:
    """Every 3rd clip violent (fast 3 Hz oscillation in the first 60 dims), others safe (slow drift).

    Clips are 44..150 frames with 2 whole-clip captions; split by position: 2/3 train, 1/12 val, the rest
    test (violent clips in both). `meta.json` holds the `violent` flag per id, as models/data/build.py writes.
    """
    rng = np.random.default_rng(seed)
    for sub in ("new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    feats, meta, ids = [], {}, []
    for i in range(n_clips):
        cid = f"{i:06d}"
        violent = i % 3 == 1
        t = int(rng.integers(44, 151))
        x = np.cumsum(rng.normal(0, 0.005, (t, 263)), axis=0)
        freq = 0.9 if violent else 0.08
        x[:, :60] += 0.8 * np.sin(np.arange(t)[:, None] * freq + np.linspace(0, 6, 60) + rng.uniform(0, 6))
        x[:, 259:] = rng.random((t, 4)) > 0.5
        np.save(root / "new_joint_vecs" / f"{cid}.npy", x.astype(np.float32))
        feats.append(x)
        pool = VIOLENT if violent else SAFE
        caps = [pool[i % len(pool)], pool[(i + 1) % len(pool)]]
        (root / "texts" / f"{cid}.txt").write_text("\n".join(_line(c) for c in caps) + "\n")
        meta[cid] = {"violent": violent, "frames": t}
        ids.append(cid)
    mean, std = compute_statistics(feats)
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    n_train, n_val = 2 * n_clips // 3, n_clips // 12
    splits = {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}
    splits["train_val"] = splits["train"] + splits["val"]
    splits["all"] = ids
    for name, part in splits.items():
        (root / f"{name}.txt").write_text("\n".join(part) + "\n")
    (root / "meta.json").write_text(json.dumps(meta))
    return root


class HashSentences:
    """Deterministic 384-d caption features from word hashes (no model download)."""

    dim = 384

    def encode(self, texts):
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                g = torch.Generator().manual_seed(int(hashlib.sha256(word.encode()).hexdigest()[:12], 16))
                out[row] += torch.randn(self.dim, generator=g)
        return out


def tiny_space(data_dir: Path, seed: int = 0) -> EvalSpace:
    """A tiny random OurEvaluator (eval mode) with the dataset's Mean/Std as its statistics."""
    torch.manual_seed(seed)
    cfg = OurEvaluatorConfig(
        movement_hidden=16, movement_latent=16, motion_hidden=16, text_hidden=16, embed_dim=8, dropout=0.0
    )
    model = OurEvaluator(cfg, HashSentences()).eval()
    return EvalSpace(
        model, np.load(data_dir / "Mean.npy"), np.load(data_dir / "Std.npy"), "ours", "tiny-random"
    )
