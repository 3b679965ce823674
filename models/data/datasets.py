"""Training data from a HumanML3D-format folder (reference humanml3d-format.md §1, §2, §7, §9).

Everything is held in memory as torch tensors and batched by index, without DataLoader workers:
on 2 CPU cores a vectorised gather is much faster than per-item Python. All per-item randomness
(window order, caption choice, crop) is drawn from an explicit generator, so a batch is a pure
function of (seed, iteration) and resumed runs are exact.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from models.motion.normalize import Normalizer, apply_feat_bias

SPLITS = ("train", "val", "test", "train_val", "all")


def seed_for(*parts: int) -> int:
    """A well-mixed 63-bit seed derived from integers (e.g. (base seed, iteration, stream))."""
    state = np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) % 2**63


def generator_for(*parts: int, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed_for(*parts))
    return gen


def index_batches(n: int, size: int):
    """Consecutive index batches (tensors) covering 0..n-1, the last one possibly shorter."""
    for start in range(0, n, size):
        yield torch.arange(start, min(n, start + size))


# ------------------------------------------------------------------------------------ folder reading
def check_data_dir(data_dir: str | Path) -> Path:
    """Raise a FileNotFoundError unless `data_dir` looks like a HumanML3D-format folder."""
    data_dir = Path(data_dir)
    missing = [n for n in ("new_joint_vecs", "texts", "Mean.npy", "Std.npy") if not (data_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{data_dir} is not a HumanML3D-format folder: missing {missing}")
    return data_dir


def read_split(data_dir: str | Path, split: str) -> list[str]:
    """Clip ids listed in `<data_dir>/<split>.txt` (one per line)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    path = check_data_dir(data_dir) / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split file {path} is empty")
    return ids


def training_normalizer(data_dir: str | Path, feat_bias: float = 5.0) -> Normalizer:
    """Dataset Mean/Std with the root and contact std divided by feat_bias once (reference §7.2)."""
    base = Normalizer.from_files(check_data_dir(data_dir))
    std = apply_feat_bias(base.std, base.joints_num, feat_bias, times=1) if feat_bias != 1 else base.std
    return Normalizer(base.mean, std)


def parse_text_line(line: str) -> tuple[str, float, float]:
    """`caption#tokens#f_tag#to_tag` -> (caption, f_tag, to_tag); NaN or missing tags read as 0."""
    parts = line.strip().split("#")
    caption = parts[0].strip()

    def tag(i: int) -> float:
        try:
            value = float(parts[i])
        except (IndexError, ValueError):
            return 0.0
        return 0.0 if math.isnan(value) else value

    return caption, tag(2), tag(3)


def load_features(data_dir: Path, clip_id: str) -> np.ndarray:
    path = data_dir / "new_joint_vecs" / f"{clip_id}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} (listed in a split) not found")
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2:
        raise ValueError(f"{path}: features must be (T, D), got {x.shape}")
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------ sampling
class EpochSampler:
    """Batches of a fresh random permutation per epoch (drop_last); batch `it` depends only on (seed, it)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.seed = n, min(batch_size, n), seed
        self.per_epoch = n // self.batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def indices(self, it: int) -> torch.Tensor:
        epoch, pos = divmod(it, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.n, generator=generator_for(self.seed, epoch, 17)))
        return self._perm[1][pos * self.batch_size : (pos + 1) * self.batch_size]


# ------------------------------------------------------------------------------------ VQ windows
class MotionWindowDataset:
    """Official MotionDataset (§9.1): every `window`-frame window of every clip (T >= window), normalised."""

    def __init__(self, data_dir: str | Path, split: str, normalizer: Normalizer, window: int = 64):
        data_dir = check_data_dir(data_dir)
        clips = [normalizer.normalize(load_features(data_dir, i)) for i in read_split(data_dir, split)]
        self.clips = [torch.from_numpy(c) for c in clips if c.shape[0] >= window]
        if not self.clips:
            raise ValueError(f"no clip of split {split!r} in {data_dir} has >= {window} frames")
        self.window = window
        self.frames = torch.cat(self.clips)  # (sum T, D)
        offsets = np.cumsum([0] + [c.shape[0] for c in self.clips])
        self.starts = torch.from_numpy(np.concatenate(
            [np.arange(o, o + c.shape[0] - window + 1) for o, c in zip(offsets, self.clips, strict=False)]
        ))

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def dim(self) -> int:
        return self.frames.shape[1]

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """-> (B, window, D) float32."""
        return self.frames[self.starts[indices].unsqueeze(1) + torch.arange(self.window)]


# ------------------------------------------------------------------------------------ text-motion items
@dataclass
class Item:
    name: str
    motion: torch.Tensor        # (T, D) normalised
    captions: list[int]         # indices into TextMotionDataset.captions


class TextMotionDataset:
    """Official Text2MotionDataset (§9.2): whole clips with their whole-clip captions plus one item per
    timed caption segment; per draw a random caption and a crop to a multiple of unit_length
    (2/3 floor(T/u)·u, 1/3 (floor(T/u) − 1)·u) at a random start, zero-padded to max_motion_len.
    """

    def __init__(self, data_dir: str | Path, split: str, normalizer: Normalizer, min_len: int = 40,
                 max_len: int = 200, max_motion_len: int = 196, unit_length: int = 4, fps: int = 20):
        data_dir = check_data_dir(data_dir)
        self.unit_length, self.max_motion_len = unit_length, max_motion_len
        self.captions: list[str] = []
        caption_index: dict[str, int] = {}
        self.items: list[Item] = []

        def caption_id(text: str) -> int:
            if text not in caption_index:
                caption_index[text] = len(self.captions)
                self.captions.append(text)
            return caption_index[text]

        for clip_id in read_split(data_dir, split):
            motion = load_features(data_dir, clip_id)
            text_path = data_dir / "texts" / f"{clip_id}.txt"
            if not text_path.is_file():
                raise FileNotFoundError(f"caption file {text_path} not found")
            whole = []
            for k, line in enumerate(text_path.read_text(encoding="utf-8").splitlines()):
                caption, start, end = parse_text_line(line)
                if not caption:
                    continue
                if start == 0.0 and end == 0.0:
                    whole.append(caption_id(caption))
                    continue
                segment = motion[int(start * fps) : int(end * fps)]
                if min_len <= len(segment) < max_len:
                    self.items.append(Item(f"{clip_id}#{k}", self._tensor(segment, normalizer),
                                           [caption_id(caption)]))
            if whole and min_len <= len(motion) < max_len:
                self.items.append(Item(clip_id, self._tensor(motion, normalizer), whole))
        if not self.items:
            raise ValueError(f"split {split!r} of {data_dir} has no captioned clip of "
                             f"{min_len}..{max_len - 1} frames")
        self.lengths = torch.tensor([len(i.motion) for i in self.items])
        self.codes: torch.Tensor | None = None  # (N, unit_length, width, Q) int16 from cache_codes
        self.text_features: torch.Tensor | None = None  # (len(captions), D) from attach_text_features

    @staticmethod
    def _tensor(motion: np.ndarray, normalizer: Normalizer) -> torch.Tensor:
        return torch.from_numpy(normalizer.normalize(motion).astype(np.float32))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def max_tokens(self) -> int:
        return self.max_motion_len // self.unit_length

    def draw(self, indices: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor,
                                                                           torch.Tensor]:
        """Random (caption id, crop start, crop length) per index, all (B,) int64."""
        u = self.unit_length
        lengths = self.lengths[indices]
        n_caps = torch.tensor([len(self.items[i].captions) for i in indices.tolist()])
        pick = (torch.rand(len(indices), generator=gen) * n_caps).long()
        caption = torch.tensor([self.items[i].captions[p] for i, p in zip(indices.tolist(), pick.tolist(),
                                                                            strict=True)])
        double = torch.randint(0, 3, (len(indices),), generator=gen) == 2  # P(double) = 1/3
        m = (lengths // u - double.long()) * u
        m = m.clamp(max=self.max_motion_len)
        start = (torch.rand(len(indices), generator=gen) * (lengths - m + 1)).long()
        return caption, start, m

    def motions(self, indices: torch.Tensor, start: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Crops zero-padded to max_motion_len: (B, max_motion_len, D)."""
        d = self.items[0].motion.shape[1]
        out = torch.zeros(len(indices), self.max_motion_len, d)
        for row, (i, s, n) in enumerate(zip(indices.tolist(), start.tolist(), m.tolist(), strict=True)):
            out[row, :n] = self.items[i].motion[s : s + n]
        return out

    def token_ids(self, indices: torch.Tensor, start: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Cached RVQ ids of the crops: (B, max_tokens, Q) int64, -1 after m // unit_length."""
        if self.codes is None:
            raise ValueError("no cached codes: call cache_codes(dataset, vq) first")
        u, n = self.unit_length, self.max_tokens
        phase, first = start % u, start // u
        pos = first.unsqueeze(1) + torch.arange(n)  # (B, n)
        rows = self.codes[indices.unsqueeze(1), phase.unsqueeze(1), pos.clamp(max=self.codes.shape[2] - 1)]
        valid = torch.arange(n).unsqueeze(0) < (m // u).unsqueeze(1)
        return torch.where(valid.unsqueeze(-1), rows.long(), -1)

    def batch(self, indices: torch.Tensor, gen: torch.Generator, motion: bool = True,
              ids: bool = False) -> dict[str, torch.Tensor]:
        """A training batch: cond (B, D_text) when text features are attached, m_lens (B,),
        token_lens (B,), caption_ids (B,), and motion (B, 196, D) and/or ids (B, 49, Q)."""
        caption, start, m = self.draw(indices, gen)
        out = {"m_lens": m, "token_lens": m // self.unit_length, "caption_ids": caption}
        if self.text_features is not None:
            out["cond"] = self.text_features[caption]
        if motion:
            out["motion"] = self.motions(indices, start, m)
        if ids:
            out["ids"] = self.token_ids(indices, start, m)
        return out


# ------------------------------------------------------------------------------------ caches
def text_features_for(captions: list[str], encoder, cache_dir: str | Path | None = None,
                      batch_size: int = 256) -> torch.Tensor:
    """Sentence features (N, D) float32 (CPU) of `captions`, each unique caption encoded once.

    With `cache_dir`, features are stored in `text-<encoder spec hash>.safetensors` (+ captions JSON)
    and reused; only captions missing from the cache are encoded.
    """
    spec_key = hashlib.sha256(json.dumps(encoder.spec(), sort_keys=True).encode()).hexdigest()[:12]
    known: dict[str, torch.Tensor] = {}
    paths = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        paths = (cache_dir / f"text-{spec_key}.safetensors", cache_dir / f"text-{spec_key}.json")
        if paths[0].is_file() and paths[1].is_file():
            stored = load_file(str(paths[0]))["features"]
            names = json.loads(paths[1].read_text(encoding="utf-8"))
            known = {c: stored[k] for k, c in enumerate(names)}
    missing = sorted({c for c in captions if c not in known})
    for k in range(0, len(missing), batch_size):
        chunk = missing[k : k + batch_size]
        feats = torch.as_tensor(encoder.encode(chunk), dtype=torch.float32).cpu()
        known.update(zip(chunk, feats, strict=True))
    if paths is not None and missing:
        names = sorted(known)
        save_file({"features": torch.stack([known[c] for c in names]).contiguous()}, str(paths[0]))
        paths[1].write_text(json.dumps(names), encoding="utf-8")
    return torch.stack([known[c] for c in captions]) if captions else torch.zeros(0, encoder.dim)


def attach_text_features(dataset: TextMotionDataset, encoder, cache_dir: str | Path | None = None) -> None:
    """Pre-compute the (cached) sentence feature of every caption of `dataset`."""
    dataset.text_features = text_features_for(dataset.captions, encoder, cache_dir)


@torch.no_grad()
def cache_codes(dataset: TextMotionDataset, vq: torch.nn.Module, device: str | torch.device = "cpu",
                batch_size: int = 128) -> torch.Tensor:
    """Encode every item once per crop phase (start mod unit_length) with the VQ (argmin).

    A crop (start s, length m) then reads tokens [s // u, s // u + m // u) of phase s % u. The crop's
    border tokens see the neighbouring real frames instead of the zero padding the official code
    encodes: a small approximation that saves re-encoding every batch. -> (N, u, max T // u + 1, Q) int16.
    """
    u = dataset.unit_length
    was_training = vq.training
    vq.eval()
    q = vq.cfg.num_quantizers
    width = int(dataset.lengths.max()) // u + 1
    codes = torch.full((len(dataset), u, width, q), -1, dtype=torch.int16)
    jobs = []  # (item, phase, frames)
    for i, item in enumerate(dataset.items):
        for phase in range(u):
            frames = (len(item.motion) - phase) // u * u
            if frames >= u:
                jobs.append((i, phase, frames))
    jobs.sort(key=lambda j: j[2])
    k = 0
    while k < len(jobs):  # batches of equal length
        frames = jobs[k][2]
        group = []
        while k < len(jobs) and jobs[k][2] == frames and len(group) < batch_size:
            group.append(jobs[k])
            k += 1
        x = torch.stack([dataset.items[i].motion[p : p + frames] for i, p, _ in group]).to(device)
        ids = vq.encode(x).cpu().to(torch.int16)  # (G, frames / u, Q)
        n = min(ids.shape[1], codes.shape[2])
        for row, (i, p, _) in enumerate(group):
            codes[i, p, :n] = ids[row, :n]
    vq.train(was_training)
    dataset.codes = codes
    return codes
