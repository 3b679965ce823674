"""Named model sizes: the official HumanML3D architecture, our shipped 'small' models and a 'tiny' test size."""

from __future__ import annotations

from typing import Any

# Keyword overrides applied on top of the official defaults of VQConfig / TransformerConfig.
VQ_PRESETS: dict[str, dict[str, Any]] = {
    "official": {},
    "small": {"nb_code": 512, "code_dim": 128, "output_emb_width": 128, "width": 128, "depth": 3},
    "tiny": {"nb_code": 64, "code_dim": 32, "output_emb_width": 32, "width": 32, "depth": 1, "num_quantizers": 3},
}

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "official": {},
    "small": {"latent_dim": 192, "ff_size": 384, "num_layers": 4, "num_heads": 4, "dropout": 0.1},
    "tiny": {"latent_dim": 32, "ff_size": 64, "num_layers": 1, "num_heads": 2, "dropout": 0.1},
}


def preset(table: dict[str, dict[str, Any]], size: str) -> dict[str, Any]:
    """Return a copy of the overrides for `size`, or raise a ValueError listing the known sizes."""
    if size not in table:
        raise ValueError(f"unknown model size {size!r}; known sizes: {sorted(table)}")
    return dict(table[size])
