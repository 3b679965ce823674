"""ESD and FT: which weights move, early stopping, retain-set training."""

from __future__ import annotations

import pytest
import torch

from models.data.concepts import get_concept
from models.pipelines import MotionPipeline
from models.unlearn.esd import ESDParams, apply_esd
from models.unlearn.finetune import FTParams, apply_ft
from models.unlearn.run import copy_pipeline
from tests.unlearn_helpers import make_dataset


@pytest.fixture(scope="module")
def pipeline() -> MotionPipeline:
    p = MotionPipeline.random(kind="momask", size="tiny", seed=0)
    with torch.no_grad():  # make the text condition matter (random init leaves it ~ 0.02 * N(0, 1))
        p.base.cond_emb.weight.mul_(100.0)
    return p


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("hml"))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_esd_cond_emb_scope_trains_only_cond_emb_and_reduces_its_loss(pipeline) -> None:
    model = copy_pipeline(pipeline)
    before = _state(model.base)
    params = ESDParams.from_dict(
        {"steps": 30, "lr": 3e-3, "pool_size": 8, "timesteps": 2, "eval_every": 10, "max_retain_drift": None}
    )
    result = apply_esd(model, get_concept("violence"), params)
    after = model.base.state_dict()
    changed = sorted(k for k, v in before.items() if not torch.equal(v, after[k]))
    assert changed == ["cond_emb.bias", "cond_emb.weight"]
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, model.residual.state_dict()[k]) for k, v in _state(pipeline.residual).items())


def test_esd_early_stopping_keeps_the_last_good_weights(pipeline, data) -> None:
    model = copy_pipeline(pipeline)
    before = _state(model.base)
    params = ESDParams.from_dict(
        {
            "steps": 20,
            "lr": 1e-2,
            "scope": "full",
            "x_source": "data",
            "eval_every": 5,
            "max_retain_drift": 1e-12,
        }
    )
    result = apply_esd(model, get_concept("violence"), params, data_dir=data)
    assert result["early_stopped_at"] == 5
    assert all(torch.equal(v, model.base.state_dict()[k]) for k, v in before.items())


def test_ft_trains_transformers_on_the_retain_set_only(pipeline, data) -> None:
    model = copy_pipeline(pipeline)
    vq, base = _state(model.vq), _state(model.base)
    params = FTParams.from_dict({"epochs": 2, "batch_size": 4, "eval_every": 2, "lr": 1e-3})
    result = apply_ft(model, get_concept("violence"), params, data_dir=data)
    assert result["forget_items_dropped"] == 8 and result["train_items"] == 10
    for name in ("base", "residual"):
        record = result["models"][name]
        assert (
            record["history"][0]["step"] == 0 and record["best_val_loss"] <= record["history"][0]["val_loss"]
        )
    assert all(torch.equal(v, model.vq.state_dict()[k]) for k, v in vq.items())
    assert any(not torch.equal(v, model.base.state_dict()[k]) for k, v in base.items())
    with pytest.raises(ValueError, match="unknown ft parameters"):
        FTParams.from_dict({"epoch": 1})
