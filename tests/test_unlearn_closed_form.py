"""UCE and RECE closed forms on the `cond_emb` layers of a tiny random pipeline."""

from __future__ import annotations

import pytest
import torch

from models.data.concepts import get_concept
from models.pipelines import MotionPipeline
from models.unlearn.params import MethodParams
from models.unlearn.rece import RECEParams, adversarial_embedding, apply_rece
from models.unlearn.uce import UCEParams, apply_uce, closed_form, cond_layers, prompt_embeddings, targets


@pytest.fixture(scope="module")
def pipeline() -> MotionPipeline:
    return MotionPipeline.random(kind="momask", size="tiny", seed=0)


def _copy_layers(pipeline: MotionPipeline) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {n: (m.weight.detach().clone(), m.bias.detach().clone()) for n, m in cond_layers(pipeline).items()}


def _restore(pipeline: MotionPipeline, saved) -> None:
    with torch.no_grad():
        for name, layer in cond_layers(pipeline).items():
            layer.weight.copy_(saved[name][0])
            layer.bias.copy_(saved[name][1])


@pytest.fixture()
def fresh(pipeline: MotionPipeline):
    saved = _copy_layers(pipeline)
    yield pipeline, saved
    _restore(pipeline, saved)


def test_closed_form_equals_direct_least_squares() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    c_e, v_e = (
        torch.randn(3, 9, generator=gen, dtype=torch.float64),
        torch.randn(3, 6, generator=gen, dtype=torch.float64),
    )
    c_p = torch.randn(4, 9, generator=gen, dtype=torch.float64)
    s_e, s_p, lamb = 0.7, 0.3, 0.2
    new = closed_form(w, c_e, v_e, c_p, c_p @ w.T, s_e, s_p, lamb)
    # Stack the three weighted squared-error terms into one least-squares problem for W'^T.
    x = torch.cat([s_e**0.5 * c_e, s_p**0.5 * c_p, lamb**0.5 * torch.eye(9, dtype=torch.float64)])
    y = torch.cat([s_e**0.5 * v_e, s_p**0.5 * c_p @ w.T, lamb**0.5 * w.T])
    direct = torch.linalg.lstsq(x, y).solution.T
    torch.testing.assert_close(new, direct, rtol=1e-9, atol=1e-10)


def test_uce_edits_weight_only_and_matches_least_squares(fresh) -> None:
    pipeline, saved = fresh
    concept = get_concept("violence")
    params = UCEParams.from_dict({"technique": "replace"})
    _, erase, guide, preserve = prompt_embeddings(pipeline, concept, params)
    apply_uce(pipeline, concept, params)
    for name, layer in cond_layers(pipeline).items():
        w, b = saved[name]
        assert torch.equal(layer.bias, b), "the bias (unconditional CFG branch) must not change"
        assert not torch.equal(layer.weight, w)
        w64 = w.double()
        x = torch.cat(
            [
                params.erase_scale**0.5 * erase,
                params.preserve_scale**0.5 * preserve,
                params.lamb**0.5 * torch.eye(w.shape[1], dtype=torch.float64),
            ]
        )
        v_star = (guide @ w64.T).expand(erase.shape[0], -1)  # replace: v* = W c*, bias excluded
        y = torch.cat(
            [
                params.erase_scale**0.5 * v_star,
                params.preserve_scale**0.5 * preserve @ w64.T,
                params.lamb**0.5 * w64.T,
            ]
        )
        direct = torch.linalg.lstsq(x, y).solution.T
        torch.testing.assert_close(layer.weight.double(), direct, rtol=1e-4, atol=1e-6)


def test_preserved_prompts_keep_their_outputs_and_erased_ones_move(fresh) -> None:
    pipeline, saved = fresh
    concept = get_concept("violence")
    params = UCEParams.from_dict({"preserve_scale": 50.0, "erase_scale": 1.0})
    _, erase, guide, preserve = prompt_embeddings(pipeline, concept, params)
    apply_uce(pipeline, concept, params)
    for name, layer in cond_layers(pipeline).items():
        w = saved[name][0].double()
        new = layer.weight.detach().double()
        drift = (preserve @ (new - w).T).norm(dim=1) / (preserve @ w.T).norm(dim=1)
        moved = (erase @ (new - w).T).norm(dim=1) / (erase @ w.T).norm(dim=1)
        assert float(drift.max()) < 0.05, f"{name}: preserved outputs drift by {drift.max():.3f}"
        assert float(moved.mean()) > 5 * float(drift.mean())


def test_tensor_targets_remove_the_erased_direction() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    erase, guide = (
        torch.randn(3, 7, generator=gen, dtype=torch.float64),
        torch.randn(7, generator=gen, dtype=torch.float64),
    )
    v = targets(lambda x: x @ w.T, erase, guide, "tensor")
    dots = (v * (erase @ w.T)).sum(1)
    torch.testing.assert_close(dots, torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        targets(lambda x: x @ w.T, erase, guide, "replace"), (guide @ w.T).expand(3, -1)
    )


def test_bias_in_targets_reproduces_the_paper_code(fresh) -> None:
    pipeline, saved = fresh
    with torch.no_grad():
        for layer in cond_layers(pipeline).values():
            layer.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    biased = _copy_layers(pipeline)
    concept = get_concept("violence")
    apply_uce(pipeline, concept, UCEParams.from_dict({"bias_in_targets": True}))
    with_bias = _copy_layers(pipeline)
    _restore(pipeline, biased)
    apply_uce(pipeline, concept, UCEParams())
    without = _copy_layers(pipeline)
    for name in with_bias:
        assert torch.equal(with_bias[name][1], biased[name][1])  # the bias itself is never edited
        assert not torch.allclose(with_bias[name][0], without[name][0])


def test_rece_adversarial_embedding_solves_its_normal_equations() -> None:
    gen = torch.Generator().manual_seed(2)
    ref = [torch.randn(4, 8, generator=gen, dtype=torch.float64) for _ in range(2)]
    cur = [w + 0.1 * torch.randn(4, 8, generator=gen, dtype=torch.float64) for w in ref]
    c = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    reg = 1e-2
    adv = adversarial_embedding(cur, ref, c, reg)
    lhs = reg * torch.eye(8, dtype=torch.float64) + sum(w.T @ w for w in cur)
    rhs = sum(wn.T @ wr for wn, wr in zip(cur, ref, strict=True)) @ c.T
    torch.testing.assert_close(lhs @ adv.T, rhs, rtol=1e-9, atol=1e-10)
    anchor = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    adv_std = adversarial_embedding(cur, ref, c, reg, anchor)
    torch.testing.assert_close(lhs @ adv_std.T, rhs + reg * anchor, rtol=1e-9, atol=1e-10)
    # The paper code's "current" reference only shrinks c: c' = (reg I + W'^T W')^-1 W'^T W' c.
    shrunk = adversarial_embedding(cur, cur, c, reg)
    assert float((shrunk - c).norm()) < float((adv - c).norm())


def test_rece_runs_epochs_and_reduces_revival(fresh) -> None:
    pipeline, saved = fresh
    result = apply_rece(pipeline, get_concept("violence"), RECEParams.from_dict({"epochs": 2}))
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for record in result["epochs"]:
        assert record["revival_error_after"] > record["revival_error_before"]
    for name, layer in cond_layers(pipeline).items():
        assert torch.equal(layer.bias, saved[name][1])


def test_params_validation_names_unknown_keys_and_bounds() -> None:
    with pytest.raises(ValueError, match=r"unknown uce parameters \['lambda', 'scale'\]"):
        UCEParams.from_dict({"lambda": 1, "scale": 2})
    with pytest.raises(ValueError, match="technique"):
        UCEParams.from_dict({"technique": "orth"})
    with pytest.raises(ValueError, match="lamb"):
        UCEParams.from_dict({"lamb": 0})
    with pytest.raises(ValueError, match="must be a number"):
        RECEParams.from_dict({"reg": "big"})
    with pytest.raises(ValueError, match="rece_reference"):
        RECEParams.from_dict({"rece_reference": "frozen"})
    params = RECEParams.from_dict({"epochs": 3.0, "layers": "base", "erase_scale": 1})
    assert params.epochs == 3 and params.layers == ["base"] and params.erase_scale == 1.0
    assert isinstance(params, MethodParams) and params.to_dict()["reg_mode"] == "regzero"
