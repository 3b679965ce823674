"""Unified Concept Editing on the text-conditioning layers (`cond_emb`) (unlearning-methods.md §1).

For each edited Linear W (d_out x d_in), with erase inputs c_i, targets v_i and preserve inputs c_j:

    min_W'  s_e sum_i |W' c_i - v_i|^2 + s_p sum_j |W' c_j - W c_j|^2 + lamb |W' - W|_F^2
    W' = (lamb W + s_e sum v_i c_i^T + s_p sum W c_j c_j^T)
           (lamb I + s_e sum c_i c_i^T + s_p sum c_j c_j^T)^-1

solved with `torch.linalg.solve` in float64. Only the weight changes (the bias is the unconditional CFG
branch, `cond_emb(0)`); targets exclude the bias unless `bias_in_targets` (the paper code's behaviour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.data.concepts import Concept
from models.unlearn.params import MethodParams, one_of, require

Progress = Callable[[float, str], None]
LAYERS = ("base", "residual")
TECHNIQUES = ("replace", "tensor")
# Preserve prompts of the HMU scripts (unlearning-methods.md §1.5).
PRESERVE_PROMPTS = (
    "walk",
    "walking",
    "run",
    "running",
    "jog",
    "step",
    "turn",
    "dance",
    "dancing",
    "move",
    "moving",
    "steps",
    "raise",
    "arm",
    "leg",
    "forward",
    "front",
    "backward",
    "sit",
    "dodge",
    "moves",
)


@dataclass
class UCEParams(MethodParams):
    """UCE settings; defaults are the HMU paper's (lamb 0.1, s_e 0.1, s_p 0.5, technique tensor, guide "")
    with the bias fix (`bias_in_targets=False`); `bias_in_targets=True` reproduces the paper code."""

    method = "uce"
    layers: list[str] = field(default_factory=lambda: list(LAYERS))  # base | residual cond_emb
    erase: list[str] | None = None  # erase prompts; None = the concept's keywords
    guide: str = ""  # target prompt c* (the paper: empty prompt)
    preserve: list[str] | None = None  # None = the HMU script's preserve prompts; [] = none
    erase_scale: float = 0.1
    preserve_scale: float = 0.5
    lamb: float = 0.1  # ridge toward the current weights
    technique: str = "tensor"  # replace | tensor
    normalize: bool = False  # scale s_e by 1/|E| and s_p by 1/|P|
    bias_in_targets: bool = False  # True: targets = layer(c) incl. bias (paper code)

    def validate(self) -> None:
        require(
            bool(self.layers)
            and all(x in LAYERS for x in self.layers)
            and len(set(self.layers)) == len(self.layers),
            f"layers must be distinct names from {list(LAYERS)}, got {self.layers}",
        )
        if self.erase is not None:
            require(
                bool(self.erase),
                "erase must list at least one prompt (or be null for the concept's keywords)",
            )
        one_of("technique", self.technique, TECHNIQUES)
        for name in ("erase_scale", "preserve_scale"):
            require(
                0.0 <= getattr(self, name) <= 1e6, f"{name} must be in [0, 1e6], got {getattr(self, name)}"
            )
        require(0.0 < self.lamb <= 1e6, f"lamb must be in (0, 1e6], got {self.lamb}")

    def preserve_prompts(self) -> list[str]:
        return list(PRESERVE_PROMPTS) if self.preserve is None else list(self.preserve)


def cond_layers(pipeline, names: list[str] | tuple[str, ...] = LAYERS) -> dict[str, nn.Linear]:
    """The text-conditioning Linear layers by name: `base` (MoMask masked / BAMM) and `residual`."""
    modules = {"base": pipeline.base, "residual": pipeline.residual}
    return {name: modules[name].cond_emb for name in names}


def targets(
    out: Callable[[torch.Tensor], torch.Tensor], erase: torch.Tensor, guide: torch.Tensor, technique: str
) -> torch.Tensor:
    """Erase targets v_i (n_e, d_out) for inputs erase (n_e, d_in) and one guide input (d_in,).

    replace: v = out(c*); tensor: v = out(c*) - (u . out(c*)) u with u = out(c_i) / |out(c_i)|.
    """
    v = out(guide.unsqueeze(0)).expand(erase.shape[0], -1)
    if technique == "replace":
        return v.clone()
    u = out(erase)
    u = u / u.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return v - (v * u).sum(1, keepdim=True) * u


def closed_form(
    weight: torch.Tensor,
    erase: torch.Tensor,
    erase_targets: torch.Tensor,
    preserve: torch.Tensor,
    preserve_targets: torch.Tensor,
    erase_scale: float,
    preserve_scale: float,
    lamb: float,
) -> torch.Tensor:
    """The UCE solution W' (d_out, d_in) in float64 (inputs (n, d_in), targets (n, d_out))."""
    w = weight.double()
    c_e, v_e, c_p, v_p = erase.double(), erase_targets.double(), preserve.double(), preserve_targets.double()
    eye = torch.eye(w.shape[1], dtype=torch.float64, device=w.device)
    lhs = lamb * eye + erase_scale * c_e.T @ c_e + preserve_scale * c_p.T @ c_p  # (d_in, d_in), symmetric
    rhs = lamb * w + erase_scale * v_e.T @ c_e + preserve_scale * v_p.T @ c_p  # (d_out, d_in)
    return torch.linalg.solve(lhs, rhs.T).T  # rhs lhs^-1


@torch.no_grad()
def edit_layer(
    layer: nn.Linear,
    erase: torch.Tensor,
    guide: torch.Tensor,
    preserve: torch.Tensor,
    params: UCEParams,
    reference: nn.Linear | None = None,
) -> dict[str, float]:
    """Apply one UCE step to `layer` in place (targets from `reference`'s weights, default: the layer itself).

    erase (n_e, d_in), guide (d_in,), preserve (n_p, d_in) -> diagnostics.
    """
    ref = reference or layer
    w_ref, b_ref = ref.weight.detach().double(), ref.bias.detach().double() if ref.bias is not None else None

    def out(x: torch.Tensor) -> torch.Tensor:
        y = x.double() @ w_ref.T
        return y + b_ref if params.bias_in_targets and b_ref is not None else y

    n_e, n_p = erase.shape[0], preserve.shape[0]
    s_e = params.erase_scale / n_e if params.normalize else params.erase_scale
    s_p = params.preserve_scale / max(n_p, 1) if params.normalize else params.preserve_scale
    v_e = targets(out, erase, guide, params.technique)
    v_p = out(preserve)
    new = closed_form(layer.weight.detach(), erase, v_e, preserve, v_p, s_e, s_p, params.lamb)
    old = layer.weight.detach().double()
    layer.weight.copy_(new.to(layer.weight.dtype))
    return {
        "weight_change_fro": float((new - old).norm()),
        "erase_residual": float((erase.double() @ new.T - v_e).norm() / max(float(v_e.norm()), 1e-12)),
        "preserve_drift": float((preserve.double() @ (new - old).T).norm() / max(float(v_p.norm()), 1e-12))
        if n_p
        else 0.0,
    }


def prompt_embeddings(
    pipeline, concept: Concept, params: UCEParams
) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """(erase prompts, erase (n_e, d), guide (d,), preserve (n_p, d)) text features."""
    erase = list(params.erase) if params.erase is not None else concept.erase_prompts()
    preserve = params.preserve_prompts()
    feats = pipeline.encode_text(erase + [params.guide] + preserve).detach().cpu().double()
    return erase, feats[: len(erase)], feats[len(erase)], feats[len(erase) + 1 :]


def apply_uce(
    pipeline, concept: Concept, params: UCEParams, progress: Progress | None = None
) -> dict[str, Any]:
    """Edit the chosen `cond_emb` layers of `pipeline` in place; return the manifest result."""
    erase_prompts, erase, guide, preserve = prompt_embeddings(pipeline, concept, params)
    result: dict[str, Any] = {
        "erase_prompts": erase_prompts,
        "preserve_prompts": params.preserve_prompts(),
        "layers": {},
    }
    for i, (name, layer) in enumerate(cond_layers(pipeline, params.layers).items()):
        dev = layer.weight.device
        result["layers"][name] = edit_layer(layer, erase.to(dev), guide.to(dev), preserve.to(dev), params)
        if progress is not None:
            progress((i + 1) / len(params.layers), f"UCE: edited {name}.cond_emb")
    return result
