"""oneDNN-packed linear layers (models/common/packed_linear.py): same function as F.linear, never stale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.common import packed_linear
from models.common.precision import quantized_copy


def test_the_pinned_torch_build_packs() -> None:
    assert packed_linear.ENABLED  # torch==2.13.0 CPU (the README's install) ships oneDNN's packed linear


def _layer(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(64, 96)


@pytest.mark.parametrize("shape", [(1, 64), (7, 64), (2, 50, 64)])
def test_packed_linear_equals_f_linear_and_fuses_gelu(shape: tuple[int, ...]) -> None:
    layer, x = _layer(), torch.randn(*shape)
    with torch.no_grad():
        plain = F.linear(x, layer.weight, layer.bias)
        packed = packed_linear.linear_module(layer, x)
        fused = packed_linear.linear_module(layer, x, "gelu")
    assert (id(layer.weight), torch.float32) in packed_linear._PACKED  # the packed path ran
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, F.gelu(plain), rtol=1e-5, atol=1e-5)
    transposed = torch.randn(50, 2, 64).transpose(0, 1)  # non-contiguous input, as in the encoder
    with torch.no_grad():
        torch.testing.assert_close(packed_linear.linear_module(layer, transposed), layer(transposed),
                                   rtol=1e-5, atol=1e-5)


def test_an_edited_weight_is_packed_again() -> None:
    """Unlearning edits weights in place (or replaces .data): the next call must see the new weight."""
    layer, x = _layer(1), torch.randn(5, 64)
    with torch.no_grad():
        before = packed_linear.linear_module(layer, x)
        layer.weight.mul_(2.0)  # in-place edit: bumps the version
        doubled = packed_linear.linear_module(layer, x)
        layer.weight.data = torch.zeros_like(layer.weight)  # new storage
        zeroed = packed_linear.linear_module(layer, x)
    torch.testing.assert_close(doubled - layer.bias, 2 * (before - layer.bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(zeroed, layer.bias.expand(5, -1))


def test_cache_entries_leave_with_their_weights() -> None:
    layer = _layer(2)
    with torch.no_grad():
        packed_linear.linear_module(layer, torch.randn(3, 64))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        packed_linear.linear_module(layer, torch.randn(3, 64))
    keys = [(id(layer.weight), torch.float32), (id(layer.weight), torch.bfloat16)]
    assert all(key in packed_linear._PACKED for key in keys)
    del layer
    assert not any(key in packed_linear._PACKED for key in keys)


def test_under_bf16_autocast_it_is_autocasts_linear_rounded_once() -> None:
    layer, x = _layer(4), torch.randn(2, 50, 64)
    strided = torch.randn(50, 2, 64).transpose(0, 1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ordinary = F.gelu(layer(x))
        packed = packed_linear.linear_module(layer, x, "gelu")
        ordinary_strided, packed_strided = layer(strided), packed_linear.linear_module(layer, strided)
    assert (id(layer.weight), torch.bfloat16) in packed_linear._PACKED
    assert packed.dtype == ordinary.dtype == torch.bfloat16
    assert torch.equal(packed, ordinary)  # contiguous input: the same kernel, the same bits
    bf16 = [t.to(torch.bfloat16).double() for t in (strided, layer.weight, layer.bias)]
    exact = bf16[0] @ bf16[1].T + bf16[2]  # the product of the bf16 operands, in float64
    error = {name: (out.double() - exact).abs().mean() for name, out in
             (("autocast", ordinary_strided), ("packed", packed_strided))}
    assert error["packed"] <= error["autocast"], error


def test_training_and_int8_take_the_ordinary_path() -> None:
    layer, x = _layer(3), torch.randn(4, 64)
    out = packed_linear.linear_module(layer, x)  # grad enabled: autograd must see an ordinary linear
    assert out.requires_grad and out.grad_fn is not None
    assert not any(key[0] == id(layer.weight) for key in packed_linear._PACKED)
    quantized = quantized_copy(nn.Sequential(layer))[0]
    with torch.no_grad():
        torch.testing.assert_close(packed_linear.linear_module(quantized, x), quantized(x))
    with pytest.raises(ValueError, match="activation"):
        packed_linear.linear(x, layer.weight, layer.bias, "relu")
