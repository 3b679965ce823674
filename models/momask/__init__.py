"""MoMask transformers (base masked transformer, residual transformer) and length estimator."""

from models.common.transformer_config import TransformerConfig
from models.momask.length_estimator import LengthEstimator, LengthEstimatorConfig
from models.momask.mask_transformer import MaskTransformer
from models.momask.residual_transformer import ResidualTransformer

__all__ = ["LengthEstimator", "LengthEstimatorConfig", "MaskTransformer", "ResidualTransformer", "TransformerConfig"]
