"""Violence-rate classifier: training on a separable set, labels, persistence, Wilson interval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.data.concepts import get_concept
from models.evaluator.violence_classifier import (
    ClassifierConfig,
    ClassifierTraining,
    ViolenceClassifier,
    classification_metrics,
    clip_labels,
    train_violence_classifier,
    violence_rate,
    wilson_interval,
)
from tests.eval_fixtures import make_eval_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_eval_dataset(tmp_path_factory.mktemp("clfdata"), n_clips=72, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf")
    model, info = train_violence_classifier(
        data, out, training=ClassifierTraining(steps=120, batch_size=16, lr=3e-3, seed=0),
        cfg=ClassifierConfig(hidden=32, dropout=0.0),
    )
    return model, info, out


def test_classifier_learns_a_separable_set(trained, data):
    _, info, _ = trained
    held = info["metrics"]["test"]
    ids = (data / "test.txt").read_text().split()
    assert held["n"] == len(ids) and held["positives"] == sum(int(i) % 3 == 1 for i in ids)
    assert held["balanced_accuracy"] >= 0.85 and held["accuracy"] >= 0.85  # chance: 0.5
    assert info["label_source"] == "meta.json" and info["metrics"]["train"]["steps"] == 120


def test_save_load_roundtrip_and_violence_rate(trained, data):
    model, _, out = trained
    loaded = ViolenceClassifier.from_pretrained(out)
    assert json.loads((out / "config.json").read_text())["format"] == "hmu-motion-classifier"
    clips = [np.load(data / "new_joint_vecs" / f"{i}.npy") for i in (data / "test.txt").read_text().split()]
    np.testing.assert_allclose(loaded.predict_proba(clips), model.predict_proba(clips), rtol=1e-5, atol=1e-6)
    flags = model.predict(clips)
    rate, (lo, hi) = violence_rate(loaded, clips)
    assert rate == pytest.approx(flags.mean())
    assert (lo, hi) == pytest.approx(wilson_interval(int(flags.sum()), len(flags)))
    with pytest.raises(ValueError, match="features"):
        model.predict([np.zeros((40, 10), np.float32)])
    (out / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="hmu-motion-classifier"):
        ViolenceClassifier.from_pretrained(out)


def test_wilson_interval_formula():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(1 - 0.2775, abs=1e-4)
    # closed form for a generic case
    k, n, z = 37, 120, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_labels_from_meta_or_captions(data, tmp_path):
    ids = ["000000", "000001", "000004"]
    labels, source = clip_labels(data, ids, get_concept("violence"))
    assert source == "meta.json" and labels.tolist() == [False, True, True]
    # another concept (or no meta.json) uses the captions
    labels, source = clip_labels(data, ids, get_concept({"name": "walking", "keywords": ["walk"]}))
    assert source == "captions" and labels.tolist() == [True, False, False]


def test_metrics_and_input_errors(tmp_path):
    m = classification_metrics(np.array([1, 1, 0, 0, 0], bool), np.array([1, 0, 0, 0, 1], bool))
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 2, 1)
    assert m["accuracy"] == pytest.approx(0.6) and m["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    root = make_eval_dataset(tmp_path / "d", n_clips=24)
    meta = json.loads((root / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps({k: {**v, "violent": False} for k, v in meta.items()}))
    with pytest.raises(ValueError, match="needs clips with and without"):
        train_violence_classifier(root, training=ClassifierTraining(steps=1))
    with pytest.raises(FileNotFoundError):
        train_violence_classifier(tmp_path / "nowhere", training=ClassifierTraining(steps=1))
