"""CachedCausalEncoder: one position per step equals a full causal forward of the official encoder stack."""

from __future__ import annotations

import pytest
import torch

from models.common.kv_cache import CachedCausalEncoder
from models.common.transformer import build_encoder


def test_steps_equal_the_full_causal_forward():
    torch.manual_seed(0)
    encoder = build_encoder(latent_dim=16, num_heads=4, ff_size=32, dropout=0.1, num_layers=3).eval()
    x = torch.randn(7, 5, 16)                                          # (L, B, latent), sequence-first
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)               # True = blocked
    with torch.no_grad():
        full = encoder(x, mask=causal)
        cache = CachedCausalEncoder(encoder, batch_size=5, max_len=7)
        steps = torch.stack([cache.step(x[t]) for t in range(7)])
    assert torch.allclose(steps, full, atol=1e-5)
    # a cached step differs from an unmasked forward: the cache really is causal
    with torch.no_grad():
        assert not torch.allclose(steps[0], encoder(x)[0], atol=1e-3)


def test_refuses_training_mode_and_overflow():
    encoder = build_encoder(latent_dim=8, num_heads=2, ff_size=16, dropout=0.1, num_layers=1)
    with pytest.raises(ValueError, match="eval mode"):
        CachedCausalEncoder(encoder.train(), batch_size=1, max_len=2)
    cache = CachedCausalEncoder(encoder.eval(), batch_size=1, max_len=1)
    with torch.no_grad():
        cache.step(torch.zeros(1, 8))
        with pytest.raises(ValueError, match="holds 1 positions"):
            cache.step(torch.zeros(1, 8))
