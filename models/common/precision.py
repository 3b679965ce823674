"""Optional lower-precision inference of the token transformers (`HMU_PRECISION`): fp32 (default, exact), bf16
(autocast: matrix products in bfloat16, accumulation and softmax/LayerNorm in float32) or int8 (dynamic
quantisation of every linear layer: int8 weights per output channel, activations quantised per call).

Lower precision changes the logits slightly, hence some sampled tokens; BENCHMARKS.md reports the token agreement
with fp32 and the speed ratio, measured with `bench/ab.py --precision`.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS, else a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """bf16: torch.autocast to bfloat16 on `device`'s type; fp32 and int8: nothing."""
    if check_precision(precision) != "bf16":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield


def quantized_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` whose linear layers are dynamically quantised to int8 (per-channel weights);
    the packed q/k/v projection of each `nn.TransformerEncoderLayer` too (as `hmu_in_proj`, used by
    `fast_encoder_forward`). For inference only: its state dict is not the checkpoint's."""
    from torch.ao.nn.quantized import dynamic as quantized
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    copied = copy.deepcopy(module).eval()
    linear_types = (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        in_projections = []
        for layer in copied.modules():
            if isinstance(layer, nn.TransformerEncoderLayer):
                attn = layer.self_attn
                linear = nn.Linear(attn.embed_dim, 3 * attn.embed_dim)
                linear.weight.data.copy_(attn.in_proj_weight.data)
                linear.bias.data.copy_(attn.in_proj_bias.data)
                linear.qconfig = per_channel_dynamic_qconfig
                in_projections.append((layer, quantized.Linear.from_float(linear)))
        quantize_dynamic(copied, {t: per_channel_dynamic_qconfig for t in linear_types}, dtype=torch.qint8,
                         inplace=True)
    for layer, linear in in_projections:
        layer.hmu_in_proj = linear
    return copied


def inference_modules(precision: str, modules: tuple[nn.Module, ...]) -> tuple[nn.Module, ...]:
    """The modules to run at `precision`: int8 -> quantised copies, else the modules themselves."""
    if check_precision(precision) == "int8":
        return tuple(quantized_copy(m) for m in modules)
    return modules
