"""The shipped default bundle (weights/) loads offline and generates in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.pipelines import MotionPipeline, default_model_dir

WEIGHTS_MB_LIMIT = 30


@pytest.mark.parametrize("name, kind", [("momask-small", "momask"), ("bamm-small", "bamm")])
def test_default_models_load_and_generate(name: str, kind: str) -> None:
    pipeline = MotionPipeline.from_pretrained(default_model_dir(name))
    assert pipeline.kind == kind and pipeline.text_encoder.spec() == {"type": "minilm"}
    first = pipeline.generate(["a person walks forward"], lengths=[60], seed=3)[0]
    again = pipeline.generate(["a person walks forward"], lengths=[60], seed=3)[0]
    assert first.joints.shape == (60, 22, 3) and np.isfinite(first.joints).all()
    np.testing.assert_array_equal(first.joints, again.joints)
    # a trained model walks: the root travels, the feet stay near the floor, the head stays above the pelvis
    travel = np.linalg.norm(first.joints[-1, 0, [0, 2]] - first.joints[0, 0, [0, 2]])
    assert travel > 0.3, f"root moved only {travel:.2f} m in 3 s of walking"
    assert first.joints[:, [10, 11], 1].min() > -0.1
    assert (first.joints[:, 15, 1] > first.joints[:, 0, 1]).all()


def test_bundle_is_small_and_carries_its_licence() -> None:
    root = default_model_dir("momask-small").parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < WEIGHTS_MB_LIMIT * 1e6, f"weights/ holds {total / 1e6:.1f} MB"
    for name in ("momask-small", "bamm-small", "evaluator"):
        card = (root / name / "MODEL_CARD.md").read_text()
        assert "CC BY-NC 4.0" in card and "non-commercial" in card.lower()
    config = json.loads((root / "momask-small" / "config.json").read_text())
    assert config["format"] == "hmu-native" and config["kind"] == "momask"
