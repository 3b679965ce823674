"""Text-gated code suppression: a small part of a token transformer that removes codes from its output.

Written by the `code_ban` unlearning method (models/unlearn/code_ban.py). For a text feature c (B, cond_dim)
the gate fires when any linear score  c . w_m + b_m  is above 0 (m = 1..M directions; M = 1 and w = 0,
b = 1 is "always"). When it fires, every suppressed code's logit gets SUPPRESSED (about -inf), so the
sampler never picks it; when it does not fire the logits are untouched, so prompts outside the concept
generate exactly what the original model generates.

The tensors are buffers of the transformer (saved in its safetensors file); the number of directions is
`TransformerConfig.suppression_directions` (0 = no suppression, the default).
"""

from __future__ import annotations

import torch
from torch import nn

SUPPRESSED = -1e4  # added to a suppressed code's logit (finite: CFG differences and bf16 stay finite)


class CodeSuppression(nn.Module):
    """directions (M, cond_dim), offsets (M,), codes (K,) 1.0 where suppressed."""

    def __init__(self, num_directions: int, cond_dim: int, num_classes: int):
        super().__init__()
        if num_directions < 1:
            raise ValueError(f"CodeSuppression needs >= 1 direction, got {num_directions}")
        self.register_buffer("directions", torch.zeros(num_directions, cond_dim))
        self.register_buffer("offsets", torch.full((num_directions,), -1.0))
        self.register_buffer("codes", torch.zeros(num_classes))

    @torch.no_grad()
    def set(self, codes: list[int], directions: torch.Tensor | None = None,
            offsets: torch.Tensor | None = None) -> None:
        """Suppress `codes` when the gate fires; no directions = always fire."""
        if any(not 0 <= c < self.codes.numel() for c in codes):
            raise ValueError(f"suppressed codes must be in 0..{self.codes.numel() - 1}")
        self.codes.zero_()
        self.codes[list(codes)] = 1.0
        if directions is None:
            self.directions.zero_()
            self.offsets.fill_(-1.0)
            self.offsets[0] = 1.0
            return
        if directions.shape != self.directions.shape or offsets is None or offsets.shape != self.offsets.shape:
            raise ValueError(f"gate must be directions {tuple(self.directions.shape)} and offsets "
                             f"{tuple(self.offsets.shape)}")
        self.directions.copy_(directions)
        self.offsets.copy_(offsets)

    def gate(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, cond_dim) -> (B,) bool: the prompt belongs to the suppressed concept."""
        scores = cond.to(self.directions.dtype) @ self.directions.T + self.offsets      # (B, M)
        return (scores > 0).any(dim=-1)

    def suppressed(self) -> list[int]:
        return [int(i) for i in torch.nonzero(self.codes).flatten()]

    def forward(self, logits: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """logits (B, ..., K) -> logits with the suppressed codes at SUPPRESSED for the gated rows."""
        fired = self.gate(cond).to(logits.dtype)                                          # (B,)
        offset = SUPPRESSED * fired[:, None] * self.codes.to(logits.dtype)[None, :]      # (B, K)
        return logits + offset.view(offset.shape[0], *([1] * (logits.dim() - 2)), offset.shape[1])
