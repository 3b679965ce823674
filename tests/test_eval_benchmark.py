"""Benchmark runner: forget/retain split, official eval-loader semantics, GT wiring, report structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.data.concepts import get_concept
from models.eval.config import EvalConfig, apply_parameters
from models.eval.generation import generate_pass
from models.eval.implicit import load_implicit_prompts
from models.eval.metrics import confidence_interval
from models.eval.passes import draw_pass
from models.eval.run import run_evaluation
from models.eval.scores import PassReference, pass_metrics
from models.eval.sets import concept_sets, load_eval_set
from models.eval.sources import GT_ROW, GroundTruthSource, PipelineSource
from models.evaluator.violence_classifier import ClassifierConfig, ClassifierTraining, train_violence_classifier
from models.pipelines import MotionPipeline
from tests.eval_fixtures import make_eval_dataset, tiny_space

PNG = b"\x89PNG\r\n\x1a\n"


def evaluate(models, data_dir=None, concept="violence", out_dir="eval-report", *, parameters=None, progress=None,
             **fields):
    """run_evaluation with the positional order of the former signature (models, data_dir, concept, out_dir)."""
    config = EvalConfig.with_parameters(parameters, models=models, data_dir=data_dir, concept=concept,
                                        out_dir=out_dir, **fields)
    return run_evaluation(config, progress)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_eval_dataset(tmp_path_factory.mktemp("evaldata"))


@pytest.fixture(scope="module")
def space(data):
    return tiny_space(data)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    momask = MotionPipeline.random("momask", "tiny", seed=0)
    momask.save_pretrained(root / "momask-tiny")
    MotionPipeline.random("bamm", "tiny", seed=1, text_encoder=momask.text_encoder).save_pretrained(
        root / "bamm-tiny"
    )
    return [root / "momask-tiny", root / "bamm-tiny"]


def test_split_builder_counts_and_kw_files(data, tmp_path):
    concept = get_concept("violence")
    forget, retain, parts = concept_sets(data, concept, "test", tmp_path / "kw")
    test_ids = (data / "test.txt").read_text().split()
    violent = [i for i in test_ids if int(i) % 3 == 1]
    assert parts.forget == violent and parts.retain == [i for i in test_ids if i not in violent]
    # captions of clip i: VIOLENT[i % 3], VIOLENT[(i + 1) % 3] -> kick in every violent clip, punch in some
    n_punch = sum(1 in (int(i) % 3, (int(i) + 1) % 3) for i in violent)
    assert parts.keyword_counts == {"kick": len(violent), "punch": n_punch}
    assert (tmp_path / "kw" / "test-w-violence.txt").read_text().split() == violent
    assert (tmp_path / "kw" / "test-wo-violence.txt").read_text().split() == parts.retain
    assert len(forget) == len(violent) and {i.clip_id for i in retain.items} == set(parts.retain)


def test_eval_set_follows_the_official_loader(tmp_path):
    root = make_eval_dataset(tmp_path / "d", n_clips=12)
    motion = np.load(root / "new_joint_vecs" / "000000.npy")
    t = len(motion)
    (root / "texts" / "000000.txt").write_text(
        f"a person walks#a/DET person/NOUN walk/VERB#0.0#0.0\n"
        f"a person turns#a/DET person/NOUN turn/VERB#0.0#{40 / 20}\n"  # 40 frames: kept as its own item
        f"a person stops#a/DET person/NOUN stop/VERB#0.0#{39 / 20}\n"  # 39 frames: dropped
    )
    (root / "texts" / "000001.txt").write_text("a person runs#a/DET#0.5#2.6\n")  # segment only
    np.save(root / "new_joint_vecs" / "000002.npy", np.zeros((39, 263), np.float32))  # too short
    s = load_eval_set(root, ["000000", "000001", "000002"])
    names = {i.name: i for i in s.items}
    assert set(names) == {"000000", "000000#1", "000001#0"}
    assert names["000000"].captions == ["a person walks"] and names["000000"].tokens == [
        ["a/DET", "person/NOUN", "walk/VERB"]
    ]
    assert len(names["000000"].motion) == t and len(names["000000#1"].motion) == 40
    assert len(names["000001#0"].motion) == 42  # frames 10..52
    with pytest.raises(FileNotFoundError, match="feature file"):
        load_eval_set(root, ["999999"])


def test_draw_pass_crops_lengths_and_determinism(data):
    s = load_eval_set(data, (data / "all.txt").read_text().split())
    batches = draw_pass(s, np.random.default_rng(3), batch_size=8)
    assert len(batches) == len(s) // 8 and all(len(b) == 8 for b in batches)
    assert len({i for b in batches for i in b.items}) == len(batches) * 8  # no item twice in a pass
    singles = 0
    for b in batches:
        for i, m, crop, cap in zip(b.items, b.lengths, b.motions, b.captions, strict=True):
            t = len(s.items[i].motion)
            assert m % 4 == 0 and m in ((t // 4) * 4, (t // 4 - 1) * 4) and crop.shape == (m, 263)
            singles += m == (t // 4) * 4
            assert cap in s.items[i].captions
            start = next(k for k in range(t - m + 1) if np.array_equal(s.items[i].motion[k : k + m], crop))
            assert 0 <= start <= t - m
    assert 0.4 < singles / (len(batches) * 8) < 0.95  # the 2/3 coin
    again = draw_pass(s, np.random.default_rng(3), batch_size=8)
    assert [b.captions for b in again] == [b.captions for b in batches]
    assert [b.seeds for b in again] == [b.seeds for b in batches]


def test_eval_space_uses_the_evaluator_statistics(data, space):
    x = np.load(data / "new_joint_vecs" / "000005.npy")[:48]
    emb = space.motion_embeddings([x])
    padded = torch.zeros(1, 196, 263)
    padded[0, :48] = torch.from_numpy((x - space.mean) / space.std)
    direct = space.evaluator.motion_embeddings(padded, torch.tensor([48])).numpy()
    np.testing.assert_allclose(emb, direct, rtol=1e-5, atol=1e-6)
    masked, changed = space.masked_text_embeddings(
        ["a person kicks", "a person walks"], [[], []], get_concept("violence")
    )
    np.testing.assert_allclose(masked[0], space.text_embeddings(["a person ***"], [[]])[0], rtol=1e-6)
    assert changed.tolist() == [True, False]


def test_gt_as_generated_reproduces_the_gt_row(data, space, tmp_path):
    """Wiring check: the GT crops fed through the generation path give FID 0 and identical metrics."""
    report = evaluate(
        {"gt": GroundTruthSource()},
        data,
        "violence",
        tmp_path,
        repeats=2,
        evaluator=space,
        classifier="none",
        plots=False,
        mm_batches=0,
    )
    for split in ("forget", "retain"):
        gt, as_gen = report["results"][GT_ROW][split], report["results"]["gt"][split]
        assert abs(as_gen["FID"]["mean"]) < 1e-6 and abs(gt["FID"]["mean"]) < 1e-6
        for metric in ("R@1", "R@2", "R@3", "MM-Dist", "Diversity"):
            assert as_gen[metric] == gt[metric]
    assert report["results"]["gt"]["forget"]["MM-Safe"] == report["results"][GT_ROW]["forget"]["MM-Safe"]
    # and a shuffled "generation" is caught: same distribution (FID ~ 0) but worse matching
    ref = PassReference.build(space, draw_pass(load_eval_set(data), np.random.default_rng(0), 16))
    emb, _, _ = generate_pass(GroundTruthSource(), space, ref)
    assert np.array_equal(emb, ref.gt_emb)
    rolled = pass_metrics(ref, np.roll(emb, 1, axis=0), np.random.default_rng(1))
    exact = pass_metrics(ref, emb, np.random.default_rng(1))
    assert rolled["MM-Dist"] != exact["MM-Dist"] and abs(rolled["FID"]) < 1e-6


def test_runner_writes_report_markdown_and_plots(data, space, tiny_models, tmp_path):
    clf, _ = train_violence_classifier(
        data, tmp_path / "clf", training=ClassifierTraining(steps=20, batch_size=8), cfg=ClassifierConfig(hidden=16)
    )
    implicit = tmp_path / "implicit.txt"
    forget_ids = [i for i in (data / "test.txt").read_text().split() if int(i) % 3 == 1]
    implicit.write_text("".join(f"{i}#a person swings the right leg forward\n" for i in forget_ids))
    seen = []
    report = evaluate(
        tiny_models,
        data,
        "violence",
        tmp_path / "out",
        repeats=2,
        evaluator=space,
        mm_batches=1,
        mm_repeats=3,
        classifier=clf,
        implicit_prompts=implicit,
        sampling={"timesteps": 2},
        progress=lambda f, m: seen.append((f, m)),
    )
    out = tmp_path / "out"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["rows"] == [GT_ROW, "momask-tiny", "bamm-tiny"] == report["rows"]
    for row in on_disk["rows"]:
        assert set(on_disk["results"][row]) == {"forget", "retain", "implicit"}
        for split, metrics in on_disk["results"][row].items():
            assert {"FID", "R@1", "R@2", "R@3", "MM-Dist", "Diversity"} <= set(metrics)
            assert ("MM-Safe" in metrics) == (split == "forget")
            assert ("Violence rate" in metrics) == (split != "retain")
            for name, r in metrics.items():
                assert r["n"] == 2
                values = [p[name] for p in on_disk["per_repeat"][row][split]]
                assert (r["mean"], r["conf"]) == pytest.approx(confidence_interval(values))
    assert "MultiModality" in on_disk["results"]["momask-tiny"]["retain"]
    assert on_disk["results"]["momask-tiny"]["retain"]["FID"]["mean"] > 0.01
    assert any(r["conf"] > 0 for r in on_disk["results"]["momask-tiny"]["forget"].values())
    rate = on_disk["violence"]["rates"]["momask-tiny"]["forget"]
    assert rate["n"] == 2 * on_disk["data"]["sets"]["forget"]["items"]
    assert rate["ci_low"] <= rate["rate"] <= rate["ci_high"]
    assert on_disk["data"]["split"]["keyword_counts"]["kick"] == len(forget_ids)
    assert (out / "kw_splits" / "test-w-violence.txt").read_text().split() == forget_ids
    assert {"settings", "seeds", "timing", "software", "evaluator", "concept"} <= set(on_disk)
    md = (out / "report.md").read_text()
    assert "| Model | Forget FID" in md and "Retain MM-Dist" in md
    assert all(f"| {row} |" in md for row in on_disk["rows"])
    assert "Wilson" in md and "held-out accuracy" in md
    for name in ("metrics.png", "skeletons_violent.png", "skeletons_safe.png"):
        assert (out / name).read_bytes()[:8] == PNG
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) > 10


def test_worker_style_call_and_parameter_checks(data, space, tiny_models, tmp_path):
    ids = (data / "test.txt").read_text().split()
    forget, retain = concept_sets(data, get_concept("violence"), "test")[:2]
    assert len(forget) and len(retain) and len(ids) == len(forget) + len(retain)
    report = evaluate(
        models={"m": tiny_models[0]},
        forget_dir=data,
        retain_dir=data,
        out_dir=tmp_path,
        parameters={"repeats": 1, "mm_batches": 0, "max_items": 8},
        device="cpu",
        progress=None,
        evaluator=space,
        classifier="none",
        plots=False,
        sampling={"timesteps": 1},
    )
    assert report["settings"]["repeats"] == 1 and report["rows"] == [GT_ROW, "m"]
    assert report["settings"]["decode"] == "per_row"  # "auto" with our evaluator
    assert report["data"]["sets"]["forget"]["batch_size"] == 8
    with pytest.raises(ValueError, match="unknown evaluation parameter"):
        apply_parameters({}, {"evaluator": "/etc"})
    with pytest.raises(ValueError, match="repeats"):
        apply_parameters({}, {"repeats": 1000})
    with pytest.raises(ValueError, match="forget_dir and retain_dir"):
        evaluate(["x"], forget_dir=data, out_dir=tmp_path, evaluator=space)
    with pytest.raises(FileNotFoundError, match="model"):
        evaluate([tmp_path / "missing"], data, out_dir=tmp_path, evaluator=space, classifier="none")


def test_implicit_prompt_files(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(
        json.dumps([{"id": "000001", "prompt": "a person swings a leg", "tokens": "a/DET person/NOUN"}])
    )
    rows = load_implicit_prompts(j)
    assert rows[0].clip_id == "000001" and rows[0].tokens == ["a/DET", "person/NOUN"]
    t = tmp_path / "p.txt"
    t.write_text("# comment\n000002\ta person lifts a knee\n000003#someone swings an arm\n")
    assert [(r.clip_id, r.prompt) for r in load_implicit_prompts(t)] == [
        ("000002", "a person lifts a knee"),
        ("000003", "someone swings an arm"),
    ]
    (tmp_path / "bad.txt").write_text("no separator here\n")
    with pytest.raises(ValueError, match="expected"):
        load_implicit_prompts(tmp_path / "bad.txt")


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_length_sorted_chunks_give_the_per_batch_results(data, space, tiny_models, kind):
    """generate_pass regroups rows by length; every row keeps its own seed, so the motions, embeddings and
    MultiModality embeddings equal generating each pass batch on its own (rows are put back in order)."""
    path = tiny_models[0 if kind == "momask" else 1]
    source = PipelineSource(MotionPipeline.from_pretrained(path), kind, {"timesteps": 2})
    ref = PassReference.build(space, draw_pass(load_eval_set(data), np.random.default_rng(3), 5))
    assert len({n for b in ref.batches for n in b.lengths}) > 1  # the chunks really reorder rows
    emb, mm, raw = generate_pass(source, space, ref, mm_batches=1, mm_repeats=3, chunk_size=4)
    expected = []
    for k, batch in enumerate(ref.batches):
        for r in range(3 if k == 0 else 1):
            seeds = [(s + 7919 * r) % (2**31 - 1) for s in batch.seeds]
            motions = source.generate_batch(batch, seeds)
        expected.extend(motions)  # the last repetition, in batch order
    assert len(raw) == len(expected)
    for got, want in zip(raw, expected, strict=True):
        assert np.allclose(got, want, atol=1e-4)
    want = np.concatenate([space.motion_embeddings(expected[s:e]) for s, e in ref.bounds])
    assert np.allclose(emb, want, atol=1e-4)
    assert mm.shape[:2] == (len(ref.batches[0]), 3) and np.allclose(mm[:, -1], emb[: len(ref.batches[0])])


def test_official_decode_generates_the_pass_batches_padded(data, space, tiny_models):
    """With decode="official" every pass batch is generated as one padded batch (its own padding, as in the
    official evaluation): the motions equal `generate(..., decode="official")` on each batch, and short rows
    differ from the per-row decoding."""
    pipeline = MotionPipeline.from_pretrained(tiny_models[0])
    official = PipelineSource(pipeline, "o", {"timesteps": 2}, decode="official")
    per_row = PipelineSource(pipeline, "p", {"timesteps": 2})
    ref = PassReference.build(space, draw_pass(load_eval_set(data), np.random.default_rng(3), 5))
    _, _, raw = generate_pass(official, space, ref, chunk_size=2)
    _, _, raw_per_row = generate_pass(per_row, space, ref, chunk_size=2)
    expected = []
    for batch in ref.batches:
        out = pipeline.generate(batch.captions, lengths=batch.lengths, seeds=batch.seeds, timesteps=2,
                                decode="official")
        expected.extend(o.features for o in out)
    lengths = [n for b in ref.batches for n in b.lengths]
    longest = [max(b.lengths) for b in ref.batches for _ in b.lengths]
    for got, want, n in zip(raw, expected, lengths, strict=True):
        assert got.shape == (n, 263) and np.array_equal(got, want)
    short = [i for i, (n, m) in enumerate(zip(lengths, longest, strict=True)) if n < m]
    assert short and all(not np.allclose(raw[i], raw_per_row[i], atol=1e-4) for i in short)
    assert EvalConfig(models=[], data_dir=data).decode_mode("official") == "official"
    assert EvalConfig(models=[], data_dir=data).decode_mode("ours") == "per_row"
    assert EvalConfig(models=[], data_dir=data, decode="per_row").decode_mode("official") == "per_row"
    with pytest.raises(ValueError, match="decode"):
        EvalConfig(models=[], data_dir=data, decode="padded")
