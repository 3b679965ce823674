"""Residual VQ-VAE (MoMask RVQVAE): motion features <-> (B, T/4, Q) token ids."""

from __future__ import annotations

import torch
from torch import nn

from models.vq.config import VQConfig
from models.vq.encdec import Decoder, Encoder
from models.vq.loss import vq_loss
from models.vq.quantizer import ResidualVQ


class RVQVAE(nn.Module):
    """State-dict keys match the official checkpoints: encoder.model.*, decoder.model.*,
    quantizer.layers.<q>.codebook (buffers)."""

    def __init__(self, cfg: VQConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VQConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantizer = ResidualVQ(cfg.num_quantizers, cfg.nb_code, cfg.code_dim, cfg.mu,
                                    cfg.shared_codebook, cfg.quantize_dropout_prob)

    def _check_motion(self, x: torch.Tensor) -> None:
        d, u = self.cfg.dim_pose, self.cfg.unit_length
        if x.dim() != 3 or x.shape[-1] != d or not x.is_floating_point():
            raise ValueError(f"motion must be a float tensor (B, T, {d}), got {tuple(x.shape)} {x.dtype}")
        if x.shape[1] == 0 or x.shape[1] % u:
            raise ValueError(f"motion length T={x.shape[1]} must be a positive multiple of {u}")

    def _encode_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(B, T, D) -> (B*T', code_dim) latent rows and T'."""
        z = self.encoder(x.permute(0, 2, 1).float())  # (B, code_dim, T')
        return z.permute(0, 2, 1).reshape(-1, z.shape[1]), z.shape[-1]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) normalised features -> ids (B, T/4, Q) (argmin quantisation, no codebook update)."""
        self._check_motion(x)
        z, t = self._encode_latent(x)
        return self.quantizer.quantize(z).view(x.shape[0], t, -1)

    def forward_decoder(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, L, Q') with Q' <= Q (or (B, L) base layer only); -1 = zero vector -> (B, 4L, D)."""
        if ids.dim() == 2:
            ids = ids.unsqueeze(-1)
        if ids.dim() != 3 or ids.is_floating_point():
            raise ValueError(f"ids must be an integer tensor (B, L, Q'), got {tuple(ids.shape)} {ids.dtype}")
        if ids.numel() and (int(ids.max()) >= self.cfg.nb_code or int(ids.min()) < -1):
            raise ValueError(f"ids must lie in [-1, {self.cfg.nb_code - 1}]")
        latent = self.quantizer.dequantize(ids.long())  # (B, L, code_dim)
        return self.decoder(latent.permute(0, 2, 1)).permute(0, 2, 1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: x (B, T, D) -> (reconstruction (B, T, D), commit loss, perplexity).

        In training mode the codebooks are EMA-updated, codes are Gumbel-sampled at temperature 0.5 and
        quantizer dropout applies; in eval mode quantisation is argmin.
        """
        self._check_motion(x)
        z, t = self._encode_latent(x)
        quantized, _, commit, perplexity = self.quantizer(z, sample_temp=0.5, generator=generator)
        quantized = quantized.view(x.shape[0], t, -1).permute(0, 2, 1)  # (B, code_dim, T')
        recon = self.decoder(quantized).permute(0, 2, 1)
        return recon, commit, perplexity

    def loss(self, x: torch.Tensor, joints_num: int = 22, commit_weight: float = 0.02,
             vel_weight: float = 0.5, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training step's objective: returns (loss, reconstruction, perplexity)."""
        recon, commit, perplexity = self(x, generator=generator)
        return vq_loss(recon, x, commit, joints_num, commit_weight, vel_weight), recon, perplexity
