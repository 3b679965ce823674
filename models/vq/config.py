"""RVQ-VAE configuration (official HumanML3D values as defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from models.common.config import DictConfig

ACTIVATIONS = ("relu", "silu", "gelu")


@dataclass
class VQConfig(DictConfig):
    dim_pose: int = 263                 # feature size D (263 HumanML3D, 251 KIT)
    nb_code: int = 512                  # codes per quantizer layer
    code_dim: int = 512                 # code vector size (= output_emb_width)
    output_emb_width: int = 512         # encoder output channels
    down_t: int = 2                     # number of temporal down-sampling stages
    stride_t: int = 2                   # stride of each stage
    width: int = 512                    # conv channels
    depth: int = 3                      # residual blocks per Resnet1D
    dilation_growth_rate: int = 3       # dilations growth**d, used in reverse order (9, 3, 1)
    activation: str = "relu"
    norm: str | None = None             # only None is supported (the official 'None')
    num_quantizers: int = 6
    shared_codebook: bool = False
    quantize_dropout_prob: float = 0.2  # training only
    mu: float = 0.99                    # EMA decay of the codebook update (training only)

    def __post_init__(self) -> None:
        if self.norm in ("None", "none", ""):
            self.norm = None
        if self.norm is not None:
            raise ValueError(f"VQConfig.norm={self.norm!r} is not supported (only None)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"VQConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.stride_t != 2:
            raise ValueError(f"only stride_t=2 is supported (the decoder up-samples by 2), "
                             f"got {self.stride_t}")
        if self.code_dim != self.output_emb_width:
            raise ValueError(f"code_dim ({self.code_dim}) must equal output_emb_width "
                             f"({self.output_emb_width})")
        for name in ("dim_pose", "nb_code", "code_dim", "down_t", "stride_t", "width", "depth",
                     "dilation_growth_rate", "num_quantizers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"VQConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.quantize_dropout_prob <= 1.0:
            raise ValueError(f"quantize_dropout_prob must be in [0, 1], got {self.quantize_dropout_prob}")

    @property
    def unit_length(self) -> int:
        """Frames per token (temporal down-sampling factor), 4 for the official model."""
        return self.stride_t ** self.down_t
