"""`SamplingConfig`: the sampling knobs of one generation call, from the HTTP request down to the transformers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling knobs (frozen, hashable: requests with equal knobs share a batch). None = the model's default.

    timesteps: mask-predict iterations of the MoMask base layer; cond_scale: classifier-free guidance of the
    base layer; res_cond_scale: guidance of the residual layers; temperature and topk_filter_thres: logits
    filtering before sampling; gsample: Gumbel sampling instead of multinomial (MoMask).
    """

    timesteps: int | None = None
    cond_scale: float | None = None
    temperature: float | None = None
    topk_filter_thres: float | None = None
    gsample: bool | None = None
    res_cond_scale: float | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SamplingConfig:
        """From a (JSON) dict; unknown keys are an error, None values mean "default"."""
        values = dict(values or {})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The knobs that are set (JSON-ready)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def over(self, defaults: SamplingConfig) -> SamplingConfig:
        """These knobs where set, `defaults` elsewhere."""
        return replace(defaults, **self.to_dict())
