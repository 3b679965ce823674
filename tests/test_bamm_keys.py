"""BAMM's state_dict must equal the official `trans = official` checkpoint key by key, in order
(bamm-differences.md §8: 108 tensors). Built on the meta device (no memory, fast)."""

from __future__ import annotations

import torch

from models.bamm import BAMMTransformer
from models.momask import TransformerConfig


def _layer(i: int) -> list[tuple[str, tuple[int, ...]]]:
    p = f"seqTransEncoder.layers.{i}."
    return [
        (p + "self_attn.in_proj_weight", (1152, 384)),
        (p + "self_attn.in_proj_bias", (1152,)),
        (p + "self_attn.out_proj.weight", (384, 384)),
        (p + "self_attn.out_proj.bias", (384,)),
        (p + "linear1.weight", (1024, 384)),
        (p + "linear1.bias", (1024,)),
        (p + "linear2.weight", (384, 1024)),
        (p + "linear2.bias", (384,)),
        (p + "norm1.weight", (384,)),
        (p + "norm1.bias", (384,)),
        (p + "norm2.weight", (384,)),
        (p + "norm2.bias", (384,)),
    ]


# the official listing, in state_dict order
EXPECTED = [
    ("input_process.poseEmbedding.weight", (384, 512)),
    ("input_process.poseEmbedding.bias", (384,)),
    ("position_enc.pe", (5000, 1, 384)),
    *[kv for i in range(8) for kv in _layer(i)],
    ("cond_emb.weight", (384, 512)),
    ("cond_emb.bias", (384,)),
    ("output_process.dense.weight", (384, 384)),
    ("output_process.dense.bias", (384,)),
    ("output_process.LayerNorm.weight", (384,)),
    ("output_process.LayerNorm.bias", (384,)),
    ("output_process.poseFinal.weight", (513, 384)),
    ("output_process.poseFinal.bias", (513,)),
    ("token_emb.weight", (515, 512)),
]


def _official_model() -> BAMMTransformer:
    with torch.device("meta"):
        return BAMMTransformer(TransformerConfig())


def test_official_keys_and_shapes_in_order():
    got = [(k, tuple(v.shape)) for k, v in _official_model().state_dict().items()]
    assert len(EXPECTED) == 108
    assert got == EXPECTED


def test_vocabulary_ids_and_parameter_count():
    m = _official_model()
    assert (m.end_id, m.pad_id, m.mask_id) == (512, 513, 514)
    # MoMask's 12,048,768 parameters + one embedding row (512) + one output class (384 + 1)
    assert sum(p.numel() for p in m.parameters()) == 12_049_665
    assert "position_enc.pe" not in dict(m.named_parameters())  # a buffer, as in the checkpoint
