"""The safety guard that travels with a checkpoint: policy, resampling, refusal, attachment by unlearning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmu.cli import main as hmu_main
from models.evaluator.safety_guard import GUARD_DIR, RESAMPLE_STRIDE, GuardPolicy, SafetyGuard
from models.evaluator.violence_classifier import ViolenceClassifier
from models.pipelines import MotionPipeline, default_model_dir
from models.unlearn.config import UnlearnConfig
from models.unlearn.run import run_unlearning

TEXTS = ["a person kicks", "a person walks", "someone waves"]


class ScriptedClassifier:
    """Flags by a script: call k returns script[k] (a list of bools per motion)."""

    def __init__(self, script: list[list[bool]]):
        self.script, self.calls = list(script), []

    def predict(self, motions):
        self.calls.append(len(motions))
        return np.array(self.script.pop(0))


def test_flagged_motions_are_resampled_with_new_seeds_then_refused(tiny_momask) -> None:
    clf = ScriptedClassifier([[True, False, True], [False, True]])
    guard = SafetyGuard(clf, GuardPolicy(max_resamples=1))  # type: ignore[arg-type]
    out = guard.generate(tiny_momask, TEXTS, [40, 40, 40], [5, 6, 7])
    assert clf.calls == [3, 2]
    assert out.counts.to_dict() == {"checks": 5, "resamples": 2, "refusals": 1}
    assert out.motions[0].seed == 5 + RESAMPLE_STRIDE and out.motions[1].seed == 6 and out.motions[2] is None
    plain = tiny_momask.generate(TEXTS[1:2], [40], seeds=[6])[0]
    assert np.allclose(out.motions[1].features, plain.features, atol=1e-5)  # unflagged rows: the model's own


def test_nothing_flagged_costs_one_check_per_motion(tiny_momask) -> None:
    guard = SafetyGuard(ScriptedClassifier([[False] * 3]), GuardPolicy(max_resamples=3))  # type: ignore[arg-type]
    out = guard.generate(tiny_momask, TEXTS, [40] * 3, [0, 1, 2])
    assert out.counts.to_dict() == {"checks": 3, "resamples": 0, "refusals": 0}
    assert all(m is not None for m in out.motions)


def test_attach_and_load_with_the_shipped_classifier(tmp_path, tiny_model_dir) -> None:
    assert SafetyGuard.from_model_dir(tiny_model_dir) is None
    folder = SafetyGuard.attach(tmp_path, default_model_dir("violence-classifier"), GuardPolicy(max_resamples=2))
    assert folder == tmp_path / GUARD_DIR and json.loads((folder / "policy.json").read_text())["max_resamples"] == 2
    guard = SafetyGuard.from_model_dir(tmp_path)
    assert isinstance(guard.classifier, ViolenceClassifier) and guard.policy.max_resamples == 2
    with pytest.raises(ValueError, match="max_resamples"):
        GuardPolicy(max_resamples=11)
    with pytest.raises(FileNotFoundError):
        SafetyGuard.attach(tmp_path / "x", tmp_path / "no-classifier")


def test_unlearning_attaches_the_guard_for_violence_only(tiny_model_dir, tmp_path) -> None:
    run = {"model": tiny_model_dir, "method": "uce"}
    manifest = run_unlearning(UnlearnConfig(**run, out_dir=tmp_path / "a", concept="violence"))
    assert manifest["safety_guard"]["policy"]["max_resamples"] == 3
    assert SafetyGuard.from_model_dir(tmp_path / "a") is not None
    manifest = run_unlearning(UnlearnConfig(**run, out_dir=tmp_path / "b", keywords=["dance"]))
    assert manifest["safety_guard"] is None and not (tmp_path / "b" / GUARD_DIR).exists()
    run_unlearning(UnlearnConfig(**run, out_dir=tmp_path / "c", concept="violence", guard=False))
    assert not (tmp_path / "c" / GUARD_DIR).exists()
    with pytest.raises(ValueError, match="detects violence"):
        UnlearnConfig(**run, out_dir=tmp_path / "d", keywords=["dance"], guard=True).wants_guard()


def test_hmu_generate_refuses_when_the_guard_flags_everything(tiny_model_dir, tmp_path, capsys) -> None:
    model = tmp_path / "guarded"
    MotionPipeline.from_pretrained(tiny_model_dir).save_pretrained(model)
    folder = SafetyGuard.attach(model, default_model_dir("violence-classifier"), GuardPolicy(max_resamples=1))
    config = json.loads((folder / "config.json").read_text())
    config["config"]["threshold"] = 0.0  # every motion is flagged
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "m.npy"
    code = hmu_main(["generate", "--model", str(model), "--text", "a person kicks", "--length", "40",
                     "--seed", "1", "--out", str(out)])
    assert code == 3 and not out.exists() and "unsafe_output" in capsys.readouterr().err
