"""A tiny synthetic HumanML3D-format folder for the unlearning tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAFE = [
    "a person walks forward#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0",
    "someone waves with the right hand#someone/PRON wave/VERB with/ADP the/DET right/ADJ hand/NOUN#0.0#0.0",
    "a man in a white shirt sits down#a/DET man/NOUN in/ADP a/DET white/ADJ shirt/NOUN sit/VERB#0.0#0.0",
]
KICK = (
    "a person kicks with the left leg#a/DET person/NOUN kick/VERB with/ADP the/DET left/ADJ leg/NOUN#0.0#0.0"
)
PUNCH = "a man throws a punch#a/DET man/NOUN throw/VERB a/DET punch/NOUN#0.0#0.0"


def make_dataset(root: Path, n: int = 24, seed: int = 0, dim: int = 263) -> Path:
    """`n` clips of 40..100 frames; every 4th clip kicks, every 6th punches (distinct feature offsets)."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True, exist_ok=True)
    (root / "texts").mkdir(exist_ok=True)
    ids = []
    for i in range(n):
        clip = f"{i:06d}"
        ids.append(clip)
        x = rng.normal(0, 1, (int(rng.integers(40, 100)), dim)).astype(np.float32)
        lines = [SAFE[i % len(SAFE)]]
        if i % 4 == 0:
            x[:, : dim // 2] += 3.0
            lines.append(KICK)
        elif i % 6 == 1:
            x[:, dim // 2 :] -= 3.0
            lines.append(PUNCH)
        np.save(root / "new_joint_vecs" / f"{clip}.npy", x)
        (root / "texts" / f"{clip}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.save(root / "Mean.npy", np.zeros(dim, np.float32))
    np.save(root / "Std.npy", np.ones(dim, np.float32))
    n_train = int(n * 0.75)
    (root / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "val.txt").write_text("\n".join(ids[n_train : n_train + 2]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[n_train + 2 :]) + "\n")
    (root / "train_val.txt").write_text("\n".join(ids[: n_train + 2]) + "\n")
    return root
