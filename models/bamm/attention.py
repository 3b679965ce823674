"""BAMM's attention mask: causal, plus access to all condition positions (bamm-differences.md §3.4)."""

from __future__ import annotations

import torch


def condition_positions(cond_idx: torch.Tensor | None, pad_id: int, batch_size: int, num_tokens: int,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Which of the L+1 sequence positions are conditions -> (B, L+1) bool.

    Position 0 (the text token) always is; token j (sequence position j+1) is iff cond_idx[:, j] != pad_id.
    cond_idx None means no token conditions (the mask is then purely causal).
    """
    cond_pos = torch.zeros(batch_size, num_tokens + 1, dtype=torch.bool, device=device)
    cond_pos[:, 0] = True
    if cond_idx is not None:
        if cond_idx.shape != (batch_size, num_tokens):
            raise ValueError(f"cond_idx must have shape {(batch_size, num_tokens)}, "
                             f"got {tuple(cond_idx.shape)}")
        cond_pos[:, 1:] = cond_idx != pad_id
    return cond_pos


def attention_allowed(cond_pos: torch.Tensor) -> torch.Tensor:
    """(B, S) bool condition positions -> (B, S, S) bool, True where query i may attend to key j.

    A condition query attends to every condition position (past and future) and nothing else; any other
    query attends causally (keys <= i) plus to every condition position, including future ones.
    With only position 0 marked this is the plain causal mask.
    """
    s = cond_pos.shape[1]
    causal = torch.ones(s, s, dtype=torch.bool, device=cond_pos.device).tril()  # (S, S)
    query_is_cond = cond_pos.unsqueeze(2)                                        # (B, S, 1)
    key_is_cond = cond_pos.unsqueeze(1)                                          # (B, 1, S)
    return (causal & ~query_is_cond) | key_is_cond


def blocked_per_head(allowed: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, S, S) allowed -> (B*H, S, S) blocked (True = may not attend), the `mask` layout of
    nn.TransformerEncoder; batch row b owns rows b*H .. b*H+H-1 (repeat_interleave)."""
    return ~allowed.repeat_interleave(num_heads, dim=0)
