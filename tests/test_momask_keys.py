"""State-dict keys and shapes of the MoMask transformers must equal the official checkpoints
(momask-architecture.md §3.6, §4.6, §5). Models are built on the meta device (no memory, fast)."""

from __future__ import annotations

import torch

from models.momask import LengthEstimator, MaskTransformer, ResidualTransformer, TransformerConfig

LATENT, FF, CODE = 384, 1024, 512


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _encoder_layer_keys(num_layers: int = 8) -> dict[str, tuple[int, ...]]:
    per_layer = {
        "self_attn.in_proj_weight": (3 * LATENT, LATENT),
        "self_attn.in_proj_bias": (3 * LATENT,),
        "self_attn.out_proj.weight": (LATENT, LATENT),
        "self_attn.out_proj.bias": (LATENT,),
        "linear1.weight": (FF, LATENT),
        "linear1.bias": (FF,),
        "linear2.weight": (LATENT, FF),
        "linear2.bias": (LATENT,),
        "norm1.weight": (LATENT,),
        "norm1.bias": (LATENT,),
        "norm2.weight": (LATENT,),
        "norm2.bias": (LATENT,),
    }
    return {f"seqTransEncoder.layers.{i}.{k}": s for i in range(num_layers) for k, s in per_layer.items()}


COMMON = {
    "input_process.poseEmbedding.weight": (384, 512),
    "input_process.poseEmbedding.bias": (384,),
    "position_enc.pe": (5000, 1, 384),
    "cond_emb.weight": (384, 512),
    "cond_emb.bias": (384,),
    "output_process.dense.weight": (384, 384),
    "output_process.dense.bias": (384,),
    "output_process.LayerNorm.weight": (384,),
    "output_process.LayerNorm.bias": (384,),
    **_encoder_layer_keys(),
}

MASK_EXPECTED = {
    **COMMON,
    "output_process.poseFinal.weight": (512, 384),
    "output_process.poseFinal.bias": (512,),
    "token_emb.weight": (514, 512),
}

RES_COMMON = {
    **COMMON,
    "quant_emb.weight": (384, 6),
    "quant_emb.bias": (384,),
    "output_process.poseFinal.weight": (512, 384),
    "output_process.poseFinal.bias": (512,),
}
RES_SHARED_EXPECTED = {
    **RES_COMMON,
    "embed_proj_shared_weight": (4, 513, 512),
    "token_embed_weight_": (1, 513, 512),
    "output_proj_weight_": (1, 513, 512),
}
RES_NONSHARED_EXPECTED = {
    **RES_COMMON,
    "output_proj_weight": (5, 513, 512),
    "output_proj_bias": (6, 513),
    "token_embed_weight": (5, 513, 512),
}

LENGTH_EXPECTED = {
    "output.0.weight": (512, 512), "output.0.bias": (512,),
    "output.1.weight": (512,), "output.1.bias": (512,),
    "output.4.weight": (256, 512), "output.4.bias": (256,),
    "output.5.weight": (256,), "output.5.bias": (256,),
    "output.8.weight": (128, 256), "output.8.bias": (128,),
    "output.9.weight": (128,), "output.9.bias": (128,),
    "output.11.weight": (50, 128), "output.11.bias": (50,),
}


def _numel(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(int(torch.Size(s).numel()) for s in shapes.values())


def _build(cls, **kw):
    with torch.device("meta"):
        return cls(TransformerConfig(**kw))


def test_mask_transformer_keys_match_official():
    shapes = _shapes(_build(MaskTransformer))
    assert shapes == MASK_EXPECTED
    assert len(shapes) == 108 and _numel(shapes) == 13_968_768


def test_residual_shared_keys_match_official():
    model = _build(ResidualTransformer, cond_drop_prob=0.2, share_weight=True)
    shapes = _shapes(model)
    assert shapes == RES_SHARED_EXPECTED
    assert len(shapes) == 112 and _numel(shapes) == 15_284_224
    assert "position_enc.pe" in dict(model.named_buffers())


def test_residual_nonshared_keys_match_official():
    shapes = _shapes(_build(ResidualTransformer, share_weight=False))
    assert shapes == RES_NONSHARED_EXPECTED
    assert len(shapes) == 112
    assert set(shapes) ^ set(RES_SHARED_EXPECTED) == {
        "output_proj_weight", "output_proj_bias", "token_embed_weight",
        "embed_proj_shared_weight", "token_embed_weight_", "output_proj_weight_"}


def test_length_estimator_keys_match_official():
    with torch.device("meta"):
        shapes = _shapes(LengthEstimator(512, 50))
    assert shapes == LENGTH_EXPECTED and _numel(shapes) == 435_122


def test_text_encoder_is_not_owned_and_cond_dim_is_configurable():
    model = _build(MaskTransformer, cond_dim=384)
    assert not any(k.startswith("clip_model") for k in model.state_dict())
    assert tuple(model.state_dict()["cond_emb.weight"].shape) == (384, 384)


def test_transformer_layers_are_post_norm_gelu_sequence_first():
    layer = _build(MaskTransformer).seqTransEncoder.layers[0]
    assert layer.norm_first is False and layer.self_attn.batch_first is False
    assert layer.activation is torch.nn.functional.gelu
    assert layer.norm1.eps == 1e-5
    assert _build(MaskTransformer).output_process.LayerNorm.eps == 1e-12
