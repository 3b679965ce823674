"""Per-row random draws: a batch may be driven by one torch.Generator or by one generator per row.

With a list of generators every draw for row b comes from `generator[b]` (on that generator's device),
so a row's samples do not depend on its batch neighbours. `models.common.sampling` takes a single
generator; these helpers dispatch to it row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from models.common import categorical_sample

Generators = torch.Generator | Sequence[torch.Generator] | None


def check_generators(generator: Generators, batch_size: int) -> None:
    """Raise a ValueError unless `generator` is None, a torch.Generator or one generator per row."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, Sequence) or not all(isinstance(g, torch.Generator) for g in generator):
        raise ValueError("generator must be a torch.Generator, a list of them (one per row) or None")
    if len(generator) != batch_size:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}")


def _device_of(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return device if generator is None else generator.device


def rand_rows(shape: tuple[int, ...], generator: Generators, device: torch.device | str) -> torch.Tensor:
    """U(0, 1) samples of `shape` (shape[0] = batch) on `device`; row b drawn from generator[b] if a list."""
    device = torch.device(device)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, device=_device_of(generator, device)).to(device)
    rows = [torch.rand(shape[1:], generator=g, device=g.device).to(device) for g in generator]
    return torch.stack(rows) if rows else torch.empty(shape, device=device)


def sample_rows(logits: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Categorical sample from softmax(logits) (no temperature, no top-k): (B, K) -> (B,) int64.

    Sampling runs on the generator's device; the result is returned on the device of `logits`.
    """
    if generator is None or isinstance(generator, torch.Generator):
        on_gen = logits.to(_device_of(generator, logits.device))
        return categorical_sample(on_gen, 1.0, generator).to(logits.device)
    rows = [categorical_sample(logits[b:b + 1].to(g.device), 1.0, g) for b, g in enumerate(generator)]
    return torch.cat(rows).to(logits.device) if rows else logits.new_empty(0, dtype=torch.long)
