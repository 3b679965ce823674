"""What generation returns, and the per-row random generators that make it reproducible."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class GeneratedMotion:
    """One generated motion: features (T, D) de-normalised and joints (T, J, 3) in metres at 20 fps."""

    text: str
    length: int
    joints: np.ndarray
    features: np.ndarray
    seed: int | None = None


def make_generators(seeds: Sequence[int | None]) -> list[torch.Generator]:
    """One CPU generator per batch row, so a row's samples do not depend on its batch neighbours."""
    generators = []
    for seed in seeds:
        generator = torch.Generator()
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed() % (2**63)))
        generators.append(generator)
    return generators


def row_seeds(num_texts: int, num_samples: int, seed: int | None,
              seeds: Sequence[int | None] | None) -> list[int | None]:
    """The seed of each row of a flattened batch (text-major, `num_samples` rows per text).

    `seeds` (one per text): sample j of text i uses seeds[i] + j; else `seed`: row r uses seed + r; else None.
    """
    if seeds is not None:
        return [None if s is None else int(s) + j for s in seeds for j in range(num_samples)]
    if seed is not None:
        return [int(seed) + i for i in range(num_texts * num_samples)]
    return [None] * (num_texts * num_samples)
