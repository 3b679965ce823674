"""Official checkpoint folders as their users keep them: BAMM's own layout (log/t2m, log/vq/t2m, checkpoints/t2m),
explicit epoch / residual / length-mode choices, errors that name the candidates, and sibling runs that are
never parsed. Every folder is written with random weights by `save_official_layout` and loaded strictly."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hmu.cli import main as hmu_main
from models.io.official import find_runs, save_official_layout
from models.io.opt import parse_opt_text, read_opt
from models.momask import ResidualTransformer
from models.pipelines import MotionPipeline


def bamm_repo(pipeline: MotionPipeline, repo: Path) -> Path:
    """The layout of the BAMM repository after download_models.sh + download_models_BAMM.sh (bamm-differences §1):
    log/t2m/t2m/<run>, log/vq/t2m/<rvq> and MoMask's checkpoints/t2m/{<rvq>, tres*, length_estimator}."""
    folder = save_official_layout(pipeline.checkpoint(), repo / "staging", base_name="2024_GPT_officialTrans")
    (repo / "log" / "t2m" / "t2m").mkdir(parents=True)
    (repo / "log" / "vq" / "t2m").mkdir(parents=True)
    shutil.move(folder / "2024_GPT_officialTrans", repo / "log" / "t2m" / "t2m" / "2024_GPT_officialTrans")
    shutil.copytree(folder / "rvq", repo / "log" / "vq" / "t2m" / "rvq")
    shutil.move(folder, repo / "checkpoints" / "t2m")
    shutil.rmtree(repo / "staging")
    return repo


def _same_generation(a: MotionPipeline, b: MotionPipeline) -> None:
    x = a.generate(["a person hops"], lengths=[32], seed=5)[0]
    y = b.generate(["a person hops"], lengths=[32], seed=5)[0]
    assert x.length == y.length == 32
    torch.testing.assert_close(torch.from_numpy(x.features), torch.from_numpy(y.features), rtol=0, atol=0)


@pytest.mark.parametrize("where", [".", "log/t2m", "log/t2m/t2m", "log/t2m/t2m/2024_GPT_officialTrans"])
def test_bamm_repository_layout_loads_without_extra_arguments(tmp_path, tiny_bamm, where):
    repo = bamm_repo(tiny_bamm, tmp_path / "BAMM")
    loaded = MotionPipeline.from_pretrained(repo / where, text_encoder=tiny_bamm.text_encoder)
    runs = loaded.manifest["runs"]
    assert loaded.kind == "bamm"
    assert Path(runs["vq"]).parent == repo / "log" / "vq" / "t2m"           # BAMM's own RVQ folder is searched
    assert Path(runs["residual"]) == repo / "checkpoints" / "t2m" / "tres_model"
    assert Path(runs["length_estimator"]).parent == repo / "checkpoints" / "t2m"
    _same_generation(tiny_bamm, loaded)


def test_bamm_repository_with_momask_base_needs_a_choice(tmp_path, tiny_bamm, tiny_momask):
    """MoMask's download holds its base transformer too: from the repository folder both bases are candidates."""
    repo = bamm_repo(tiny_bamm, tmp_path / "BAMM")
    momask = save_official_layout(tiny_momask.checkpoint(), tmp_path / "momask", base_name="t2m_nlayer8")
    shutil.move(momask / "t2m_nlayer8", repo / "checkpoints" / "t2m" / "t2m_nlayer8")
    with pytest.raises(ValueError) as error:
        MotionPipeline.from_pretrained(repo, text_encoder=tiny_bamm.text_encoder)
    assert "checkpoints/t2m/t2m_nlayer8" in str(error.value)
    assert "log/t2m/t2m/2024_GPT_officialTrans" in str(error.value)
    for where, options in ((repo / "log" / "t2m", {}), (repo, {"base_name": "2024_GPT_officialTrans"})):
        loaded = MotionPipeline.from_pretrained(where, text_encoder=tiny_bamm.text_encoder, **options)
        assert loaded.kind == "bamm"


def test_which_epoch_chooses_the_base_file(tmp_path, tiny_momask):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    model_dir = folder / "t2m_momask" / "model"
    state = torch.load(model_dir / "latest.tar", weights_only=True)
    state["t2m_transformer"] = {k: v + 1 if k == "cond_emb.bias" else v for k, v in state["t2m_transformer"].items()}
    torch.save(state, model_dir / "net_best_fid.tar")
    latest = MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder)
    best = MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder, which_epoch="net_best_fid")
    assert torch.equal(latest.base.cond_emb.bias, tiny_momask.base.cond_emb.bias)
    assert torch.equal(best.base.cond_emb.bias, tiny_momask.base.cond_emb.bias + 1)
    assert best.manifest["runs"]["base_file"].endswith("net_best_fid.tar")
    with pytest.raises(FileNotFoundError, match=r"latest.tar.*net_best_fid.tar"):
        MotionPipeline.from_pretrained(folder / "t2m_momask", text_encoder=tiny_momask.text_encoder,
                                       which_epoch="ep0100")


def test_several_residual_runs_need_a_choice_and_the_error_names_them(tmp_path, tiny_momask):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    shutil.copytree(folder / "tres_model", folder / "tres_other")
    with pytest.raises(ValueError) as error:
        MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder)
    assert "tres_model" in str(error.value) and "tres_other" in str(error.value) and "res_name" in str(error.value)
    chosen = MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder, res_name="tres_other")
    assert Path(chosen.manifest["runs"]["residual"]).name == "tres_other"


def test_several_base_runs_need_a_choice_and_the_error_names_them(tmp_path, tiny_momask, tiny_bamm):
    save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    folder = save_official_layout(tiny_bamm.checkpoint(), tmp_path / "checkpoints", vq_name="rvq_b", res_name="tres_b")
    with pytest.raises(ValueError) as error:
        MotionPipeline.from_pretrained(tmp_path / "checkpoints", text_encoder=tiny_momask.text_encoder)
    assert "t2m_momask" in str(error.value) and "t2m_bamm" in str(error.value) and "base_name" in str(error.value)
    loaded = MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder, base_name="t2m_bamm",
                                            res_name="tres_b")
    assert loaded.kind == "bamm"


def test_residual_trained_on_another_vq_is_refused(tmp_path, tiny_momask):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    opt = folder / "tres_model" / "opt.txt"
    opt.write_text(opt.read_text().replace("vq_name: rvq", "vq_name: rvq_other"))
    with pytest.raises(ValueError, match=r"vq_name 'rvq_other'.*'rvq'"):
        MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder)


def test_length_modes(tmp_path, tiny_momask, tiny_bamm):
    repo = bamm_repo(tiny_bamm, tmp_path / "BAMM")
    end_token = MotionPipeline.from_pretrained(repo, text_encoder=tiny_bamm.text_encoder, length_mode="end_token")
    assert end_token.length_estimator is None and end_token.manifest["length_mode"] == "end_token"
    motion = end_token.generate(["a person bows"], seed=1)[0]                     # length from the end token
    assert 4 <= motion.length <= 196 and motion.length % 4 == 0
    estimator = MotionPipeline.from_pretrained(repo, text_encoder=tiny_bamm.text_encoder, length_mode="estimator")
    assert estimator.length_estimator is not None and estimator.manifest["length_mode"] == "estimator"
    shutil.rmtree(repo / "checkpoints" / "t2m" / "length_estimator")
    with pytest.raises(FileNotFoundError, match="length estimator"):
        MotionPipeline.from_pretrained(repo, text_encoder=tiny_bamm.text_encoder, length_mode="estimator")
    default = MotionPipeline.from_pretrained(repo, text_encoder=tiny_bamm.text_encoder)
    assert default.manifest["length_mode"] == "end_token"
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "momask")
    with pytest.raises(ValueError, match="end_token"):
        MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder, length_mode="end_token")
    with pytest.raises(ValueError, match="length_mode"):
        find_runs(folder, length_mode="guess")


def test_sibling_runs_are_not_parsed(tmp_path, tiny_momask):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    for name, files in (("Comp_v6_KLD005", ("meta", "model")), ("text_mot_match", ("model",)),
                        ("old_experiment", ("model",))):
        for sub in files:
            (folder / name / sub).mkdir(parents=True)
        (folder / name / "opt.txt").write_text("this is not an option file\n")
    (folder / "text_mot_match" / "model" / "finest.tar").write_bytes(b"")
    loaded = MotionPipeline.from_pretrained(tmp_path / "checkpoints", text_encoder=tiny_momask.text_encoder)
    assert Path(loaded.manifest["runs"]["base"]).name == "t2m_momask"
    # the chosen run's own opt.txt still is read, and a malformed one is reported
    (folder / "t2m_momask" / "opt.txt").write_text("broken\n")
    with pytest.raises(ValueError, match="key: value"):
        MotionPipeline.from_pretrained(tmp_path / "checkpoints", text_encoder=tiny_momask.text_encoder)


def test_opt_values_keep_their_types():
    opt = parse_opt_text("a: -1\nb: 3\nc: -0.5\nd: True\ne: None\nf: [50000]\ng: +2\nh: 1e-4\n")
    assert opt == {"a": -1, "b": 3, "c": -0.5, "d": True, "e": "None", "f": "[50000]", "g": 2, "h": "1e-4"}


def test_cli_passes_the_official_choices(tmp_path, tiny_momask, capsys):
    folder = save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    shutil.copytree(folder / "tres_model", folder / "tres_other")
    out = tmp_path / "m.npy"
    args = ["convert", str(folder), "--out", str(tmp_path / "native"), "--clip-path", str(tmp_path / "no_clip")]
    assert hmu_main(args) == 2
    assert "tres_other" in capsys.readouterr().err
    assert hmu_main([*args, "--res-name", "tres_other", "--which-epoch", "nope"]) == 2
    assert "nope.tar" in capsys.readouterr().err
    assert hmu_main([*args, "--res-name", "tres_other"]) == 2   # resolution passes; the CLIP folder is missing
    assert "no_clip" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("share_weight", [True, False])
def test_momask_residual_variants_load_strictly(tmp_path, tiny_momask, share_weight):
    """Both residual variants (shared and separate per-layer projections, `share_weight` in its opt.txt)."""
    torch.manual_seed(3)
    residual = ResidualTransformer(replace(tiny_momask.residual.cfg, share_weight=share_weight))
    pipeline = replace_residual(tiny_momask, residual)
    folder = save_official_layout(pipeline.checkpoint(), tmp_path / "checkpoints")
    assert read_opt(folder / "tres_model")["share_weight"] is share_weight
    loaded = MotionPipeline.from_pretrained(folder, text_encoder=tiny_momask.text_encoder)
    assert loaded.residual.cfg.share_weight is share_weight
    assert loaded.residual.state_dict().keys() == residual.state_dict().keys()
    _same_generation(pipeline, loaded)


def replace_residual(pipeline: MotionPipeline, residual: ResidualTransformer) -> MotionPipeline:
    parts = {name: getattr(pipeline, name) for name in ("text_encoder", "vq", "base", "length_estimator", "mean",
                                                         "std")}
    return type(pipeline)(residual=residual, **parts)
