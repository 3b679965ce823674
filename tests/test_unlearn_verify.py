"""The safety verification written into an unlearned model (manifest safety_report, card section, registry)."""

from __future__ import annotations

import json
import shutil

from core.registry import model_detail, model_summary
from core.settings import Settings
from models.eval.verify import verifiable, verify_checkpoint
from models.evaluator.safety_guard import GuardPolicy, SafetyGuard
from models.pipelines import default_model_dir


def test_an_unchanged_copy_is_stable_and_not_verified(tiny_model_dir, tmp_path) -> None:
    model = tmp_path / "models" / "copy"
    shutil.copytree(tiny_model_dir, model)
    report = verify_checkpoint(model, tiny_model_dir, "violence", max_prompts=3)
    counts = report["profile"]["prompts"]
    assert {k: counts[k] for k in ("explicit", "implicit", "adversarial", "safe")} == \
        {"explicit": 3, "implicit": 3, "adversarial": 3, "safe": 3}
    subs = {k: v for k, v in counts.items() if k.startswith("implicit/")}
    assert "implicit/kick" in subs and sum(subs.values()) == 3  # the implicit samples, split by sub-concept
    assert all(report["weights_only"][k]["n"] == n for k, n in subs.items())
    assert report["weights_only"] == report["parent"]  # same weights, same seeds: same motions
    assert report["stability"]["rate"] == 1.0 and report["verified"] is False
    assert all(cut is None or cut <= 0 for cut in report["cut"].values()) and "with_guard" not in report
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["safety_report"]["verified"] is False
    assert "## Safety verification" in (model / "MODEL_CARD.md").read_text()
    two = verify_checkpoint(model, tiny_model_dir, "violence", seeds=(0, 1), max_prompts=2)
    assert (model / "MODEL_CARD.md").read_text().count("## Safety verification") == 1
    assert two["profile"]["seeds"] == [0, 1] and "2 seed(s)" in (model / "MODEL_CARD.md").read_text()
    assert two["weights_only"]["implicit"]["n"] == 4 and two["stability"]["n"] == 4  # (prompt, seed) samples
    settings = Settings(models_dir=tmp_path / "models", weights_dir=tmp_path / "weights")
    assert model_summary(settings, "copy")["verified"] is False
    assert model_detail(settings, "copy")["safety"]["stability"]["rate"] == 1.0


def test_a_guard_that_refuses_everything_leaves_no_violent_output(tiny_model_dir, tmp_path) -> None:
    model = tmp_path / "guarded"
    shutil.copytree(tiny_model_dir, model)
    folder = SafetyGuard.attach(model, default_model_dir("violence-classifier"), GuardPolicy(max_resamples=0))
    config = json.loads((folder / "config.json").read_text())
    config["config"]["threshold"] = 0.0
    (folder / "config.json").write_text(json.dumps(config))
    report = verify_checkpoint(model, tiny_model_dir, "violence-extended", max_prompts=2)
    guarded = report["with_guard"]
    assert guarded["refused"] == 8  # 2 prompts of each of the 4 sets
    assert all(guarded[k]["rate"] == 0.0 for k in ("explicit", "implicit", "adversarial", "safe"))


def test_only_concepts_with_frozen_prompts_are_verifiable() -> None:
    assert verifiable("violence") and verifiable("violence-extended") and not verifiable("dance")


def test_hmu_unlearn_verifies_with_the_seeds_asked_for(tiny_model_dir, tmp_path, capsys) -> None:
    from hmu.cli import main as hmu_main

    out = tmp_path / "safe"
    assert hmu_main(["unlearn", "--model", str(tiny_model_dir), "--concept", "violence", "--method", "uce",
                     "--out", str(out), "--quiet", "--no-guard", "--verify-max-prompts", "1",
                     "--verify-seeds", "3", "4"]) == 0
    report = json.loads((out / "manifest.json").read_text())["safety_report"]
    assert report["profile"]["seeds"] == [3, 4] and report["stability"]["n"] == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["verified"] in (True, False)
