"""RVQ code statistics over a dataset for LCR (unlearning-methods.md §4.1), cached on disk.

For every text-motion item of the chosen splits and every repeat (a random crop and caption draw, as the
official data loader does), the motion is encoded by the model's RVQ-VAE and each code's *presence* per
layer is recorded. The cache holds, per item, how many repeats contained each code: `(N, Q, nb_code)`.
It does not depend on the concept, so one cache serves every concept and sub-concept.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from models.data.datasets import TextMotionDataset, generator_for, read_split
from models.motion.normalize import Normalizer

Progress = Callable[[float, str], None]
CACHE_VERSION = 2


@dataclass
class CodeStats:
    """Per-item presence counts `counts` (N, Q, K) int16 over `repeats` draws; `names[i]` = item name."""

    names: list[str]
    counts: torch.Tensor
    repeats: int

    @property
    def clip_ids(self) -> list[str]:
        """Clip id of each item (segments are named `<clip>#<line>`)."""
        return [name.split("#")[0] for name in self.names]

    def frequency(self, rows: torch.Tensor | Sequence[bool], layer: int) -> torch.Tensor:
        """f_D(n) for the items selected by the bool mask `rows`: (K,) float64 (encoded motions with n)."""
        rows = torch.as_tensor(rows, dtype=torch.bool)
        return self.counts[rows, layer].sum(0, dtype=torch.float64)


def default_cache_dir() -> Path:
    """`$HMU_CACHE_DIR/lcr`, else `~/.cache/hmu/lcr`."""
    root = os.environ.get("HMU_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "hmu") / "lcr"


def _digest_tensors(tensors: dict[str, torch.Tensor], h: hashlib._Hash) -> None:
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().numpy().tobytes())


def cache_key(
    data_dir: Path,
    splits: Sequence[str],
    vq: torch.nn.Module,
    normalizer: Normalizer,
    repeats: int,
    seed: int,
    exclude_padding: bool,
) -> str:
    """Hash of what the statistics depend on: data files (names, sizes, mtimes), VQ weights, settings."""
    h = hashlib.sha256(
        json.dumps(
            {
                "v": CACHE_VERSION,
                "dir": str(data_dir.resolve()),
                "splits": list(splits),
                "repeats": repeats,
                "seed": seed,
                "pad": exclude_padding,
            }
        ).encode()
    )
    for split in splits:
        for clip_id in read_split(data_dir, split):
            for path in (
                data_dir / "new_joint_vecs" / f"{clip_id}.npy",
                data_dir / "texts" / f"{clip_id}.txt",
            ):
                stat = path.stat() if path.exists() else None
                h.update(
                    f"{path.name}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1};".encode()
                )
    _digest_tensors(vq.state_dict(), h)
    h.update(np.ascontiguousarray(normalizer.mean, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(normalizer.std, dtype=np.float32).tobytes())
    return h.hexdigest()[:20]


def _presence(ids: torch.Tensor, nb_code: int) -> torch.Tensor:
    """ids (B, L, Q) with -1 = nothing -> (B, Q, K) int16, 1 where a code occurs at least once."""
    b, _, q = ids.shape
    slots = torch.where(ids < 0, nb_code, ids.long()).permute(0, 2, 1)  # (B, Q, L), pads -> spare slot
    out = torch.zeros(b, q, nb_code + 1, dtype=torch.int16)
    out.scatter_(2, slots, 1)
    return out[..., :nb_code]


@torch.no_grad()
def encode_items(
    dataset: TextMotionDataset, vq: torch.nn.Module, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Encode every item once (from frame 0, floor(T / 4) * 4 frames), batched by length.

    Sets `dataset.codes` so that `dataset.token_ids` reads crops from these codes: a crop starting at
    frame s reads tokens from s // 4 on, i.e. crops are aligned to the 4-frame token grid (one encoder
    pass per item instead of one per crop phase, as `cache_codes` does). -> (N, W, Q) int16, -1 = none.
    """
    u = dataset.unit_length
    frames = (dataset.lengths // u * u).tolist()
    width = int(dataset.lengths.max()) // u + 1
    codes = torch.full((len(dataset), width, vq.cfg.num_quantizers), -1, dtype=torch.int16)
    order = sorted(range(len(dataset)), key=lambda i: frames[i])
    k = 0
    while k < len(order):
        group = [order[k]]
        k += 1
        while k < len(order) and frames[order[k]] == frames[group[0]] and len(group) < batch_size:
            group.append(order[k])
            k += 1
        n = frames[group[0]]
        x = torch.stack([dataset.items[i].motion[:n] for i in group]).to(device)
        codes[group, : n // u] = vq.encode(x).cpu().to(torch.int16)
    dataset.codes = codes.unsqueeze(1).expand(-1, u, -1, -1)
    return codes


@torch.no_grad()
def _split_counts(
    dataset: TextMotionDataset,
    vq: torch.nn.Module,
    repeats: int,
    seed: int,
    split_no: int,
    exclude_padding: bool,
    batch_size: int,
    progress: Progress | None,
) -> torch.Tensor:
    nb_code, q = vq.cfg.nb_code, vq.cfg.num_quantizers
    counts = torch.zeros(len(dataset), q, nb_code, dtype=torch.int16)
    device = next(vq.parameters()).device
    if exclude_padding:
        encode_items(dataset, vq, device, batch_size)
    for r in range(repeats):
        gen = generator_for(seed, split_no, r, 41)
        for start in range(0, len(dataset), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(dataset)))
            _, crop, m = dataset.draw(idx, gen)
            if exclude_padding:  # valid tokens only: the first m / 4 positions
                ids = dataset.token_ids(idx, crop, m)
            else:  # the official loader's zero-padded 196-frame crop, padding tokens included
                ids = vq.encode(dataset.motions(idx, crop, m).to(device)).cpu()
            counts[idx] += _presence(ids, nb_code)
        if progress is not None:
            progress((r + 1) / repeats, f"code statistics: repeat {r + 1}/{repeats}")
    return counts


@dataclass(frozen=True)
class CountSpec:
    """What is counted: the splits, random crop/caption draws per item, their seed, the padded tail or not."""

    splits: Sequence[str] = ("train", "val")
    repeats: int = 1
    seed: int = 0
    exclude_padding: bool = True


def collect_code_stats(
    data_dir: str | Path,
    vq: torch.nn.Module,
    normalizer: Normalizer,
    spec: CountSpec = CountSpec(),
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> tuple[CodeStats, bool]:
    """Code presence statistics of every item of `spec.splits` -> (stats, loaded_from_cache)."""
    splits, repeats, seed, exclude_padding = spec.splits, spec.repeats, spec.seed, spec.exclude_padding
    data_dir = Path(data_dir)
    if not 1 <= repeats <= 1000:
        raise ValueError(f"repeats must be in 1..1000, got {repeats}")
    was_training = vq.training
    vq.eval()
    cache_path = None
    if use_cache:
        key = cache_key(data_dir, splits, vq, normalizer, repeats, seed, exclude_padding)
        cache_path = Path(cache_dir or default_cache_dir()) / f"codes-{key}.safetensors"
        if cache_path.is_file():
            stored = load_file(str(cache_path))
            with open(cache_path.with_suffix(".json"), encoding="utf-8") as handle:
                names = json.load(handle)
            return CodeStats(names, stored["counts"], repeats), True
    names, parts = [], []
    for split_no, split in enumerate(splits):
        dataset = TextMotionDataset(data_dir, split, normalizer)
        names += [item.name for item in dataset.items]
        report = (
            None
            if progress is None
            else (lambda f, msg, k=split_no: progress((k + f) / len(splits), f"{splits[k]}: {msg}"))
        )
        parts.append(_split_counts(dataset, vq, repeats, seed, split_no, exclude_padding, batch_size, report))
    vq.train(was_training)
    stats = CodeStats(names, torch.cat(parts), repeats)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        save_file({"counts": stats.counts.contiguous()}, str(tmp))
        cache_path.with_suffix(".json").write_text(json.dumps(names), encoding="utf-8")
        tmp.replace(cache_path)
    return stats, False
