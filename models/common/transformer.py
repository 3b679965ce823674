"""The conditioned transformer backbone shared by MaskTransformer, ResidualTransformer and BAMM."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from models.common.code_suppression import CodeSuppression
from models.common.gpt_blocks import PreNormBlocks
from models.common.heads import InputProcess
from models.common.masks import drop_cond
from models.common.position import PositionalEncoding
from models.common.sampling import Generators
from models.common.transformer_config import TransformerConfig

Fn = TypeVar("Fn", bound=Callable)


def build_encoder(latent_dim: int, num_heads: int, ff_size: int, dropout: float,
                  num_layers: int) -> nn.TransformerEncoder:
    """nn.TransformerEncoder as in the official code: post-norm, GELU, sequence-first, no final norm."""
    layer = nn.TransformerEncoderLayer(d_model=latent_dim, nhead=num_heads, dim_feedforward=ff_size,
                                       dropout=dropout, activation="gelu")
    return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)


def eval_mode(fn: Fn) -> Fn:
    """Decorator: run a module method under torch.no_grad() in eval mode, restoring the mode afterwards."""

    @functools.wraps(fn)
    def wrapper(self: nn.Module, *args, **kwargs):
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return fn(self, *args, **kwargs)
        finally:
            self.train(was_training)

    return wrapper  # type: ignore[return-value]


class CondTransformerBase(nn.Module):
    """Owns the modules every text-conditioned token transformer has, with the official names:
    `input_process` (Linear in_dim -> latent), `position_enc` (pe buffer (5000, 1, latent)),
    `seqTransEncoder` and `cond_emb` (Linear cond_dim -> latent).

    Subclasses add their token embedding and output head and define the sequence layout.
    The input width is `cfg.code_dim`; `cfg` is kept as `self.cfg`. `seqTransEncoder` is the official
    `nn.TransformerEncoder` stack, or the pre-norm GPT stack (`PreNormBlocks`) for `cfg.trans == "t2mgpt"` in
    the classes that list it in `stacks` (BAMM).
    """

    stacks: tuple[str, ...] = ("official",)

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.latent_dim % cfg.num_heads:
            raise ValueError(f"latent_dim {cfg.latent_dim} is not divisible by num_heads {cfg.num_heads}")
        self.cfg = cfg
        self.cond_drop_prob = cfg.cond_drop_prob
        self.input_process = InputProcess(cfg.code_dim, cfg.latent_dim)
        self.position_enc = PositionalEncoding(cfg.latent_dim, cfg.dropout)
        if cfg.trans not in self.stacks:
            raise ValueError(f"{type(self).__name__} supports trans in {self.stacks}, got {cfg.trans!r}")
        stack = PreNormBlocks if cfg.trans == "t2mgpt" else build_encoder
        self.seqTransEncoder = stack(cfg.latent_dim, cfg.num_heads, cfg.ff_size, cfg.dropout, cfg.num_layers)
        self.cond_emb = nn.Linear(cfg.cond_dim, cfg.latent_dim)
        self.code_suppression: CodeSuppression | None = None  # see `add_code_suppression`

    def add_code_suppression(self, num_classes: int) -> None:
        """Give the model the CodeSuppression its config asks for (`cfg.suppression_directions` > 0); call
        after the output head is built. `num_classes` = the head's output size."""
        if self.cfg.suppression_directions:
            self.code_suppression = CodeSuppression(self.cfg.suppression_directions, self.cfg.cond_dim, num_classes)

    def suppress(self, logits: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Guided logits (B, ..., K) with the suppressed codes removed for prompts the gate catches (identity
        without a CodeSuppression)."""
        return logits if self.code_suppression is None else self.code_suppression(logits, cond)

    def check_cond(self, cond: torch.Tensor) -> None:
        """Raise a ValueError unless cond is (B, cond_dim) floating point."""
        want = self.cond_emb.in_features
        if cond.dim() != 2 or cond.shape[1] != want or not cond.is_floating_point():
            raise ValueError(f"cond must be a float tensor of shape (B, {want}), got {tuple(cond.shape)} "
                             f"{cond.dtype}")

    def check_ids_and_cond(self, ids: torch.Tensor, cond: torch.Tensor, name: str = "ids") -> None:
        """Raise a ValueError unless cond passes `check_cond` and `ids` (called `name` in the message)
        is an integer (B, L) tensor with cond's batch size."""
        self.check_cond(cond)
        if ids.dim() != 2 or ids.shape[0] != cond.shape[0] or ids.is_floating_point():
            raise ValueError(f"{name} must be an integer tensor (B, L) matching cond, got {tuple(ids.shape)}")

    def cond_token(self, cond: torch.Tensor, force_mask: bool = False,
                   generator: Generators = None) -> torch.Tensor:
        """(B, cond_dim) -> (1, B, latent) condition token; dropped per cond_drop_prob in training."""
        cond = drop_cond(cond, self.cond_drop_prob, force_mask, self.training, generator)
        return self.cond_emb(cond).unsqueeze(0)


def init_weights(module: nn.Module) -> None:
    """Official initialisation: Linear/Embedding weights N(0, 0.02), Linear biases 0, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
