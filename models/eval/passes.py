"""Evaluation passes: shuffled batches of a set with drawn captions, crop lengths, crops and seeds.

A pass shuffles the items, drops the last incomplete batch, and per item draws one caption, a crop length
(2/3: floor(T/4)*4, 1/3: (floor(T/4) - 1)*4) and a crop start. Every draw comes from an explicit numpy
generator, so a pass is a pure function of (seed, repeat, set) and every model of a run sees the same
captions, crops and generation seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.eval.sets import EvalSet

UNIT_LENGTH = 4
MAX_MOTION_LEN = 196


@dataclass
class PassBatch:
    """One batch of a pass: drawn captions, crop lengths (multiples of 4), GT crops and generation seeds."""

    items: list[int]
    captions: list[str]
    tokens: list[list[str]]
    lengths: list[int]
    motions: list[np.ndarray]  # (m_i, D) raw GT crops
    seeds: list[int]

    def __len__(self) -> int:
        return len(self.items)


def draw_pass(
    eval_set: EvalSet,
    rng: np.random.Generator,
    batch_size: int = 32,
    max_items: int | None = None,
    unit_length: int = UNIT_LENGTH,
    max_motion_len: int = MAX_MOTION_LEN,
) -> list[PassBatch]:
    """Shuffled batches (drop_last) of one pass over at most `max_items` items. Fewer items than
    `batch_size` give one batch of all of them (R-precision then ranks among fewer motions)."""
    n = len(eval_set)
    if batch_size < 3:
        raise ValueError(f"batch_size must be >= 3 (R-precision top-3), got {batch_size}")
    if max_items is not None and max_items < 3:
        raise ValueError(f"max_items must be >= 3, got {max_items}")
    used = n if max_items is None else min(n, int(max_items))
    b = min(batch_size, used)
    if b < 3:
        raise ValueError(f"set {eval_set.name!r} has {n} items; R-precision needs at least 3")
    order = rng.permutation(n)[:used]
    batches = []
    for s in range(0, len(order) // b * b, b):
        idx = [int(i) for i in order[s : s + b]]
        caps, toks, lens, crops = [], [], [], []
        for i in idx:
            item = eval_set.items[i]
            c = int(rng.integers(len(item.captions)))
            t = len(item.motion)
            double = int(rng.integers(3)) == 2  # coin in {single, single, double}
            m = min((t // unit_length - int(double)) * unit_length, max_motion_len)
            start = int(rng.integers(0, t - m + 1))
            caps.append(item.captions[c])
            toks.append(item.tokens[c])
            lens.append(m)
            crops.append(item.motion[start : start + m])
        seeds = [int(x) for x in rng.integers(0, 2**31 - 1, size=len(idx))]
        batches.append(PassBatch(idx, caps, toks, lens, crops, seeds))
    return batches


def rows_to_generate(batches: Sequence[PassBatch], mm_batches: int, mm_repeats: int) -> int:
    """Generated rows of one pass for one model (progress accounting)."""
    return sum(len(b) * (mm_repeats if k < mm_batches else 1) for k, b in enumerate(batches))
