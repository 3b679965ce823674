"""`MoMaskPipeline`: masked-transformer base layer (iterative mask-predict), residual layers, RVQ decoder."""

from __future__ import annotations

import torch

from models.common.sampling_config import SamplingConfig
from models.pipelines.base import MotionPipeline


class MoMaskPipeline(MotionPipeline):
    """MoMask: every length comes from the request or the length estimator."""

    kind = "momask"
    # Sampling defaults of the official generation script (momask-inference.md §6).
    default_sampling = SamplingConfig(timesteps=18, cond_scale=4.0, temperature=1.0, topk_filter_thres=0.9,
                                      gsample=False, res_cond_scale=5.0)

    def generate_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor | None, generators: list[torch.Generator],
        sampling: SamplingConfig, base: torch.nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask-predict decoding of layer 0 at the given token lengths."""
        return (base or self.base).generate(cond, token_lens, sampling, generator=generators), token_lens

    def infill_base(
        self, cond: torch.Tensor, token_lens: torch.Tensor, known_base: torch.Tensor,
        generators: list[torch.Generator], sampling: SamplingConfig,
    ) -> torch.Tensor:
        """Mask-predict in-filling (MoMask's temporal inpainting): known codes fixed, only the unknown
        positions masked and iteratively filled (needs at least one unknown position per row)."""
        return self.base.edit(known_base, cond, token_lens, edit_mask=known_base < 0, sampling=sampling,
                              generator=generators)
