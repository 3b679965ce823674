"""Building blocks shared by the MoMask and BAMM models."""

from models.common.heads import InputProcess, OutputProcess
from models.common.masks import check_token_lens, drop_cond, lengths_to_mask
from models.common.position import PositionalEncoding
from models.common.sampling import (
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
from models.common.transformer import CondTransformerBase, build_encoder, eval_mode

__all__ = [
    "CondTransformerBase",
    "InputProcess",
    "OutputProcess",
    "PositionalEncoding",
    "build_encoder",
    "categorical_sample",
    "cfg_combine",
    "check_token_lens",
    "cosine_schedule",
    "drop_cond",
    "eval_mode",
    "gumbel_noise",
    "gumbel_sample",
    "lengths_to_mask",
    "lowest_k_mask",
    "mask_count_schedule",
    "num_masked",
    "top_k_filter",
    "uniform",
]
