"""Building blocks shared by the MoMask and BAMM models."""

from models.common.heads import InputProcess, OutputProcess
from models.common.losses import ce_and_accuracy
from models.common.masks import check_token_lens, drop_cond, lengths_to_mask
from models.common.position import PositionalEncoding
from models.common.sampling import (
    Generators,
    categorical_sample,
    cfg_combine,
    cosine_schedule,
    gumbel_noise,
    gumbel_sample,
    lowest_k_mask,
    mask_count_schedule,
    num_masked,
    top_k_filter,
    uniform,
)
from models.common.transformer import CondTransformerBase, build_encoder, eval_mode, init_weights

__all__ = [
    "Generators",
    "CondTransformerBase",
    "InputProcess",
    "OutputProcess",
    "PositionalEncoding",
    "build_encoder",
    "categorical_sample",
    "ce_and_accuracy",
    "cfg_combine",
    "check_token_lens",
    "cosine_schedule",
    "drop_cond",
    "eval_mode",
    "gumbel_noise",
    "gumbel_sample",
    "init_weights",
    "lengths_to_mask",
    "lowest_k_mask",
    "mask_count_schedule",
    "num_masked",
    "top_k_filter",
    "uniform",
]
