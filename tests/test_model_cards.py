"""Model cards (training bundles, unlearned models, the native default) render from their package templates
byte for byte as the former code did (expected files in tests/expected/ were written before the move)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

from models.common.markdown import render
from models.io.native import default_card
from models.train.bundle import model_card
from models.unlearn.run import _card

EXPECTED = Path(__file__).resolve().parent / "expected"


def expected(name: str) -> str:
    return (EXPECTED / name).read_text(encoding="utf-8")


def stage_inputs():
    def res(it, best, stopped, metrics, info):
        return NS(fit=NS(iteration=it, best_iteration=best, stopped_early=stopped), metrics=metrics, info=info)

    results = {
        "vq": res(100, 90, False, {"recon": 0.012345, "fid": 1.5}, {"clips": 10, "frames": 2000, "x": 0.5}),
        "mask": res(50, 40, True, {"loss": 2.25}, {"clips": 10}),
        "res": res(60, 60, False, {"loss": 1.125}, {}),
        "length": res(10, 5, False, {"acc": 0.5}, {"n": 3}),
        "bamm": res(70, 33, True, {"loss": 3.0, "acc": 0.25}, {"clips": 7}),
        "evaluator": res(20, 19, False, {"R@1": 0.75}, {"pairs": 99}),
    }
    configs = {s: NS(iters=100 + i, size="small" if i % 2 else "base", batch_size=32 + i,
                     text_encoder={"kind": "minilm", "dim": 384})
               for i, s in enumerate(results)}
    seconds = {s: 12.5 * (i + 1) for i, s in enumerate(results)}
    return results, configs, seconds


def test_training_model_cards(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    results, configs, seconds = stage_inputs()
    card = model_card("momask-small: momask text-to-motion model", ["vq", "mask", "res", "length"], results,
                      configs, Path("data/default"), "hmu train default --out x", seconds)
    assert card == expected("model_card_momask.md")
    card = model_card("evaluator: ours", ["evaluator"], results, configs, Path("/d"), "cmd 'q'", seconds)
    assert card == expected("model_card_evaluator.md")


def test_unlearning_card():
    manifest = {
        "method": "lcr",
        "concept": {"name": "violence", "sub_concepts": {"kick": ["kick", "kicks"], "punch": ["punch"]}},
        "parent": {"sha256": "ab" * 32},
        "software_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
    }
    assert _card("# parent\n\ntext\n\n", manifest) == expected("unlearn_card.md")


def test_default_native_card():
    pipeline = NS(kind="momask", dataset="t2m", text_encoder=NS(spec=lambda: {"kind": "minilm", "dim": 384}))
    assert default_card(pipeline) == expected("default_card.md")


def test_templates_need_every_placeholder(tmp_path):
    (tmp_path / "t.md").write_text("${given} ${missing}")
    with pytest.raises(KeyError, match="missing"):
        render(str(tmp_path / "anchor.py"), "t.md", given=1)
