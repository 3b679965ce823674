"""Optional lower-precision token generation (HMU_PRECISION): bf16 autocast and int8 dynamic quantisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.settings import Settings
from models.common.precision import autocast, check_precision, quantized_copy
from models.common.transformer_config import TransformerConfig
from models.momask import MaskTransformer, ResidualTransformer


@pytest.fixture(scope="module")
def base() -> MaskTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(code_dim=32, latent_dim=64, ff_size=128, num_layers=2, num_heads=4, cond_dim=16,
                            num_tokens=40, num_quantizers=3)
    return MaskTransformer(cfg).eval()


def _inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 42, (4, 10), generator=g)
    pad = torch.arange(10)[None] >= torch.tensor([10, 8, 5, 2])[:, None]
    return ids, torch.randn(4, 16, generator=g), pad


def test_unknown_precision_is_refused() -> None:
    assert check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        check_precision("fp16")
    with pytest.raises(ValueError):
        Settings(precision="fp8")
    assert Settings(precision="int8").precision == "int8"


def test_int8_copy_quantises_every_linear_layer_and_leaves_the_model_alone(base) -> None:
    before = {k: v.clone() for k, v in base.state_dict().items()}
    q = quantized_copy(base)
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert all(hasattr(layer, "hmu_in_proj") for layer in q.seqTransEncoder.layers)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    ids, cond, pad = _inputs()
    with torch.no_grad():
        exact = base.forward_with_cond_scale(ids, cond, pad, 4.0)
        approx = q.forward_with_cond_scale(ids, cond, pad, 4.0)
    valid = ~pad
    assert not torch.equal(exact[valid], approx[valid])  # really another computation
    torch.testing.assert_close(approx[valid], exact[valid], rtol=0.1, atol=0.1)


def test_bf16_autocast_gives_float32_logits_close_to_fp32(base) -> None:
    ids, cond, pad = _inputs()
    residual = ResidualTransformer(TransformerConfig(code_dim=32, latent_dim=64, ff_size=128, num_layers=2,
                                                     num_heads=4, cond_dim=16, num_tokens=40,
                                                     num_quantizers=3)).eval()
    history = torch.randn(4, 10, 32)
    with torch.no_grad():
        exact = base.forward_with_cond_scale(ids, cond, pad, 4.0)
        res_exact = residual.forward_with_cond_scale(history, 1, cond, pad, 5.0)
        with autocast("bf16"):
            approx = base.forward_with_cond_scale(ids, cond, pad, 4.0)
            res_approx = residual.forward_with_cond_scale(history, 1, cond, pad, 5.0)
        with autocast("fp32"):
            same = base.forward_with_cond_scale(ids, cond, pad, 4.0)
    assert approx.dtype == res_approx.dtype == torch.float32
    assert not torch.equal(approx, exact)
    torch.testing.assert_close(approx[~pad], exact[~pad], rtol=0.1, atol=0.15)
    torch.testing.assert_close(res_approx[~pad], res_exact[~pad], rtol=0.1, atol=0.15)
    torch.testing.assert_close(same, exact)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_pipeline_generates_at_lower_precision(tiny_momask, precision: str) -> None:
    pipeline = tiny_momask.copy()
    exact = pipeline.generate(["a person walks"], lengths=[40], seed=3, timesteps=3)[0]
    pipeline.set_precision(precision)
    base, residual = pipeline.token_models()
    assert (base is pipeline.base) == (precision == "bf16")
    low = pipeline.generate(["a person walks"], lengths=[40], seed=3, timesteps=3)[0]
    assert low.joints.shape == exact.joints.shape and low.length == exact.length
    assert pipeline.token_models()[0] is base  # int8 copies are made once
    pipeline.set_precision("fp32")
    again = pipeline.generate(["a person walks"], lengths=[40], seed=3, timesteps=3)[0]
    assert (again.joints == exact.joints).all()
    with pytest.raises(ValueError):
        pipeline.set_precision("fp64")
