"""run_unlearning / `hmu unlearn`: manifests, round trips, overlays, parameter parsing."""

from __future__ import annotations

import json

import pytest
import torch

from hmu.cli import main as hmu_main
from models.io.native import sha256_file
from models.pipelines import MotionPipeline
from models.unlearn.cli import parse_params
from models.unlearn.config import METHOD_NAMES, UnlearnConfig
from models.unlearn.methods import METHODS
from models.unlearn.run import checkpoint_files, files_digest, restore_overlay, run_unlearning
from tests.unlearn_helpers import make_dataset


def unlearn(model, method, concept, params, out_dir, progress=None, **options):
    """run_unlearning with the positional order of the former signature (model, method, concept, params, out)."""
    config = UnlearnConfig(model=model, method=method, concept=concept, params=params, out_dir=out_dir, **options)
    return run_unlearning(config, progress)


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("parent") / "model"
    MotionPipeline.random(kind="momask", size="tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("hml"))


def _states(p: MotionPipeline) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v for n, m in p.modules().items() for k, v in m.state_dict().items()}


def test_uce_checkpoint_manifest_and_round_trip(parent_dir, tmp_path) -> None:
    messages = []
    manifest = unlearn(
        parent_dir,
        "uce",
        "violence",
        {"preserve_scale": 0.25},
        tmp_path / "uce",
        progress=lambda f, m: messages.append(f),
    )
    assert messages[0] == 0.0 and messages[-1] == 1.0 and messages == sorted(messages)
    assert manifest["method"] == "uce" and manifest["params"]["preserve_scale"] == 0.25
    assert manifest["params"]["lamb"] == 0.1 and manifest["params"]["bias_in_targets"] is False
    assert manifest["parent"]["sha256"] == files_digest(checkpoint_files(parent_dir))
    assert manifest["concept"]["sub_concepts"]["kick"] == ["kick"]
    assert manifest["software_version"] and manifest["created"]
    assert manifest["files"] == checkpoint_files(tmp_path / "uce")
    loaded = MotionPipeline.from_pretrained(tmp_path / "uce")
    assert loaded.manifest["method"] == "uce"
    parent = MotionPipeline.from_pretrained(parent_dir)
    changed = [k for k, v in _states(parent).items() if not torch.equal(v, _states(loaded)[k])]
    assert changed == ["base.cond_emb.weight", "residual.cond_emb.weight"]
    motion = loaded.generate(["a person kicks"], lengths=[40], seed=1, timesteps=2)[0]
    assert motion.joints.shape == (40, 22, 3)
    # A second unlearning step records the lineage.
    again = unlearn(
        tmp_path / "uce", "rece", {"name": "k", "keywords": ["kick"]}, {}, tmp_path / "rece"
    )
    assert [x["method"] for x in again["lineage"]] == ["uce", "rece"]
    assert again["parent"]["method"] == "uce"


def test_lcr_public_bundle_excludes_overlay_and_restores_bit_exactly(parent_dir, data, tmp_path) -> None:
    out = tmp_path / "lcr"
    manifest = unlearn(
        parent_dir, "lcr", "violence", {"k": 4, "cache_dir": str(tmp_path / "c")}, out, data_dir=data
    )
    assert manifest["result"]["selected_codes"]["0"] and manifest["data"]["dir"] == str(data.resolve())
    assert (out / "private" / "lcr_overlay.safetensors").is_file()
    assert not any("private" in name or "overlay" in name for name in manifest["files"])
    parent = MotionPipeline.from_pretrained(parent_dir)
    public = MotionPipeline.from_pretrained(out)
    codes = manifest["result"]["selected_codes"]["0"]
    original = parent.vq.quantizer.layers[0].codebook[codes]
    assert not (public.vq.quantizer.layers[0].codebook[codes] == original).all(dim=1).any()
    restored = restore_overlay(out)
    for key, value in _states(parent).items():
        assert torch.equal(value, _states(restored)[key]), key
    # An overlay applied to a different public checkpoint is refused.
    other = tmp_path / "other"
    unlearn(parent_dir, "uce", "violence", {}, other)
    with pytest.raises(ValueError, match="another checkpoint"):
        restore_overlay(other, out / "private" / "lcr_overlay.safetensors")


def test_errors_name_the_problem(parent_dir, data, tmp_path, monkeypatch) -> None:
    # no dataset to fall back on, whatever this checkout holds (data/default) or the environment says
    monkeypatch.delenv("HMU_UNLEARN_DATA_DIR", raising=False)
    monkeypatch.setattr("models.unlearn.config.DEFAULT_DATA_DIR", tmp_path / "no-data")
    with pytest.raises(ValueError, match=r"unknown lcr parameters \['kk'\]"):
        unlearn(parent_dir, "lcr", "violence", {"kk": 3}, tmp_path / "a", data_dir=data)
    with pytest.raises(ValueError, match="unknown unlearning method"):
        unlearn(parent_dir, "magic", "violence", {}, tmp_path / "a")
    with pytest.raises(ValueError, match="needs a HumanML3D-format dataset"):
        unlearn(parent_dir, "lcr", "violence", {}, tmp_path / "a")
    with pytest.raises(FileNotFoundError):
        unlearn(tmp_path / "missing", "uce", "violence", {}, tmp_path / "a")
    with pytest.raises(ValueError, match="already holds a model"):
        unlearn(parent_dir, "uce", "violence", {}, parent_dir)
    with pytest.raises(ValueError, match="unknown concept"):
        unlearn(parent_dir, "uce", "no-such", {}, tmp_path / "a")


def test_in_memory_pipeline_is_not_modified(tmp_path) -> None:
    pipeline = MotionPipeline.random(kind="momask", size="tiny", seed=4)
    before = {k: v.clone() for k, v in _states(pipeline).items()}
    manifest = unlearn(pipeline, "rece", None, {"epochs": 1}, tmp_path / "m", keywords=["kick"])
    assert manifest["parent"]["digest_of"] == "tensors" and manifest["concept"]["name"] == "custom"
    assert all(torch.equal(v, _states(pipeline)[k]) for k, v in before.items())


def test_cli_param_parsing() -> None:
    params = parse_params(
        [
            "k=16",
            "alpha=0.5",
            "orth=true",
            "layers=[0,1]",
            "splits=train,val",
            "guide=a person stands",
            'k_per_sub={"kick": 16}',
            "cache_dir=null",
        ]
    )
    assert params == {
        "k": 16,
        "alpha": 0.5,
        "orth": True,
        "layers": [0, 1],
        "splits": ["train", "val"],
        "guide": "a person stands",
        "k_per_sub": {"kick": 16},
        "cache_dir": None,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_params(["k"])


def test_hmu_unlearn_cli_end_to_end(parent_dir, data, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    code = hmu_main(
        [
            "unlearn",
            "--model",
            str(parent_dir),
            "--method",
            "lcr",
            "--concept",
            "violence",
            "--param",
            "k=3",
            "--param",
            f"cache_dir={tmp_path / 'c'}",
            "--data",
            str(data),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    summary, verification = map(json.loads, capsys.readouterr().out.strip().splitlines()[-2:])
    assert summary["method"] == "lcr" and summary["selected_codes"]["0"]
    assert isinstance(verification["verified"], bool) and 0.0 <= verification["safe_unchanged"] <= 1.0
    assert json.loads((out / "manifest.json").read_text())["safety_report"]["verified"] is verification["verified"]
    restored = tmp_path / "restored"
    assert hmu_main(["unlearn-restore", "--model", str(out), "--out", str(restored)]) == 0
    assert sha256_file(restored / "vq.safetensors") == sha256_file(parent_dir / "vq.safetensors")
    assert (
        hmu_main(
            [
                "unlearn",
                "--model",
                str(parent_dir),
                "--method",
                "uce",
                "--param",
                "lamb=-1",
                "--out",
                str(tmp_path / "bad"),
                "--quiet",
            ]
        )
        == 2
    )
    assert (
        hmu_main(["forget-split", "--data", str(data), "--splits", "train", "--out", str(tmp_path / "kw")])
        == 0
    )
    assert (tmp_path / "kw" / "train-w-violence.txt").read_text().split()[0] == "000000"


def test_registry_matches_the_torch_free_method_names() -> None:
    assert tuple(METHODS) == METHOD_NAMES
    assert all(method.name == name for name, method in METHODS.items())
