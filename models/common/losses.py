"""Token classification loss shared by the transformers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_and_accuracy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of (B, L, K) logits against (B, L) labels and argmax accuracy on non-ignored labels."""
    loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=ignore_index)
    keep = labels != ignore_index
    acc = (logits.argmax(dim=-1) == labels)[keep].float().mean()
    return loss, acc
