"""Violence rate (beyond the paper): a motion-only concept classifier and the share of generations it flags.

The classifier sees normalised features only (no text): two stride-2 convolutions (T -> T/4), a BiGRU
over the valid steps and a linear head giving one logit ("concept" vs "not"). It is trained on the
train split of a HumanML3D-format folder with class-balanced batches of random crops; labels come from
the dataset's `meta.json` (`violent` per clip, written by `models/data/build.py`) for the `violence`
concept, else from the concept's keywords matching the clip's captions.

`violence_rate` reports the flagged share with a 95 % **Wilson score** interval.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence

from models.common.config import DictConfig
from models.common.tensors import load_state_dict_strict
from models.data.concepts import Concept, get_concept
from models.data.datasets import check_data_dir, load_features, read_split
from models.data.forget_retain import caption_lines, is_forget

FORMAT = "hmu-motion-classifier"
FORMAT_VERSION = 1
Z95 = 1.959963984540054


@dataclass
class ClassifierConfig(DictConfig):
    dim_pose: int = 263
    hidden: int = 64
    dropout: float = 0.2
    min_len: int = 40  # crops are 40..max_len frames, multiples of 4
    max_len: int = 196
    threshold: float = 0.5



class ViolenceClassifier(nn.Module):
    """(B, T, D) normalised features + lengths -> (B,) concept logits. Holds the dataset Mean/Std."""

    def __init__(
        self,
        cfg: ClassifierConfig | None = None,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ):
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        h = cfg.hidden
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.dim_pose, h, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Dropout(cfg.dropout),
            nn.Conv1d(h, h, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.gru = nn.GRU(h, h, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * h, 1))
        self.register_buffer(
            "mean",
            torch.as_tensor(np.zeros(cfg.dim_pose) if mean is None else mean, dtype=torch.float32).reshape(
                -1
            ),
        )
        self.register_buffer(
            "std",
            torch.as_tensor(np.ones(cfg.dim_pose) if std is None else std, dtype=torch.float32).reshape(-1),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) normalised, zero after `lengths` -> (B,) logits."""
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T/4, H)
        steps = (lengths.cpu() // 4).clamp(1, h.shape[1])
        _, h_n = self.gru(pack_padded_sequence(h, steps, batch_first=True, enforce_sorted=False))
        return self.head(torch.cat([h_n[0], h_n[1]], dim=-1)).squeeze(-1)

    def batch(self, motions: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (T_i, D) features -> normalised zero-padded (B, T_max, D), lengths (B,) (cut, /4)."""
        lens = [min(len(m), self.cfg.max_len) // 4 * 4 for m in motions]
        if any(n < 4 for n in lens):
            raise ValueError("every motion needs at least 4 frames")
        x = torch.zeros(len(motions), max(lens), self.cfg.dim_pose)
        for row, (m, n) in enumerate(zip(motions, lens, strict=True)):
            m = torch.as_tensor(np.asarray(m, np.float32)[:n])
            if m.shape[-1] != self.cfg.dim_pose:
                raise ValueError(
                    f"motion has {m.shape[-1]} features, the classifier expects {self.cfg.dim_pose}"
                )
            x[row, :n] = (m - self.mean) / self.std
        return x.to(self.mean.device), torch.tensor(lens)

    @torch.no_grad()
    def predict_proba(self, motions: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Raw features -> (N,) probability of the concept."""
        if len(motions) == 0:
            raise ValueError("no motions to classify")
        was = self.training
        self.eval()
        out = [
            torch.sigmoid(self(*self.batch(motions[s : s + batch_size]))).cpu().numpy()
            for s in range(0, len(motions), batch_size)
        ]
        self.train(was)
        return np.concatenate(out)

    def predict(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict_proba(motions) >= self.cfg.threshold

    # ---- persistence ------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, info: dict | None = None) -> Path:
        """Write `config.json` (config, concept, metrics) and `classifier.safetensors` (weights, Mean/Std)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            **(info or {}),
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
            str(path / "classifier.safetensors"),
        )
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ViolenceClassifier:
        path = Path(path)
        cfg_path, weights = path / "config.json", path / "classifier.safetensors"
        for p in (cfg_path, weights):
            if not p.is_file():
                raise FileNotFoundError(f"classifier file not found: {p}")
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: not a {FORMAT} v{FORMAT_VERSION} config")
        model = cls(ClassifierConfig.from_dict(meta["config"]))
        load_state_dict_strict(model, load_file(str(weights)), weights)
        model.info = {k: v for k, v in meta.items() if k not in ("format", "format_version", "config")}
        return model.eval()


# ---------------------------------------------------------------------------------------------- rates
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: (c - h, c + h) with
    c = (p + z²/2n) / (1 + z²/n), h = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def violence_rate(
    classifier: ViolenceClassifier, motions: Sequence[np.ndarray]
) -> tuple[float, tuple[float, float]]:
    """Share of `motions` (raw features) classified as the concept, with its 95 % Wilson interval."""
    flags = classifier.predict(motions)
    return float(flags.mean()), wilson_interval(int(flags.sum()), len(flags))


# ---------------------------------------------------------------------------------------------- data
def clip_labels(data_dir: str | Path, ids: Sequence[str], concept: Concept) -> tuple[np.ndarray, str]:
    """Per-clip labels: `meta.json` `violent` flags for the violence concept if the folder has them,
    otherwise the concept's keywords on the captions. -> (bool (N,), source)."""
    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if concept.name == "violence" and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if all(i in meta and "violent" in meta[i] for i in ids):
            return np.array([bool(meta[i]["violent"]) for i in ids]), "meta.json"
    return np.array([is_forget(caption_lines(data_dir, i), concept) for i in ids]), "captions"


def load_clips(
    data_dir: Path, split: str, concept: Concept, min_len: int
) -> tuple[list[np.ndarray], np.ndarray, str]:
    ids = read_split(data_dir, split)
    labels, source = clip_labels(data_dir, ids, concept)
    clips = [load_features(data_dir, i) for i in ids]
    keep = [k for k, c in enumerate(clips) if len(c) >= min_len]
    return [clips[k] for k in keep], labels[keep], source


def random_crops(
    clips: Sequence[np.ndarray], idx: np.ndarray, rng: np.random.Generator, min_len: int, max_len: int
) -> list[np.ndarray]:
    """One random crop per index: length uniform in [min_len, min(T, max_len)] floored to a multiple of 4."""
    out = []
    for i in idx:
        t = len(clips[i])
        n = int(rng.integers(min_len, min(t, max_len) + 1)) // 4 * 4
        s = int(rng.integers(0, t - n + 1))
        out.append(clips[i][s : s + n])
    return out


def classification_metrics(pred: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and the confusion counts of boolean predictions."""
    pred, labels = np.asarray(pred, bool), np.asarray(labels, bool)
    tp, tn = int((pred & labels).sum()), int((~pred & ~labels).sum())
    fp, fn = int((pred & ~labels).sum()), int((~pred & labels).sum())
    recalls = [tp / (tp + fn)] if tp + fn else []
    recalls += [tn / (tn + fp)] if tn + fp else []
    return {
        "n": int(labels.size),
        "positives": int(labels.sum()),
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class ClassifierTraining:
    """How the classifier is trained (`hmu evaluate-classifier --steps --batch-size --seed`)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    eval_split: str = "test"  # whole clips of this split give the held-out metrics

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"steps must be >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")


def fit_classifier(
    clips: Sequence[np.ndarray],
    pos: np.ndarray,
    neg: np.ndarray,
    training: ClassifierTraining,
    build: Callable[[], ViolenceClassifier],
    progress: Callable[[float, str], None] | None = None,
) -> tuple[ViolenceClassifier, list[float], float]:
    """Seed torch and numpy with `training.seed`, build the model and train it on class-balanced batches (half
    `pos`, half `neg` indices of `clips`) of random crops -> (model in eval mode, losses, seconds)."""
    steps, batch_size, lr = training.steps, training.batch_size, training.lr
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    model = build()
    cfg = model.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    half = batch_size // 2
    start, losses = time.perf_counter(), []
    model.train()
    for step in range(steps):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])
        target = torch.tensor([1.0] * half + [0.0] * (batch_size - half))
        x, lens = model.batch(random_crops(clips, idx, rng, cfg.min_len, cfg.max_len))
        loss = F.binary_cross_entropy_with_logits(model(x, lens), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step + 1) % 50 == 0:
            progress(
                (step + 1) / steps, f"classifier step {step + 1}/{steps} loss {np.mean(losses[-50:]):.3f}"
            )
    return model.eval(), losses, time.perf_counter() - start


def train_violence_classifier(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    concept: str | Concept = "violence",
    training: ClassifierTraining | None = None,
    cfg: ClassifierConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[ViolenceClassifier, dict]:
    """Train on the `train` split with class-balanced batches (half concept, half not) of random crops;
    report accuracy / balanced accuracy on whole clips of `training.eval_split`. Saved to `out_dir` if given."""
    training = training or ClassifierTraining()
    steps, seed = training.steps, training.seed
    eval_split = training.eval_split
    data_dir = check_data_dir(data_dir)
    concept = get_concept(concept)
    mean = np.load(data_dir / "Mean.npy", allow_pickle=False).astype(np.float32)
    std = np.load(data_dir / "Std.npy", allow_pickle=False).astype(np.float32)
    cfg = cfg or ClassifierConfig(dim_pose=mean.shape[0])
    clips, labels, source = load_clips(data_dir, "train", concept, cfg.min_len)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(
            f"the train split of {data_dir} needs clips with and without concept {concept.name!r} "
            f"(found {len(pos)} with, {len(neg)} without)"
        )
    model, losses, seconds = fit_classifier(
        clips, pos, neg, training, lambda: ViolenceClassifier(cfg, mean, std), progress
    )
    model.eval()
    metrics = {
        "train": {
            "clips": len(clips),
            "positives": int(len(pos)),
            "steps": steps,
            "final_loss": float(np.mean(losses[-50:])),
            "seconds": seconds,
        }
    }
    test_clips, test_labels, _ = load_clips(data_dir, eval_split, concept, cfg.min_len)
    if test_clips:
        metrics[eval_split] = classification_metrics(model.predict(test_clips), test_labels)
    info = {
        "concept": concept.to_dict(),
        "label_source": source,
        "data_dir": str(data_dir),
        "seed": seed,
        "metrics": metrics,
    }
    if out_dir is not None:
        model.save_pretrained(out_dir, info)
    model.info = info
    return model, info
