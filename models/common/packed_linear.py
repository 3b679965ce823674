"""Linear layers with oneDNN-packed weights for CPU inference (same function as `F.linear`, fp32 throughout).

At the small row counts of token generation (batch 1 with guidance: ~100 rows) the default CPU matrix product
runs well below the core's peak; oneDNN with the weight reordered once into its blocked layout runs near it
(BENCHMARKS.md, issue 15). The packed copy lives in a cache keyed by the weight tensor and is rebuilt when the
weight changes (an in-place edit bumps the tensor's version, a replaced `.data` its storage), so unlearning
methods that edit weights never meet a stale copy. The module's parameters and state dict are untouched.

Used where it computes what the ordinary path computes: on the CPU without autograd, for float32 weights, either
in float32 (no autocast) or, under bf16 autocast, with bfloat16 input, weight and bias as autocast's linear (the
GELU applied after it, as autocast does). The bf16 result equals autocast's for contiguous input; for strided
input autocast rounds the product to bf16 before adding the bias, the packed path rounds once (closer to the
exact product: tests/test_packed_linear.py). Anything else (training, CUDA, int8 modules) takes the ordinary
path.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("none", "gelu")

# (id(weight), dtype) -> (weak reference to the weight, (storage pointer, version), packed weight); entries leave
# with their weight (tensors compare element-wise, so they cannot key a WeakKeyDictionary)
_PACKED: dict[tuple[int, torch.dtype], tuple[weakref.ref, tuple[int, int], torch.Tensor]] = {}


def packing_available() -> bool:
    """True where this torch build has oneDNN's packed linear operators."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise") \
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


ENABLED = packing_available()


def _packed_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The dtype to compute in with a packed weight (float32, or bfloat16 under CPU bf16 autocast), or None for
    the ordinary path."""
    if not ENABLED or x.device.type != "cpu" or weight.dtype != torch.float32 or torch.is_grad_enabled():
        return None
    if torch.is_autocast_enabled("cpu"):
        bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16 and x.dtype in (torch.float32, torch.bfloat16)
        return torch.bfloat16 if bf16 else None
    return torch.float32 if x.dtype == torch.float32 else None


def _drop(weight_id: int) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        _PACKED.pop((weight_id, dtype), None)


def _packed_weight(weight: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    key = (weight.data_ptr(), weight._version)
    hit = _PACKED.get((id(weight), dtype))
    if hit is None or hit[0]() is not weight or hit[1] != key:
        if hit is None or hit[0]() is not weight:  # first use of this weight (per dtype; extra calls are harmless)
            weakref.finalize(weight, _drop, id(weight))
        hit = (weakref.ref(weight), key, torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), None))
        _PACKED[(id(weight), dtype)] = hit
    return hit[2]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           activation: str = "none") -> torch.Tensor:
    """`F.linear(x, weight, bias)`, then `activation` ("none" or "gelu", exact erf GELU), packed when possible."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    dtype = _packed_dtype(x, weight)
    if dtype == torch.float32:  # GELU fused into the product
        algorithm = "none" if activation == "gelu" else ""
        return torch.ops.mkldnn._linear_pointwise(x, _packed_weight(weight), bias, activation, [], algorithm)
    if dtype == torch.bfloat16:  # as autocast: bf16 operands, bf16 result, GELU after it
        out = torch.ops.mkldnn._linear_pointwise(x.to(dtype), _packed_weight(weight, dtype),
                                                 None if bias is None else bias.to(dtype), "none", [], "")
    else:
        out = F.linear(x, weight, bias)
    return F.gelu(out) if activation == "gelu" else out


def linear_module(module: nn.Module, x: torch.Tensor, activation: str = "none") -> torch.Tensor:
    """`module(x)` for a float `nn.Linear` (packed when possible); any other module (e.g. an int8 dynamic
    quantised copy) is simply called."""
    if isinstance(module, nn.Linear) and isinstance(module.weight, torch.Tensor) \
            and module.weight.dtype == torch.float32:
        return linear(x, module.weight, module.bias, activation)
    out = module(x)
    return F.gelu(out) if activation == "gelu" else out
