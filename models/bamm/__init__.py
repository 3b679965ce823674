"""BAMM: bidirectional autoregressive base-layer transformer (MoMask's other modules are reused)."""

from models.bamm.transformer import MAX_TOKENS, BAMMTransformer

__all__ = ["MAX_TOKENS", "BAMMTransformer"]
