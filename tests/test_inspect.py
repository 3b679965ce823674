"""`hmu inspect PATH` on the official-layout test folders (MoMask, BAMM's repository layout, t2mgpt BAMM, ambiguous
and damaged folders) and on a native checkpoint."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from hmu.cli import main as hmu_main
from models.bamm import BAMMTransformer
from models.io.inspect import format_report, inspect_folder
from models.io.official import save_official_layout
from models.pipelines import BAMMPipeline
from tests.test_official_layouts import bamm_repo


@pytest.fixture(autouse=True)
def _no_clip(monkeypatch):
    monkeypatch.delenv("HMU_CLIP_PATH", raising=False)


def _roles(report) -> dict[str, str]:
    return {run["run"]: run["role"] for run in report["runs"]}


def test_momask_layout(tmp_path, tiny_momask, capsys):
    save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    report = inspect_folder(tmp_path / "checkpoints")
    assert report["format"] == "official" and report["loads"] and report["kind"] == "momask"
    assert _roles(report) == {"t2m/rvq": "rvq-vae", "t2m/t2m_momask": "base transformer",
                              "t2m/tres_model": "residual transformer", "t2m/length_estimator": "length estimator"}
    base = next(r for r in report["runs"] if r["run"] == "t2m/t2m_momask")
    assert [f["file"] for f in base["files"]] == ["latest.tar"] and base["files"][0]["epoch"] == 0
    assert base["files"][0]["bytes"] == (tmp_path / "checkpoints/t2m/t2m_momask/model/latest.tar").stat().st_size
    assert base["options"]["n_layers"] == 1 and base["options"]["vq_name"] == "rvq"
    assert report["length_mode"] == "estimator" and report["num_quantizers"] == 3 and report["nb_code"] == 64
    assert any("CLIP" in m and "--clip-path" in m for m in report["missing"])
    assert hmu_main(["inspect", str(tmp_path / "checkpoints")]) == 0
    out = capsys.readouterr().out
    assert "loads: yes: momask (trans official)" in out and "t2m/t2m_momask: base transformer" in out
    assert "missing: CLIP ViT-B/32" in out


def test_bamm_repository_layout(tmp_path, tiny_bamm):
    repo = bamm_repo(tiny_bamm, tmp_path / "BAMM")
    report = inspect_folder(repo, clip_path=str(tmp_path))
    assert report["loads"] and report["kind"] == "bamm" and report["missing"] == []
    assert _roles(report)["log/vq/t2m/rvq"] == "rvq-vae"
    assert _roles(report)["log/t2m/t2m/2024_GPT_officialTrans"] == "bamm base transformer"
    assert report["chosen"]["vq"] == str(repo / "log/vq/t2m/rvq")
    assert report["chosen"]["residual"] == str(repo / "checkpoints/t2m/tres_model")
    end_token = inspect_folder(repo, clip_path=str(tmp_path), length_mode="end_token")
    assert end_token["length_mode"] == "end_token" and "length_estimator" not in end_token["chosen"]


def test_t2mgpt_bamm(tmp_path, tiny_bamm):
    torch.manual_seed(2)
    base = BAMMTransformer(replace(tiny_bamm.base.cfg, trans="t2mgpt"))
    parts = {name: getattr(tiny_bamm, name) for name in ("text_encoder", "vq", "residual", "mean", "std")}
    pipeline = BAMMPipeline(base=base, length_estimator=None, **parts)
    save_official_layout(pipeline.checkpoint(), tmp_path / "checkpoints")
    report = inspect_folder(tmp_path / "checkpoints")
    assert report["loads"] and report["trans"] == "t2mgpt" and report["length_mode"] == "end_token"
    assert "t2m/length_estimator" not in _roles(report)
    assert any(m.startswith("length estimator") and "end token" in m for m in report["missing"])
    assert "bamm (trans t2mgpt)" in format_report(report)


def test_ambiguous_and_damaged_folders(tmp_path, tiny_momask, capsys):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    (folder / "broken" / "model").mkdir(parents=True)
    (folder / "broken" / "opt.txt").write_text("not an option file\n")
    report = inspect_folder(folder)
    broken = next(r for r in report["runs"] if r["run"] == "broken")
    assert broken["role"] == "unknown" and "key: value" in broken["opt_error"]
    assert report["loads"]
    shutil.copytree(folder / "tres_model", folder / "tres_second")
    report = inspect_folder(folder)
    assert not report["loads"] and "tres_model" in report["error"] and "tres_second" in report["error"]
    assert hmu_main(["inspect", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "loads: no: several residual transformer" in out and "unreadable opt.txt" in out
    assert hmu_main(["inspect", str(folder), "--res-name", "tres_second", "--json"]) == 0
    assert '"residual": "' + str(folder / "tres_second") in capsys.readouterr().out
    (folder / "rvq" / "meta" / "std.npy").unlink()
    report = inspect_folder(folder, res_name="tres_model")
    assert not report["loads"] and "meta" in report["error"]


def test_native_checkpoint(tmp_path, tiny_momask):
    folder = tiny_momask.save_pretrained(tmp_path / "native")
    report = inspect_folder(folder)
    assert report["format"] == "native" and report["kind"] == "momask" and report["loads"]
    assert report["files"]["base.safetensors"] == (folder / "base.safetensors").stat().st_size
    (folder / "residual.safetensors").unlink()
    report = inspect_folder(folder)
    assert not report["loads"] and report["missing"] == ["residual.safetensors"]
