"""The conditioned transformer backbone shared by MaskTransformer, ResidualTransformer and BAMM."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from models.common import packed_linear
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


def fast_encoder_forward(encoder: nn.TransformerEncoder, src: torch.Tensor,
                         key_padding_mask: torch.Tensor | None = None,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Inference forward of a `build_encoder` stack (post-norm, sequence-first, no dropout): the same function as
    `encoder(src, mask=mask, src_key_padding_mask=key_padding_mask)` up to float rounding, with fewer kernels.

    nn.MultiheadAttention re-checks and re-merges the masks, transposes q/k/v to (B*H, S, d) and back in every
    layer; here the stack runs batch-first, the mask is built once as a boolean (B, 1|H, S, S) "may attend", and
    each layer is in-projection, scaled-dot-product attention, out-projection and the feed-forward block.
    src (S, B, E); key_padding_mask (B, S) True at pads; mask (B*H, S, S) or (S, S), True = blocked.
    """
    s, b, e = src.shape
    first = encoder.layers[0]
    heads = first.self_attn.num_heads
    allowed = None
    if mask is not None:
        allowed = ~(mask.view(b, heads, s, s) if mask.dim() == 3 else mask)
    if key_padding_mask is not None:
        keys = ~key_padding_mask.view(b, 1, 1, s)
        allowed = keys if allowed is None else allowed & keys
    x = src.transpose(0, 1)                                                # (B, S, E)
    for layer in encoder.layers:
        qkv = layer_in_projection(layer, x).view(b, s, 3, heads, e // heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=allowed)  # (B, H, S, d)
        x = post_norm_rest(layer, x, o.transpose(1, 2).reshape(b, s, e))
    if encoder.norm is not None:
        x = encoder.norm(x)
    return x.transpose(0, 1)


def _post_norm_sequence_first(encoder: nn.Module) -> bool:
    """True for the stacks `fast_encoder_forward` reproduces (`build_encoder`'s: post-norm, sequence-first)."""
    if not isinstance(encoder, nn.TransformerEncoder):
        return False
    first = encoder.layers[0]
    return not first.norm_first and not first.self_attn.batch_first


def post_norm_rest(layer: nn.TransformerEncoderLayer, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of a post-norm encoder layer (inference) after attention: out-projection, residual + norm1,
    feed-forward (GELU fused into its first product), residual + norm2. x, attended (..., E)."""
    x = layer.norm1(x + packed_linear.linear_module(layer.self_attn.out_proj, attended))
    if layer.activation is F.gelu:  # build_encoder's
        hidden = packed_linear.linear_module(layer.linear1, x, "gelu")
    else:
        hidden = layer.activation(packed_linear.linear_module(layer.linear1, x))
    return layer.norm2(x + packed_linear.linear_module(layer.linear2, hidden))


def layer_in_projection(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """The packed q/k/v projection of an encoder layer; `layer.hmu_in_proj` (a module, e.g. a quantised copy set
    by `models.common.precision`) replaces it when present."""
    replacement = getattr(layer, "hmu_in_proj", None)
    if replacement is not None:
        return replacement(x)
    return packed_linear.linear(x, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias)


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

    def encode(self, src: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """`seqTransEncoder` on a sequence-first input; at inference (eval mode, no autograd) the official stack
        runs through `fast_encoder_forward` (same result up to float rounding)."""
        encoder = self.seqTransEncoder
        if self.training or torch.is_grad_enabled() or not _post_norm_sequence_first(encoder):
            if key_padding_mask is None:
                return encoder(src, mask=mask)
            return encoder(src, mask=mask, src_key_padding_mask=key_padding_mask)
        return fast_encoder_forward(encoder, src, key_padding_mask, mask)

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
