"""A tiny synthetic HumanML3D-format folder and a deterministic hash text encoder for the training tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from models.motion.normalize import compute_statistics
from models.text.base import TextEncoder, register_text_encoder

ACTIONS = ("walks forward", "runs in a circle", "waves the left hand", "kicks", "jumps up", "sits down")


def make_dataset(root: Path, n_clips: int = 24, seed: int = 0) -> Path:
    """Random-walk 263-dim features (48..120 frames), 2 captions per clip (one timed), 2/3 train, 1/3 val."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    feats = []
    for i in range(n_clips):
        action = i % len(ACTIONS)
        t = int(rng.integers(48, 121))
        walk = np.cumsum(rng.normal(0, 0.05, (t, 263)), axis=0)
        wave = np.sin(np.arange(t)[:, None] * (0.1 + 0.05 * action) + rng.uniform(0, 6, 263))
        x = (walk + wave).astype(np.float32)
        x[:, 259:] = (rng.random((t, 4)) > 0.5)  # foot contacts
        np.save(root / "new_joint_vecs" / f"{i:06d}.npy", x)
        feats.append(x)
        lines = [f"a person {ACTIONS[action]}#a/DET person/NOUN#0.0#0.0",
                 f"someone {ACTIONS[action]} slowly#someone/PRON#0.0#{(t - 2) / 20:.2f}"]
        (root / "texts" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
    mean, std = compute_statistics(feats)
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    ids = [f"{i:06d}" for i in range(n_clips)]
    (root / "train.txt").write_text("\n".join(ids[: 2 * n_clips // 3]) + "\n")
    (root / "val.txt").write_text("\n".join(ids[2 * n_clips // 3 :]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[2 * n_clips // 3 :]) + "\n")
    return root


class HashTextEncoder(TextEncoder):
    """Deterministic 32-dim caption features from a sha256 of each word (no model download)."""

    name, dim = "hash-test", 32

    def __init__(self):
        super().__init__(torch.nn.Linear(1, 1))

    def spec(self) -> dict:
        return {"type": "hash-test"}

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for word in text.split():
                digest = hashlib.sha256(word.encode()).digest()
                out[row] += torch.tensor([b / 127.5 - 1 for b in digest[: self.dim]])
        return out

    @classmethod
    def from_spec(cls, spec: dict) -> HashTextEncoder:
        return cls()


register_text_encoder("hash-test", HashTextEncoder.from_spec)
