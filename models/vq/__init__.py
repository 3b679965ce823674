"""Residual VQ-VAE."""

from models.vq.config import VQConfig
from models.vq.loss import vq_loss
from models.vq.model import RVQVAE

__all__ = ["RVQVAE", "VQConfig", "vq_loss"]
