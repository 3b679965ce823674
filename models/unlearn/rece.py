"""RECE: UCE, then repeatedly erase the adversarial embedding that revives the concept (§2).

The adversarial embedding of concept c solves, over all edited layers l at once,

    c' = argmin_x sum_l |W'_l x - W_l c|^2 + reg * R(x)
    regzero:  (reg I + sum W'^T W') c' = sum W'^T W c
    standard: (reg I + sum W'^T W') c' = reg c_t + sum W'^T W c      (c_t = the guide embedding)

with W_l a frozen copy of the original weights (`rece_reference="original"`). The paper code uses the
current weights on both sides (`rece_reference="current"`), which makes c' a shrunk copy of c.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models.data.concepts import Concept
from models.unlearn.params import one_of, require
from models.unlearn.uce import UCEParams, cond_layers, edit_layer, prompt_embeddings

Progress = Callable[[float, str], None]


@dataclass
class RECEParams(UCEParams):
    """UCE settings plus the RECE loop; defaults: HMU's main table (1 epoch, reg 1e-3, regzero) with the
    frozen-original reference; `rece_reference="current"` (+ `bias_in_targets`) reproduces the paper code."""

    method = "rece"
    epochs: int = 1
    reg: float = 1e-3  # lambda_reg of the adversarial embedding
    reg_mode: str = "regzero"  # regzero | standard
    rece_reference: str = "original"  # original | current

    def validate(self) -> None:
        super().validate()
        require(0 <= self.epochs <= 100, f"epochs must be in 0..100, got {self.epochs}")
        require(0.0 < self.reg <= 1e6, f"reg must be in (0, 1e6], got {self.reg}")
        one_of("reg_mode", self.reg_mode, ("regzero", "standard"))
        one_of("rece_reference", self.rece_reference, ("original", "current"))


def adversarial_embedding(
    current: list[torch.Tensor],
    reference: list[torch.Tensor],
    concepts: torch.Tensor,
    reg: float,
    anchor: torch.Tensor | None = None,
) -> torch.Tensor:
    """c' (n, d_in) for concepts (n, d_in): solves (reg I + sum W'^T W') c' = reg*anchor + sum W'^T W c.

    current / reference: the edited and the reference weights (d_out, d_in) of every edited layer.
    """
    d = concepts.shape[1]
    lhs = reg * torch.eye(d, dtype=torch.float64)
    rhs = torch.zeros(d, concepts.shape[0], dtype=torch.float64)
    for w_new, w_ref in zip(current, reference, strict=True):
        w_new, w_ref = w_new.detach().cpu().double(), w_ref.detach().cpu().double()
        lhs = lhs + w_new.T @ w_new
        rhs = rhs + w_new.T @ (w_ref @ concepts.double().T)
    if anchor is not None:
        rhs = rhs + reg * anchor.double().reshape(d, -1)
    return torch.linalg.solve(lhs, rhs).T


def revival_error(
    current: list[torch.Tensor],
    reference: list[torch.Tensor],
    adversarial: torch.Tensor,
    concepts: torch.Tensor,
) -> float:
    """Relative error sum_l |W'_l c' - W_l c| / |W_l c|: how well c' revives the concept."""
    num = den = 0.0
    for w_new, w_ref in zip(current, reference, strict=True):
        target = concepts.double() @ w_ref.detach().cpu().double().T
        num += float((adversarial.double() @ w_new.detach().cpu().double().T - target).norm() ** 2)
        den += float(target.norm() ** 2)
    return (num / max(den, 1e-24)) ** 0.5


def apply_rece(
    pipeline, concept: Concept, params: RECEParams, progress: Progress | None = None
) -> dict[str, Any]:
    """UCE erasure followed by `epochs` adversarial rounds, in place; return the manifest result."""
    layers = cond_layers(pipeline, params.layers)
    originals: dict[str, nn.Linear] = {name: copy.deepcopy(layer) for name, layer in layers.items()}
    erase_prompts, erase, guide, preserve = prompt_embeddings(pipeline, concept, params)
    result: dict[str, Any] = {
        "erase_prompts": erase_prompts,
        "preserve_prompts": params.preserve_prompts(),
        "uce": {},
        "epochs": [],
    }
    total = params.epochs + 1
    for name, layer in layers.items():
        dev = layer.weight.device
        result["uce"][name] = edit_layer(layer, erase.to(dev), guide.to(dev), preserve.to(dev), params)
    if progress is not None:
        progress(1 / total, "RECE: initial UCE erasure done")
    anchor = guide.expand(erase.shape[0], -1).T if params.reg_mode == "standard" else None
    for epoch in range(params.epochs):
        current = [layer.weight.detach().clone() for layer in layers.values()]
        reference = current if params.rece_reference == "current" else [m.weight for m in originals.values()]
        adv = adversarial_embedding(current, reference, erase, params.reg, anchor)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "adv_norm": adv.norm(dim=1).mean().item(),
            "revival_error_before": revival_error(current, reference, adv, erase),
            "layers": {},
        }
        for name, layer in layers.items():
            dev = layer.weight.device
            record["layers"][name] = edit_layer(layer, adv.to(dev), guide.to(dev), preserve.to(dev), params)
        record["revival_error_after"] = revival_error(
            [layer.weight for layer in layers.values()], reference, adv, erase
        )
        result["epochs"].append(record)
        if progress is not None:
            progress((epoch + 2) / total, f"RECE: epoch {epoch + 1}/{params.epochs}")
    return result
