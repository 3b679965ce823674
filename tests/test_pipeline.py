"""End-to-end generation with random-weight tiny pipelines; native and official checkpoint round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hmu.cli import main as hmu_main
from models.common.sampling_config import SamplingConfig
from models.io.official import save_official_layout
from models.pipelines import BAMMPipeline, MoMaskPipeline, MotionPipeline


@pytest.fixture(scope="module")
def momask() -> MotionPipeline:
    return MotionPipeline.random(kind="momask", size="tiny", seed=0)


@pytest.fixture(scope="module")
def bamm(momask: MotionPipeline) -> MotionPipeline:
    return MotionPipeline.random(kind="bamm", size="tiny", seed=1, text_encoder=momask.text_encoder)


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.length == y.length
        np.testing.assert_array_equal(x.joints, y.joints)
        np.testing.assert_array_equal(x.features, y.features)


def test_generate_shapes_lengths_and_finiteness(momask: MotionPipeline) -> None:
    motions = momask.generate(["a person walks forward", "someone jumps"], lengths=[50, 80], seed=3)
    # 50 frames -> 12 tokens -> 48 frames (floor to a multiple of 4, as the official scripts do)
    assert [m.length for m in motions] == [48, 80]
    for m in motions:
        assert m.joints.shape == (m.length, 22, 3) and m.joints.dtype == np.float32
        assert m.features.shape == (m.length, 263)
        assert np.isfinite(m.joints).all() and np.isfinite(m.features).all()


def test_generate_is_deterministic_by_seed(momask: MotionPipeline) -> None:
    a = momask.generate(["a person waves"], lengths=[40], seed=11, num_samples=2)
    b = momask.generate(["a person waves"], lengths=[40], seed=11, num_samples=2)
    c = momask.generate(["a person waves"], lengths=[40], seed=12, num_samples=2)
    _same(a, b)
    assert not np.array_equal(a[0].features, c[0].features)
    assert not np.array_equal(a[0].features, a[1].features), "two samples of one request must differ"


def test_row_results_do_not_depend_on_batch_neighbours(momask: MotionPipeline) -> None:
    alone = momask.generate(["a person runs"], lengths=[60], seeds=[5])
    batched = momask.generate(["someone sits down", "a person runs"], lengths=[120, 60], seeds=[9, 5])
    assert alone[0].length == batched[1].length
    np.testing.assert_allclose(alone[0].features, batched[1].features, atol=1e-4)


def test_estimated_lengths_are_multiples_of_four(momask: MotionPipeline) -> None:
    motions = momask.generate(["a person walks"] * 4, seed=0)
    for m in motions:
        assert m.length % 4 == 0 and 4 <= m.length <= 196


def test_bad_inputs_are_refused(momask: MotionPipeline) -> None:
    with pytest.raises(ValueError, match="length"):
        momask.generate(["a person walks"], lengths=[500])
    with pytest.raises(ValueError, match="non-empty"):
        momask.generate([""])
    with pytest.raises(ValueError, match="sampling"):
        momask.generate(["walk"], lengths=[40], bogus=1)


def test_bamm_generates_with_given_and_predicted_lengths(bamm: MotionPipeline) -> None:
    given = bamm.generate(["a person kicks"], lengths=[64], seed=2)
    assert given[0].length == 64 and given[0].joints.shape == (64, 22, 3)
    again = bamm.generate(["a person kicks"], lengths=[64], seed=2)
    _same(given, again)
    bamm_no_estimator = BAMMPipeline(
        text_encoder=bamm.text_encoder, vq=bamm.vq, base=bamm.base, residual=bamm.residual,
        length_estimator=None, mean=bamm.mean.numpy(), std=bamm.std.numpy(),
    )
    predicted = bamm_no_estimator.generate(["a person kicks"], seed=2)
    assert 4 <= predicted[0].length <= 196 and predicted[0].length % 4 == 0


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_native_round_trip_gives_identical_outputs(tmp_path, momask, bamm, kind) -> None:
    pipeline = momask if kind == "momask" else bamm
    pipeline.save_pretrained(tmp_path / "native")
    files = {p.name for p in (tmp_path / "native").iterdir()}
    assert {"config.json", "MODEL_CARD.md", "manifest.json", "vq.safetensors", "base.safetensors",
            "residual.safetensors", "stats.safetensors"} <= files
    loaded = MotionPipeline.from_pretrained(tmp_path / "native", text_encoder=pipeline.text_encoder)
    assert loaded.kind == kind
    _same(pipeline.generate(["a person jumps"], lengths=[48], seed=4),
          loaded.generate(["a person jumps"], lengths=[48], seed=4))


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_official_layout_to_native_round_trip(tmp_path, momask, bamm, kind) -> None:
    pipeline = momask if kind == "momask" else bamm
    root = tmp_path / "checkpoints"
    save_official_layout(pipeline.checkpoint(), root)
    official = MotionPipeline.from_pretrained(root, text_encoder=pipeline.text_encoder)
    assert official.kind == kind
    official.save_pretrained(tmp_path / "native")
    native = MotionPipeline.from_pretrained(tmp_path / "native", text_encoder=pipeline.text_encoder)
    expected = pipeline.generate(["a person crawls"], lengths=[40], seed=8)
    _same(expected, official.generate(["a person crawls"], lengths=[40], seed=8))
    _same(expected, native.generate(["a person crawls"], lengths=[40], seed=8))


def test_official_loading_is_strict_and_names_the_key(tmp_path, momask) -> None:
    root = tmp_path / "checkpoints"
    folder = save_official_layout(momask.checkpoint(), root)
    tar = folder / "tres_model" / "model" / "net_best_fid.tar"
    checkpoint = torch.load(tar, weights_only=True)
    checkpoint["res_transformer"]["cond_emb.weight"] = torch.zeros(3, 3)
    checkpoint["res_transformer"]["surprise.weight"] = torch.zeros(1)
    torch.save(checkpoint, tar)
    with pytest.raises(ValueError) as error:
        MotionPipeline.from_pretrained(root, text_encoder=momask.text_encoder)
    assert "cond_emb.weight" in str(error.value) and "surprise.weight" in str(error.value)


def test_official_loading_refuses_pickled_objects(tmp_path, momask) -> None:
    root = tmp_path / "checkpoints"
    folder = save_official_layout(momask.checkpoint(), root)
    tar = folder / "rvq" / "model" / "net_best_fid.tar"
    torch.save({"vq_model": momask.vq.state_dict(), "extra": _Evil()}, tar)
    with pytest.raises(ValueError, match="weights-only"):
        MotionPipeline.from_pretrained(root, text_encoder=momask.text_encoder)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_missing_official_clip_weights_error_is_clear(tmp_path, momask, monkeypatch) -> None:
    monkeypatch.delenv("HMU_CLIP_PATH", raising=False)
    root = tmp_path / "checkpoints"
    save_official_layout(momask.checkpoint(), root)
    with pytest.raises(FileNotFoundError, match="clip_path"):
        MotionPipeline.from_pretrained(root)


def test_cli_generate_writes_npy_json_and_features(tmp_path, momask) -> None:
    model = momask.save_pretrained(tmp_path / "model")
    out_npy, out_json, feats = tmp_path / "m.npy", tmp_path / "m.json", tmp_path / "f.npy"
    args = ["generate", "--model", str(model), "--text", "a person walks forward", "--length", "42", "--seed", "7"]
    assert hmu_main([*args, "--out", str(out_npy), "--features-out", str(feats)]) == 0
    assert hmu_main([*args, "--out", str(out_json)]) == 0
    joints = np.load(out_npy)
    assert joints.shape == (40, 22, 3) and joints.dtype == np.float32
    assert np.load(feats).shape == (40, 263)
    payload = json.loads(out_json.read_text())
    assert payload["fps"] == 20
    np.testing.assert_allclose(np.array(payload["joints"]), joints, atol=1e-5)
    again = tmp_path / "again.npy"
    assert hmu_main([*args, "--out", str(again)]) == 0
    np.testing.assert_array_equal(np.load(again), joints)


def test_cli_reports_bad_output_suffix(tmp_path, momask, capsys) -> None:
    model = momask.save_pretrained(tmp_path / "model")
    code = hmu_main(["generate", "--model", str(model), "--text", "walk", "--length", "40",
                     "--out", str(tmp_path / "m.txt")])
    assert code == 2 and ".npy or .json" in capsys.readouterr().err


def test_native_save_is_byte_identical(tmp_path, momask) -> None:
    """Same weights -> same bytes, so manifest hashes identify content (safetensors metadata order is not
    stable across saves when a file carries several metadata keys)."""
    for attempt in range(4):
        momask.save_pretrained(tmp_path / f"m{attempt}")
    for name in ("vq", "base", "residual", "length_estimator", "stats"):
        blobs = {(tmp_path / f"m{a}" / f"{name}.safetensors").read_bytes() for a in range(4)}
        assert len(blobs) == 1, name


def test_kind_picks_the_pipeline_class(tmp_path, momask, bamm) -> None:
    assert type(momask) is MoMaskPipeline and type(bamm) is BAMMPipeline
    assert MotionPipeline.for_kind("bamm") is BAMMPipeline and BAMMPipeline.random().kind == "bamm"
    with pytest.raises(ValueError, match="unknown model kind"):
        MotionPipeline.random(kind="nope")
    bamm.save_pretrained(tmp_path / "bamm")
    assert type(MotionPipeline.from_pretrained(tmp_path / "bamm", text_encoder=bamm.text_encoder)) is BAMMPipeline
    with pytest.raises(ValueError, match="not a MoMaskPipeline"):
        MoMaskPipeline.from_pretrained(tmp_path / "bamm", text_encoder=bamm.text_encoder)


def test_sampling_config_equals_legacy_knobs_and_defaults_come_from_the_class(momask, bamm) -> None:
    assert momask.sampling == MoMaskPipeline.default_sampling and bamm.sampling.timesteps is None
    texts, lengths = ["a person bows"], [40]
    _same(momask.generate(texts, lengths, seed=1, sampling=SamplingConfig(timesteps=3, cond_scale=2.0)),
          momask.generate(texts, lengths, seed=1, timesteps=3, cond_scale=2.0))
    _same(momask.generate(texts, lengths, seed=1, sampling=MoMaskPipeline.default_sampling),
          momask.generate(texts, lengths, seed=1))
    assert momask.resolve_sampling(SamplingConfig(timesteps=3), timesteps=5).timesteps == 5


def test_copy_is_independent_and_generates_the_same(momask) -> None:
    clone = momask.copy()
    assert type(clone) is type(momask) and clone.text_encoder is momask.text_encoder
    _same(momask.generate(["a person spins"], [32], seed=2), clone.generate(["a person spins"], [32], seed=2))
    with torch.no_grad():
        next(clone.base.parameters()).add_(1.0)
    assert not torch.equal(next(clone.base.parameters()), next(momask.base.parameters()))
