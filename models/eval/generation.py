"""Generating a pass with a motion source and embedding the result.

MultiModality runs on the first `mm_batches` batches (the last of the `mm_repeats` generations is the one
used by the other metrics, as in the official code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.eval.passes import PassBatch
from models.eval.scores import PassReference
from models.eval.sources import MotionSource
from models.eval.space import EvalSpace


def _chunks(jobs: list[tuple[int, int, int]], ref: PassReference, chunk_size: int | None,
            by_batch: bool) -> list[list[int]]:
    """Job indices grouped for generation: length-sorted chunks, or one group per (batch, repetition)."""
    if by_batch:
        groups: dict[tuple[int, int], list[int]] = {}
        for j, (k, r, _) in enumerate(jobs):
            groups.setdefault((k, r), []).append(j)
        return list(groups.values())
    order = sorted(range(len(jobs)), key=lambda j: (ref.batches[jobs[j][0]].lengths[jobs[j][2]], j))
    size = chunk_size or max(len(b) for b in ref.batches)
    return [order[s : s + size] for s in range(0, len(order), size)]


def generate_pass(
    source: MotionSource,
    space: EvalSpace,
    ref: PassReference,
    mm_batches: int = 0,
    mm_repeats: int = 20,
    on_batch: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Generate every batch of the pass -> (motion_emb (N, E), mm_emb (P, R, E) or None, raw motions).

    The first `mm_batches` batches are generated `mm_repeats` times (seeds shifted per repetition); the
    last repetition is the one used for the other metrics. `on_batch(rows)` reports progress.

    Rows are generated in length-sorted chunks of `chunk_size` rows (default: the pass's batch size) rather
    than in the pass's shuffled batches: every row has its own seed, so its motion does not depend on the rows
    that share its chunk, and the transformers then run to lengths close to each row's own instead of the
    longest row of a random batch. Results are put back in batch order. A source that decodes the official
    way (`source.decode == "official"`: the padded batch, then cropped) is given the pass's own batches
    instead, so that its padding is the official batch's.
    """
    jobs = [  # (batch, repetition, row)
        (k, r, i)
        for k, batch in enumerate(ref.batches)
        for r in range(mm_repeats if k < mm_batches else 1)
        for i in range(len(batch))
    ]
    generated: list[np.ndarray | None] = [None] * len(jobs)
    for picked in _chunks(jobs, ref, chunk_size, getattr(source, "decode", "per_row") == "official"):
        rows = [(ref.batches[jobs[j][0]], jobs[j][1], jobs[j][2]) for j in picked]
        seeds = [(b.seeds[i] + 7919 * r) % (2**31 - 1) for b, r, i in rows]
        chunk = PassBatch(
            items=[b.items[i] for b, _, i in rows],
            captions=[b.captions[i] for b, _, i in rows],
            tokens=[b.tokens[i] for b, _, i in rows],
            lengths=[b.lengths[i] for b, _, i in rows],
            motions=[b.motions[i] for b, _, i in rows],
            seeds=seeds,
        )
        for j, motion in zip(picked, source.generate_batch(chunk, seeds), strict=True):
            generated[j] = motion
        if on_batch is not None:
            on_batch(len(picked))
    embs, mm, raw, start = [], [], [], 0
    for k, batch in enumerate(ref.batches):
        reps, n = (mm_repeats if k < mm_batches else 1), len(batch)
        # embedded batch by batch, exactly as the GT crops (jobs run repetition-major within a batch)
        per_rep = np.stack(
            [space.motion_embeddings(generated[start + r * n : start + (r + 1) * n]) for r in range(reps)]
        )
        embs.append(per_rep[-1])
        raw.extend(generated[start + (reps - 1) * n : start + reps * n])
        if reps > 1:
            mm.append(per_rep.transpose(1, 0, 2))  # (B, R, E)
        start += reps * n
    mm_emb = np.concatenate(mm) if mm else None
    return np.concatenate(embs), mm_emb, raw
