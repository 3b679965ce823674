"""Training stages on a tiny synthetic HumanML3D-format folder with the 'tiny' presets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.data.datasets import (
    MotionWindowDataset,
    TextMotionDataset,
    cache_codes,
    generator_for,
    text_features_for,
    training_normalizer,
)
from models.motion.normalize import compute_statistics
from models.text.base import TextEncoder, register_text_encoder
from models.train import RunOptions, load_config, train_mask, train_vq
from models.train.bundle import ORDER, load_stage_configs
from models.train.engine import LATEST, load_checkpoint, lr_at
from models.train.loops import TRAINERS, load_vq

ACTIONS = ("walks forward", "runs in a circle", "waves the left hand", "kicks", "jumps up", "sits down")


def make_dataset(root: Path, n_clips: int = 24, seed: int = 0) -> Path:
    """Random-walk 263-dim features (48..120 frames), 2 captions per clip (one timed), 2/3 train, 1/3 val."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    feats = []
    for i in range(n_clips):
        action = i % len(ACTIONS)
        t = int(rng.integers(48, 121))
        walk = np.cumsum(rng.normal(0, 0.05, (t, 263)), axis=0)
        wave = np.sin(np.arange(t)[:, None] * (0.1 + 0.05 * action) + rng.uniform(0, 6, 263))
        x = (walk + wave).astype(np.float32)
        x[:, 259:] = (rng.random((t, 4)) > 0.5)  # foot contacts
        np.save(root / "new_joint_vecs" / f"{i:06d}.npy", x)
        feats.append(x)
        lines = [f"a person {ACTIONS[action]}#a/DET person/NOUN#0.0#0.0",
                 f"someone {ACTIONS[action]} slowly#someone/PRON#0.0#{(t - 2) / 20:.2f}"]
        (root / "texts" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
    mean, std = compute_statistics(feats)
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    ids = [f"{i:06d}" for i in range(n_clips)]
    (root / "train.txt").write_text("\n".join(ids[: 2 * n_clips // 3]) + "\n")
    (root / "val.txt").write_text("\n".join(ids[2 * n_clips // 3 :]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[2 * n_clips // 3 :]) + "\n")
    return root


class HashTextEncoder(TextEncoder):
    """Deterministic 32-dim caption features from a sha256 of each word (no model download)."""

    name, dim = "hash-test", 32

    def __init__(self):
        super().__init__(torch.nn.Linear(1, 1))

    def spec(self) -> dict:
        return {"type": "hash-test"}

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for word in text.split():
                digest = hashlib.sha256(word.encode()).digest()
                out[row] += torch.tensor([b / 127.5 - 1 for b in digest[: self.dim]])
        return out.to(self.device)

    @classmethod
    def from_spec(cls, spec: dict) -> HashTextEncoder:
        return cls()


register_text_encoder("hash-test", HashTextEncoder.from_spec)


TINY = {"size": "tiny", "iters": 6, "batch_size": 8, "eval_every": 3, "save_every": 3, "val_items": 8,
        "warmup_iters": 2, "text_encoder": {"type": "hash-test"}}
SMALL_EVALUATOR = {"movement_hidden": 16, "movement_latent": 16, "motion_hidden": 16, "text_hidden": 16,
                   "embed_dim": 16}


def tiny(stage: str, **overrides):
    model = {"evaluator": SMALL_EVALUATOR}.get(stage, {})
    return load_config(stage, **{**TINY, "model": model, **overrides})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is shared: oversubscribed threads are 10x slower here
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("train") / "data")


@pytest.fixture(scope="module")
def trained_vq(data, tmp_path_factory) -> Path:
    """A tiny VQ trained once; later stages read it from <out>/vq."""
    out = tmp_path_factory.mktemp("vq_out")
    train_vq(data, out, tiny("vq", iters=20, lr=1e-3), RunOptions(progress=False))
    return out


def opts(**kw) -> RunOptions:
    return RunOptions(progress=False, text_encoder=HashTextEncoder(), **kw)


# ------------------------------------------------------------------------------------ data
def test_window_dataset_enumerates_every_window(data):
    norm = training_normalizer(data)
    ds = MotionWindowDataset(data, "train", norm, window=64)
    assert len(ds) == sum(len(c) - 63 for c in ds.clips)
    batch = ds.batch(torch.tensor([0, len(ds) - 1]))
    assert batch.shape == (2, 64, 263)
    torch.testing.assert_close(batch[1], ds.clips[-1][-64:])


def test_feat_bias_divides_root_and_contacts_once(data):
    base = np.load(data / "Std.npy")
    std = training_normalizer(data, feat_bias=5.0).std
    np.testing.assert_allclose(std[:4], base[:4] / 5, rtol=1e-6)
    np.testing.assert_allclose(std[259:], base[259:] / 5, rtol=1e-6)
    np.testing.assert_allclose(std[4:259], base[4:259])


def test_text_motion_crops_follow_the_official_coin(data):
    ds = TextMotionDataset(data, "train", training_normalizer(data))
    assert any("#" in item.name for item in ds.items)  # timed captions became their own items
    idx = torch.zeros(3000, dtype=torch.long)
    _, start, m = ds.draw(idx, generator_for(0, 0))
    t = len(ds.items[0].motion)
    assert set(m.unique().tolist()) == {t // 4 * 4, (t // 4 - 1) * 4}
    assert abs((m == (t // 4 - 1) * 4).float().mean().item() - 1 / 3) < 0.04
    assert int(start.min()) >= 0 and bool((start + m <= t).all())
    batch = ds.batch(torch.arange(4), generator_for(0, 1))
    assert batch["motion"].shape == (4, 196, 263)
    for row in range(4):
        n = int(batch["m_lens"][row])
        assert bool((batch["motion"][row, n:] == 0).all()) and bool((batch["motion"][row, :n] != 0).any())


def test_cached_codes_match_encoding_the_crop_phase(data, trained_vq):
    vq, norm = load_vq(trained_vq / "vq")
    ds = TextMotionDataset(data, "train", norm)
    cache_codes(ds, vq)
    idx = torch.tensor([0, 1, 2])
    start, m = torch.tensor([0, 1, 6]), torch.tensor([40, 44, 36])
    ids = ds.token_ids(idx, start, m)
    for row in range(3):
        s, n = int(start[row]), int(m[row])
        phase = s % 4
        motion = ds.items[row].motion[phase:]
        full = vq.encode(motion[: len(motion) // 4 * 4].unsqueeze(0))[0]
        torch.testing.assert_close(ids[row, : n // 4], full[s // 4 : s // 4 + n // 4])
        assert bool((ids[row, n // 4 :] == -1).all())


def test_text_features_are_encoded_once_and_cached(tmp_path):
    class Counting(HashTextEncoder):
        calls: list[str] = []

        def _encode_batch(self, texts):
            Counting.calls.extend(texts)
            return super()._encode_batch(texts)

    caps = ["a person walks", "a person runs", "a person walks"]
    first = text_features_for(caps, Counting(), tmp_path)
    assert sorted(Counting.calls) == ["a person runs", "a person walks"]
    again = text_features_for(caps + ["new caption"], Counting(), tmp_path)
    assert Counting.calls[2:] == ["new caption"]
    torch.testing.assert_close(again[:3], first)
    torch.testing.assert_close(first[0], first[2])


# ------------------------------------------------------------------------------------ loops
def test_lr_schedule_warmup_and_milestones():
    cfg = load_config("mask", iters=100, warmup_iters=10, milestones=[0.5], gamma=0.1, lr=1.0)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 9) == pytest.approx(1.0)
    assert lr_at(cfg, 49) == pytest.approx(1.0) and lr_at(cfg, 50) == pytest.approx(0.1)


@pytest.mark.parametrize("stage", ORDER)
def test_loss_decreases_on_an_overfit_batch(stage, data, trained_vq, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if stage != "vq":
        (out / "vq").symlink_to(trained_vq / "vq")
    batch = 32 if stage == "vq" else 256  # the whole (tiny) training set, or 32 of its 281 VQ windows
    cfg = tiny(stage, iters=40, eval_every=20, lr=2e-3, warmup_iters=0, batch_size=batch, milestones=[])
    result = TRAINERS[stage](data, out, cfg, opts())
    first, last = result.fit.history[0]["train_loss"], result.fit.history[-1]["train_loss"]
    assert last < 0.9 * first, (stage, first, last)
    assert result.fit.iteration == 40 and (result.directory / "best.pt").is_file()


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("stage", ["vq", "mask"])
def test_resume_is_bit_exact(stage, data, trained_vq, tmp_path):
    runs = {}
    for name, pieces in (("straight", [None]), ("resumed", [3, None])):
        out = tmp_path / name
        out.mkdir()
        if stage != "vq":
            (out / "vq").symlink_to(trained_vq / "vq")
        for k, stop in enumerate(pieces):
            result = TRAINERS[stage](data, out, tiny(stage), opts(resume=k > 0, stop_after=stop))
        latest = load_checkpoint(result.directory / LATEST)
        runs[name] = latest
    assert runs["resumed"]["iteration"] == runs["straight"]["iteration"] == 6
    for key, value in runs["straight"]["model"].items():
        assert torch.equal(value, runs["resumed"]["model"][key]), key
    for key, value in runs["straight"]["extra"].items():  # VQ EMA statistics
        assert torch.equal(value, runs["resumed"]["extra"][key]), key


def test_time_budget_ends_with_a_usable_checkpoint(data, tmp_path):
    result = train_vq(data, tmp_path, tiny("vq", iters=1000), opts(max_minutes=1e-6))
    assert result.fit.stopped_early and result.fit.iteration == 1
    assert load_checkpoint(tmp_path / "vq" / LATEST)["iteration"] == 1
    vq, _ = load_vq(tmp_path / "vq")
    assert vq.encode(torch.zeros(1, 8, 263)).shape == (1, 2, 3)


def test_bad_inputs_raise_clear_errors(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="HumanML3D-format"):
        train_vq(tmp_path, tmp_path / "out", tiny("vq"), opts())
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        load_config("vq", learning_rate=1.0)
    with pytest.raises(FileNotFoundError, match="latest.pt"):
        train_vq(data, tmp_path / "fresh", tiny("vq"), opts(resume=True))
    with pytest.raises(FileNotFoundError, match="hmu train vq"):
        train_mask(data, tmp_path / "novq", tiny("mask"), opts())
    train_vq(data, tmp_path / "cfg", tiny("vq", iters=2), opts())
    with pytest.raises(ValueError, match="different training config"):
        train_vq(data, tmp_path / "cfg", tiny("vq", iters=4), opts(resume=True))


@pytest.mark.parametrize("subdir", ["", "gpu"])
def test_committed_configs_are_valid_small_models(subdir):
    from models.train.config import CONFIG_DIR

    configs = load_stage_configs(CONFIG_DIR / subdir)
    assert set(configs) == set(ORDER)
    for stage in ("vq", "mask", "res", "bamm"):
        assert configs[stage].size == "small"


# ------------------------------------------------------------------------------------ default + CLI
def test_cli_default_writes_loadable_bundles(data, tmp_path, capsys):
    from hmu.cli import main
    from models.evaluator.our_evaluator import OurEvaluator
    from models.pipelines import MotionPipeline

    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    for stage in ORDER:
        cfg = tiny(stage, iters=4, eval_every=2, save_every=2)
        (config_dir / f"{stage}.json").write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "out"
    code = main(["train", "default", "--data", str(data), "--out", str(out), "--config", str(config_dir),
                 "--no-progress"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"momask-tiny", "bamm-tiny", "evaluator"}

    for name in ("momask-tiny", "bamm-tiny"):
        pipe = MotionPipeline.from_pretrained(out / name)
        motions = pipe.generate(["a person walks forward"], lengths=[40], seed=0)
        assert motions[0].joints.shape == (40, 22, 3) and np.isfinite(motions[0].joints).all()
        card = (out / name / "MODEL_CARD.md").read_text()
        assert "CC BY-NC 4.0" in card and "hmu train default" in card and "val_loss" in card
    assert MotionPipeline.from_pretrained(out / "momask-tiny").length_estimator is not None
    evaluator = OurEvaluator.from_pretrained(out / "evaluator")
    emb = evaluator.motion_embeddings(torch.zeros(2, 40, 263), torch.tensor([40, 36]))
    assert emb.shape == (2, 16)
    assert (out / "evaluator" / "stats.safetensors").is_file()

    # `train momask` retrains the transformers on (here) the same folder with the run's VQ: same tokeniser
    retrained = tmp_path / "retrained"
    assert main(["train", "momask", "--data", str(data), "--out", str(retrained), "--config", str(config_dir)]) != 0
    assert "needs --vq" in capsys.readouterr().err
    code = main(["train", "momask", "--data", str(data), "--out", str(retrained), "--vq", str(out / "vq"),
                 "--config", str(config_dir), "--no-progress"])
    assert code == 0 and set(json.loads(capsys.readouterr().out)) == {"momask-tiny"}
    full, again = (MotionPipeline.from_pretrained(p / "momask-tiny") for p in (out, retrained))
    for a, b in zip(full.vq.state_dict().values(), again.vq.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(full.mean, again.mean) and torch.equal(full.std, again.std)
    assert again.length_estimator is not None
    assert not (retrained / "bamm-tiny").exists() and not (retrained / "vq").exists()
    assert "trained before" in (retrained / "momask-tiny" / "MODEL_CARD.md").read_text()
    assert json.loads((retrained / "momask-tiny" / "manifest.json").read_text())["vq_dir"] == str(out / "vq")
