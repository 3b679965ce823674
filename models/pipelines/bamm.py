"""`BAMMPipeline`: bidirectional autoregressive base layer (which can choose lengths), MoMask's residual layers
and RVQ decoder."""

from __future__ import annotations

import torch

from models.common.sampling_config import SamplingConfig
from models.pipelines.base import MotionPipeline


class BAMMPipeline(MotionPipeline):
    """BAMM: without a length estimator, lengths nobody gave are predicted by the base layer's end token."""

    kind = "bamm"
    # Sampling defaults of the official generation script (bamm-differences.md §5.1).
    default_sampling = SamplingConfig(cond_scale=4.0, res_cond_scale=5.0)
    predicts_lengths = True

    def generate_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor | None, generators: list[torch.Generator],
        sampling: SamplingConfig, base: torch.nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-pass BAMM decoding of layer 0; token_lens None = predicted."""
        base_ids, token_lens = (base or self.base).generate(cond, token_lens, sampling, generator=generators)
        return base_ids[:, : int(token_lens.max())], token_lens

    def infill_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor, known_base: torch.Tensor,
        generators: list[torch.Generator], sampling: SamplingConfig,
    ) -> torch.Tensor:
        """BAMM's two passes with the known codes fixed (`BAMMTransformer.infill`)."""
        return self.base.infill(cond, token_lens, known_base, sampling, generator=generators)
