"""code_ban: the text-gated CodeSuppression in both base transformers, its checkpoint round trip, the method."""

from __future__ import annotations

import json

import pytest
import torch

from models.common.code_suppression import SUPPRESSED, CodeSuppression
from models.data.concepts import concept_from_keywords, get_concept
from models.pipelines import MotionPipeline
from models.unlearn.code_ban import (
    CodeBanParams,
    ProbeRun,
    apply_code_ban,
    fit_gate,
    generate_with_codes,
    group_weights,
    install_suppression,
)
from models.unlearn.methods import parse_params
from tests.unlearn_helpers import make_dataset

TEXTS = ["a person kicks hard", "a person walks forward", "someone waves"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("hml"), n=32)


def _base_ids(pipeline: MotionPipeline, texts=TEXTS, seed: int = 3) -> torch.Tensor:
    _, codes = generate_with_codes(pipeline, texts, [seed], length=48)
    return torch.stack(codes)


def test_suppression_offsets_only_the_gated_rows_and_codes() -> None:
    module = CodeSuppression(1, 4, 6)
    module.set([1, 4], directions=torch.tensor([[1.0, 0, 0, 0]]), offsets=torch.tensor([-0.5]))
    cond = torch.tensor([[1.0, 0, 0, 0], [0.2, 0, 0, 0]])  # scores 0.5 (fires), -0.3 (does not)
    out = module(torch.zeros(2, 3, 6), cond)
    assert module.gate(cond).tolist() == [True, False]
    assert torch.equal(out[1], torch.zeros(3, 6))
    assert out[0, :, [1, 4]].eq(SUPPRESSED).all() and out[0, :, [0, 2, 3, 5]].eq(0).all()
    module.set([2])  # no gate: always
    assert module.gate(torch.randn(5, 4)).all() and module.suppressed() == [2]
    with pytest.raises(ValueError, match="0..5"):
        module.set([6])
    with pytest.raises(ValueError, match="gate must be"):
        module.set([1], directions=torch.zeros(2, 4), offsets=torch.zeros(2))


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_banned_codes_are_never_drawn_and_an_idle_gate_changes_nothing(kind, tiny_momask, tiny_bamm) -> None:
    pipeline = (tiny_momask if kind == "momask" else tiny_bamm).copy()
    before = _base_ids(pipeline)
    banned = sorted(set(before[before >= 0].tolist()))[:6]  # codes the model really draws here
    install_suppression(pipeline, banned)
    after = _base_ids(pipeline)
    assert not torch.isin(after, torch.tensor(banned)).any()
    assert not torch.equal(before, after)
    dim = pipeline.base.cfg.cond_dim
    install_suppression(pipeline, banned, torch.zeros(1, dim), torch.tensor([-1.0]))  # a gate that never fires
    assert torch.equal(_base_ids(pipeline), before)


def test_suppression_round_trips_through_the_native_format(tiny_momask, tmp_path) -> None:
    pipeline = tiny_momask.copy()
    dim = pipeline.base.cfg.cond_dim
    direction = pipeline.encode_text(["a person kicks hard"]).cpu()
    install_suppression(pipeline, [0, 5, 7], direction, torch.tensor([-0.5]))
    pipeline.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["base"]["suppression_directions"] == 1 and "suppression_directions" not in config["residual"]
    loaded = MotionPipeline.from_pretrained(tmp_path / "m")
    assert loaded.base.code_suppression.suppressed() == [0, 5, 7]
    assert torch.equal(loaded.base.code_suppression.directions, direction.reshape(1, dim))
    assert torch.equal(_base_ids(loaded), _base_ids(pipeline))
    plain = tmp_path / "plain"
    tiny_momask.save_pretrained(plain)
    assert "suppression_directions" not in json.loads((plain / "config.json").read_text())["base"]


def test_code_ban_bans_codes_for_the_concept_and_leaves_other_prompts(tiny_momask, data) -> None:
    pipeline = tiny_momask.copy()
    params = CodeBanParams.from_dict({"k": 8, "rounds": 1, "k_per_round": 4, "max_codes": 16, "length": 48,
                                      "use_cache": False})
    result = apply_code_ban(pipeline, get_concept("violence"), params, data)
    banned = result["banned_codes"]
    assert 1 <= len(banned) <= 16 and result["num_banned"] == len(banned)
    assert pipeline.base.code_suppression.suppressed() == banned
    assert result["forget_items"]["by_caption"] > 0 and result["rounds"][0]["banned"] >= 1
    assert result["gate"]["mode"] == "text" and result["gate"]["held_out_fp"] <= 0.1
    assert set(result["phase_seconds"]) == {"code_statistics", "forget_set", "probe_rounds", "gate"}
    gate = pipeline.base.code_suppression.gate(pipeline.encode_text(["a person kicks", "a man throws a punch"]))
    assert gate.all()  # prompts that name the concept are caught
    ids = _base_ids(pipeline, ["a person kicks someone in the stomach"] * 4)
    assert not torch.isin(ids, torch.tensor(banned)).any()


def test_code_ban_custom_keywords_uses_captions_only(tiny_momask, data) -> None:
    pipeline = tiny_momask.copy()
    params = CodeBanParams.from_dict({"k": 4, "gate": "always", "use_cache": False})
    result = apply_code_ban(pipeline, concept_from_keywords(["punch"], name="custom"), params, data)
    assert result["rounds"] == [] and result["safe_probe_rate"] is None and result["gate"] == {"mode": "always"}
    assert result["forget_items"]["by_motion_only"] == 0
    assert pipeline.base.code_suppression.gate(pipeline.encode_text(["anything at all"])).all()


def test_code_ban_parameters_are_validated() -> None:
    assert parse_params("code_ban", {}).gate == "text"
    for bad, match in (({"gate": "maybe"}, "gate"), ({"k": 0}, "k must"), ({"gate_fp": 0.9}, "gate_fp"),
                       ({"length": 500}, "length"), ({"colour": 1}, "colour")):
        with pytest.raises(ValueError, match=match):
            parse_params("code_ban", bad)


def test_code_ban_is_the_default_method() -> None:
    import argparse

    from models.unlearn.cli import register
    from service.schemas import UnlearnRequest

    assert UnlearnRequest(concept="violence").method == "code_ban"
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["unlearn", "--model", "m", "--concept", "violence", "--out", "o"])
    assert args.method == "code_ban"


def test_group_weights_give_every_group_the_same_share() -> None:
    weights = group_weights(torch.tensor([0, 0, 0, 1, 3, 3]))
    assert torch.allclose(weights, torch.tensor([1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6]))
    assert torch.isclose(weights.sum(), torch.tensor(1.0))


def test_the_gate_learns_a_small_group_of_prompts_it_would_drown_otherwise() -> None:
    """Many captions, separable along x, whose y points the wrong way, and a few prompts separable along y only:
    weighed by label alone the captions set the sign of y and the prompts come out reversed; with captions and
    prompts weighed alike the positive prompts score above the negative ones."""
    gen = torch.Generator().manual_seed(0)
    captions = torch.randn(400, 2, generator=gen) * 0.2
    captions[:200] += torch.tensor([1.0, -0.5])
    captions[200:] += torch.tensor([-1.0, 0.5])
    prompts = torch.tensor([[0.0, 1.0], [0.1, 1.2], [0.0, -1.0], [-0.1, -1.2]])
    features = torch.cat([captions, prompts])
    labels = torch.tensor([True] * 200 + [False] * 200 + [True, True, False, False])
    w, b = fit_gate(features, labels)
    assert (prompts[:2] @ w + b).max() < (prompts[2:] @ w + b).min()
    w, b = fit_gate(features, labels, torch.tensor([0] * 400 + [1] * 4))
    assert (prompts[:2] @ w + b).min() > (prompts[2:] @ w + b).max()
    assert ((captions[:200] @ w + b) > (captions[200:] @ w + b).max()).float().mean() > 0.9


def test_each_probe_draw_uses_new_seeds(tiny_momask) -> None:
    from models.evaluator.violence_classifier import ViolenceClassifier
    from models.pipelines import default_model_dir

    probes = ProbeRun(["a person kicks"], [], [0, 1], 48,
                      ViolenceClassifier.from_pretrained(default_model_dir("violence-classifier")))
    _, first = probes.flagged(tiny_momask, probes.violent)
    _, again = probes.flagged(tiny_momask, probes.violent, draw=0)
    _, later = probes.flagged(tiny_momask, probes.violent, draw=1)
    _, seeds_2_3 = generate_with_codes(tiny_momask, probes.violent, [2, 3], 48)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(later, seeds_2_3, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, later, strict=True))
