"""Configuration of the conditioned token transformers (MoMask base and residual, BAMM); official HumanML3D
values as defaults."""

from __future__ import annotations

from dataclasses import dataclass

from models.common.config import DictConfig

TRANS_STACKS = ("official", "t2mgpt")


@dataclass
class TransformerConfig(DictConfig):
    code_dim: int = 512           # RVQ code size (token embedding width)
    latent_dim: int = 384
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    dropout: float = 0.2
    cond_dim: int = 512           # text feature size (512 CLIP; 384 for our MiniLM models)
    cond_drop_prob: float = 0.1   # released residual model: 0.2
    num_tokens: int = 512         # codes per RVQ layer (= VQConfig.nb_code)
    num_quantizers: int = 6       # RVQ layers (= VQConfig.num_quantizers)
    share_weight: bool = True     # residual model only
    shared_codebook: bool = False  # residual model only (= VQConfig.shared_codebook)
    trans: str = "official"       # BAMM's `--trans`: "official" (nn.TransformerEncoder) or "t2mgpt" (pre-norm GPT)
    suppression_directions: int = 0  # base layer: gate directions of a CodeSuppression (0 = none; code_ban)

    def to_dict(self) -> dict:
        """asdict, leaving out `trans` when it is "official" (configs written before the option existed stay
        byte-identical)."""
        d = super().to_dict()
        if d["trans"] == "official":
            del d["trans"]
        if not d["suppression_directions"]:
            del d["suppression_directions"]
        return d

    def __post_init__(self) -> None:
        if self.trans not in TRANS_STACKS:
            raise ValueError(f"TransformerConfig.trans must be one of {TRANS_STACKS}, got {self.trans!r}")
        if not 0 <= int(self.suppression_directions) <= 64:
            raise ValueError(f"TransformerConfig.suppression_directions must be in 0..64, got "
                             f"{self.suppression_directions}")
        positive = ("code_dim", "latent_dim", "ff_size", "num_layers", "num_heads", "cond_dim", "num_tokens")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TransformerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_dim % self.num_heads:
            raise ValueError(f"latent_dim {self.latent_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_quantizers < 2:
            raise ValueError(f"num_quantizers must be >= 2, got {self.num_quantizers}")
        for name in ("dropout", "cond_drop_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TransformerConfig.{name} must be in [0, 1], got {getattr(self, name)}")
