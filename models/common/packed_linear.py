"""Linear layers with oneDNN-packed weights for CPU inference (same function as `F.linear`, fp32 throughout).

At the small row counts of token generation (batch 1 with guidance: ~100 rows) the default CPU matrix product
runs well below the core's peak; oneDNN with the weight reordered once into its blocked layout runs near it
(BENCHMARKS.md, issue 15). The packed copy lives in a cache keyed by the weight tensor and is rebuilt when the
weight changes (an in-place edit bumps the tensor's version, a replaced `.data` its storage), so unlearning
methods that edit weights never meet a stale copy. The module's parameters and state dict are untouched.

Used only where it is exact in kind: CPU, float32 input and weight, no autograd, no autocast; anything else
(training, CUDA, bf16 autocast, int8 modules) takes the ordinary path.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("none", "gelu")

# id(weight) -> (weak reference to the weight, (storage pointer, version), packed weight); an entry leaves with its
# weight (tensors compare element-wise, so they cannot key a WeakKeyDictionary)
_PACKED: dict[int, tuple[weakref.ref, tuple[int, int], torch.Tensor]] = {}


def packing_available() -> bool:
    """True where this torch build has oneDNN's packed linear operators."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise") \
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


ENABLED = packing_available()


def _packable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (ENABLED and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"))


def _packed_weight(weight: torch.Tensor) -> torch.Tensor:
    key = (weight.data_ptr(), weight._version)
    hit = _PACKED.get(id(weight))
    if hit is None or hit[0]() is not weight or hit[1] != key:
        if hit is None or hit[0]() is not weight:
            weakref.finalize(weight, _PACKED.pop, id(weight), None)
        hit = (weakref.ref(weight), key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
        _PACKED[id(weight)] = hit
    return hit[2]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           activation: str = "none") -> torch.Tensor:
    """`F.linear(x, weight, bias)`, then `activation` ("none" or "gelu", exact erf GELU), packed when possible."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if _packable(x, weight):
        algorithm = "none" if activation == "gelu" else ""
        return torch.ops.mkldnn._linear_pointwise(x, _packed_weight(weight), bias, activation, [], algorithm)
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
