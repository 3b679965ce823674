"""Metrics on fixed, constructed inputs whose answers are known (evaluator.md §6)."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from models.eval.metrics import (
    MatchingStats,
    MetricResult,
    aggregate,
    confidence_interval,
    diversity,
    euclidean_distance_matrix,
    fid,
    frechet_distance,
    iter_batches,
    matching_score,
    mm_safe,
    multimodality,
    r_precision_and_matching,
    top_k_hits,
)


def closed_form_fid(mu1, s1, mu2, s2):
    """Independent of scipy.sqrtm: Tr sqrt(S1 S2) = sum of sqrt of the (real, >= 0) eigenvalues."""
    ev = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).sum())


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


# ---- distances ------------------------------------------------------------------------------------


def test_distance_matrix_matches_cdist_and_accepts_tensors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(euclidean_distance_matrix(a, b), cdist(a, b), rtol=1e-10)
    np.testing.assert_allclose(euclidean_distance_matrix(torch.tensor(a), torch.tensor(b)), cdist(a, b))
    with pytest.raises(ValueError, match="embedding sizes"):
        euclidean_distance_matrix(a, rng.normal(size=(4, 6)))


# ---- FID ------------------------------------------------------------------------------------------


def test_fid_of_identical_sets_is_zero():
    x = np.random.default_rng(1).normal(size=(400, 16))
    assert abs(fid(x, x)) < 1e-8
    assert abs(fid(x, x[::-1])) < 1e-8  # order does not matter


def test_frechet_distance_analytic_cases():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == (
        pytest.approx(4.0 + 1.0)
    )
    # diagonal covariances: |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + (1 - 2) ** 2 + 0.0 + (3 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # general non-commuting SPD pair vs the eigenvalue formula
    rng = np.random.default_rng(2)
    s1, s2, m1, m2 = random_spd(rng, 6), random_spd(rng, 6), rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(closed_form_fid(m1, s1, m2, s2), rel=1e-9)
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(m1, s1, m2, s2[:5, :5])


def test_fid_of_gaussian_samples_matches_closed_form():
    rng = np.random.default_rng(3)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.0, 2.0])
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    x = rng.multivariate_normal(mu1, s1, size=40000)
    y = rng.multivariate_normal(mu2, s2, size=40000)
    expected = closed_form_fid(mu1, s1, mu2, s2)
    assert expected > 1.0
    assert fid(x, y) == pytest.approx(expected, rel=0.03)


def test_fid_rank_deficient_covariance_stays_real_and_finite():
    x = np.random.default_rng(4).normal(size=(5, 10))  # N < D: singular covariance
    assert np.isfinite(fid(x, x)) and abs(fid(x, x)) < 1e-4
    with pytest.raises(ValueError, match="at least 2"):
        fid(x[:1], x)


# ---- R-precision / matching score -----------------------------------------------------------------


def test_top_k_hits_on_explicit_distances():
    # row i has its own motion (column i) at rank i+1
    d = np.array(
        [
            [0.0, 1.0, 2.0, 3.0],
            [0.5, 0.2, 0.1, 3.0],
            [0.5, 0.6, 2.0, 3.0],
            [0.5, 0.6, 0.7, 9.0],
        ]
    )
    hits = top_k_hits(d, top_k=3)
    expected = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(hits, expected)
    np.testing.assert_allclose(hits.sum(0) / 4, [0.25, 0.5, 0.75])


def test_r_precision_identity_is_one():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(96, 32))
    m = t + 0.01 * rng.normal(size=t.shape)
    r, mm = r_precision_and_matching(t, m)
    np.testing.assert_allclose(r, [1.0, 1.0, 1.0])
    assert mm == pytest.approx(np.linalg.norm(t - m, axis=1).mean(), rel=1e-6)
    r, _ = r_precision_and_matching(t, m, shuffle=True, rng=0)
    np.testing.assert_allclose(r, [1.0, 1.0, 1.0])


def test_r_precision_shifted_line_has_known_top_k():
    # texts at 0..31 on a line, motions at j + 0.6: row i's own motion is 2nd nearest (after m_{i-1}),
    # except row 0 where it is the nearest -> top1 = 1/32, top2 = top3 = 1, MM-Dist = 0.6.
    t = np.arange(32, dtype=np.float64)[:, None]
    m = t + 0.6
    r, mm = r_precision_and_matching(t, m)
    np.testing.assert_allclose(r, [1 / 32, 1.0, 1.0])
    assert mm == pytest.approx(0.6, abs=1e-6)


def test_r_precision_batches_of_32_drop_last():
    # batch 1 aligned (all hits); batch 2: rows 32..63 with motions cycled by one -> own motion is
    # never nearest; rows 64..69 form an incomplete batch and are dropped.
    rng = np.random.default_rng(6)
    t = rng.normal(size=(70, 16)) * 10
    m = t + 0.01
    m[32:64] = np.roll(t[32:64], 1, axis=0)
    m[64:] = 1e3  # would be misses if counted
    stats = MatchingStats()
    for idx in iter_batches(70, 32):
        stats.add(t[idx], m[idx])
    assert stats.n == 64
    assert stats.r_precision[0] == pytest.approx(0.5)
    r, _ = r_precision_and_matching(t, m)
    np.testing.assert_allclose(r, stats.r_precision)
    with pytest.raises(ValueError, match="no full batch"):
        r_precision_and_matching(t[:20], m[:20])


def test_shuffled_batches_are_a_permutation_drop_last():
    batches = list(iter_batches(100, 32, shuffle=True, rng=0))
    assert [len(b) for b in batches] == [32, 32, 32]
    used = np.concatenate(batches)
    assert len(set(used.tolist())) == 96 and not np.array_equal(used, np.arange(96))


def test_matching_score_equals_trace_over_n():
    rng = np.random.default_rng(7)
    t, m = rng.normal(size=(64, 8)), rng.normal(size=(64, 8))
    trace = np.trace(cdist(t[:32], m[:32])) + np.trace(cdist(t[32:], m[32:]))
    assert matching_score(t, m) == pytest.approx(trace / 64)
    assert r_precision_and_matching(t, m)[1] == pytest.approx(trace / 64)


# ---- MM-Safe --------------------------------------------------------------------------------------


def test_mm_safe_equals_mm_dist_when_nothing_masked():
    rng = np.random.default_rng(8)
    t, m = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    res = mm_safe(t, t, m, np.zeros(40, dtype=bool))
    assert res.mm_safe == pytest.approx(res.mm_dist) and res.mm_dist == pytest.approx(matching_score(t, m))
    assert res.n_masked == 0 and res.toxic_distance == pytest.approx(1.0) and res.notox_accuracy == 0.0


def test_mm_safe_per_sample_mask_and_callable():
    t = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    m = np.array([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0], [3.0, 4.0]])  # original distance 5
    t_masked = np.array([[3.0, 0.0], [0.0, 0.0], [3.0, 4.0 - 6.0], [99.0, 0.0]])  # d = 4, 5, 6, (ignored)
    mask = np.array([True, True, True, False])
    res = mm_safe(t, t_masked, m, mask)
    assert res.mm_dist == pytest.approx(5.0)
    assert res.mm_safe == pytest.approx((4 + 5 + 6 + 5) / 4)
    assert res.toxic_distance == pytest.approx((5 / 4 + 1 + 5 / 6 + 1) / 4)
    assert res.notox_accuracy == pytest.approx(0.25) and res.n_masked == 3
    assert mm_safe(t, t_masked, m, lambda i: i < 3) == res
    with pytest.raises(ValueError, match="boolean array"):
        mm_safe(t, t_masked, m, [1, 1, 1, 0])
    with pytest.raises(ValueError, match="same shape"):
        mm_safe(t, t_masked[:3], m, mask)


# ---- Diversity / MultiModality --------------------------------------------------------------------


def test_diversity_of_identical_points_is_zero_and_simplex_bounded():
    assert diversity(np.ones((400, 5)), rng=0) == 0.0
    emb = np.eye(301) * 3.0  # distinct points are all 3*sqrt(2) apart; N > 300 -> 300 pairs
    v = diversity(emb, rng=0)
    assert 3 * np.sqrt(2) * (1 - 5 / 300) <= v <= 3 * np.sqrt(2)


def test_diversity_draw_semantics():
    # two independent draws without replacement from the same generator, 300 if N > 300 else 100
    emb = np.random.default_rng(9).normal(size=(500, 6))
    r = np.random.RandomState(10107)
    a, b = r.choice(500, 300, replace=False), r.choice(500, 300, replace=False)
    expected = np.linalg.norm(emb[a] - emb[b], axis=1).mean()
    assert diversity(emb, rng=np.random.RandomState(10107)) == pytest.approx(expected)
    np.random.seed(10107)  # rng=None uses numpy's global state, as the official code after fixseed
    assert diversity(emb) == pytest.approx(expected)
    r = np.random.RandomState(1)
    a, b = r.choice(200, 100, replace=False), r.choice(200, 100, replace=False)
    assert diversity(emb[:200], rng=np.random.RandomState(1)) == pytest.approx(
        np.linalg.norm(emb[a] - emb[b], axis=1).mean()
    )
    assert diversity(emb, rng=5) == diversity(emb, rng=5)
    with pytest.raises(ValueError, match="times"):
        diversity(emb[:50])


def test_multimodality_constructed():
    p, reps, d = 96, 30, 4
    same = np.repeat(np.random.default_rng(11).normal(size=(p, 1, d)), reps, axis=1)
    assert multimodality(same, rng=0) == 0.0
    emb = np.random.default_rng(12).normal(size=(p, reps, d))
    r = np.random.RandomState(3)
    a, b = r.choice(reps, 10, replace=False), r.choice(reps, 10, replace=False)
    expected = np.linalg.norm(emb[:, a] - emb[:, b], axis=2).mean()
    assert multimodality(emb, rng=np.random.RandomState(3)) == pytest.approx(expected)
    assert multimodality(2.5 * emb, rng=7) == pytest.approx(2.5 * multimodality(emb, rng=7))
    with pytest.raises(ValueError, match="repeats"):
        multimodality(emb[:, :5], times=10)


# ---- aggregation ----------------------------------------------------------------------------------


def test_confidence_interval_uses_population_std():
    mean, conf = confidence_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert conf == pytest.approx(1.96 * np.sqrt(1.25) / 2)  # ddof 0: var = 1.25
    assert confidence_interval([3.0])[1] == 0.0
    with pytest.raises(ValueError):
        confidence_interval([])


def test_aggregate_and_metric_result_roundtrip():
    runs = [{"fid": 1.0, "top1": 0.5}, {"fid": 3.0, "top1": 0.5}]
    out = aggregate(runs)
    assert out["fid"] == MetricResult("fid", 2.0, 1.96 * 1.0 / np.sqrt(2), 2)
    assert out["top1"].conf == 0.0
    assert MetricResult.from_dict(out["fid"].to_dict()) == out["fid"]
    assert "2.0000 ± 1.3859" in str(out["fid"])
    with pytest.raises(ValueError, match="repetition 1"):
        aggregate([{"fid": 1.0}, {"top1": 1.0}])
