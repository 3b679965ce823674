"""models.common building blocks: schedule, ranking, top-k, samplers, CFG, positional encoding."""

from __future__ import annotations

import math

import pytest
import torch

from models.common import mask_count_schedule, num_masked
from models.common.position import PositionalEncoding
from models.common.sampling import categorical_sample, cfg_combine, gumbel_sample, lowest_k_mask, top_k_filter, uniform


def test_mask_count_schedule_matches_reference_examples():
    assert mask_count_schedule(49, 10) == [49, 48, 46, 42, 38, 31, 24, 17, 9, 1]
    assert mask_count_schedule(49, 18) == [49, 49, 48, 47, 46, 44, 42, 39, 36, 33, 30, 26, 22, 18, 13, 9, 5,
                                           1]
    assert mask_count_schedule(3, 1) == [3]


def test_num_masked_rounds_half_to_even_and_clamps_to_one():
    assert num_masked(0.5, torch.tensor([5, 3, 1])).tolist() == [2, 2, 1]
    assert num_masked(0.0, torch.tensor([7])).tolist() == [1]


def test_lowest_k_mask_selects_lowest_scores():
    scores = torch.tensor([[0.5, 0.1, 1e5, 0.3], [0.9, 0.8, 0.7, 0.6]])
    mask = lowest_k_mask(scores, torch.tensor([2, 1]))
    assert mask.tolist() == [[False, True, False, True], [False, False, False, True]]


def test_top_k_filter_keeps_ceil_fraction():
    logits = torch.randn(3, 512)
    filtered = top_k_filter(logits, 0.9)
    assert (torch.isfinite(filtered).sum(-1) == 52).all()  # ceil(0.1 * 512)
    assert (torch.isfinite(top_k_filter(torch.randn(2, 513), 0.9)).sum(-1) == 52).all()
    kept = torch.isfinite(filtered)
    assert bool((filtered[kept] == logits[kept]).all())
    dropped_max = logits.masked_fill(kept, float("-inf")).amax(-1)
    assert bool((dropped_max <= filtered.masked_fill(~kept, 1e9).amin(-1)).all())
    with pytest.raises(ValueError, match="topk_filter_thres"):
        top_k_filter(logits, 1.0)


def test_categorical_sample_follows_the_distribution_and_is_seeded():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.log().expand(20000, 4)
    ids = categorical_sample(logits, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    assert int(freq[1]) == 0 and torch.allclose(freq, probs, atol=0.02)
    again = categorical_sample(logits, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)
    # temperature sharpens
    cold = categorical_sample(logits, 0.05, generator=torch.Generator().manual_seed(0))
    assert float((cold == 2).float().mean()) > 0.99
    with pytest.raises(ValueError, match="temperature"):
        categorical_sample(logits, 0.0)


def test_gumbel_sample_follows_the_distribution_and_argmax_at_zero_temperature():
    probs = torch.tensor([0.2, 0.5, 0.3])
    logits = probs.log().expand(20000, 3)
    ids = gumbel_sample(logits, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(ids, minlength=3).float() / len(ids)
    assert torch.allclose(freq, probs, atol=0.02)
    assert bool((gumbel_sample(logits, 0.0, torch.Generator().manual_seed(1)) == 1).all())


def test_per_row_generators_make_rows_independent_of_neighbours_and_padding():
    lengths = torch.tensor([3, 5])
    a = uniform((2, 5, 4), [torch.Generator().manual_seed(s) for s in (1, 2)], lengths=lengths)
    gens = [torch.Generator().manual_seed(s) for s in (7, 2, 1)]
    b = uniform((3, 9, 4), gens, lengths=torch.tensor([9, 5, 3]))
    assert torch.equal(a[0, :3], b[2, :3]) and torch.equal(a[1], b[1, :5])
    assert bool((a[0, 3:] == 0).all())
    with pytest.raises(ValueError, match="generators"):
        uniform((2, 3), [torch.Generator()])


def test_cfg_combine():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert cfg_combine(c, u, 4.0).item() == 5.0 and cfg_combine(c, u, 1.0).item() == 2.0


def test_positional_encoding_table_and_offset():
    pe = PositionalEncoding(8, dropout=0.0, max_len=50)
    assert pe.pe.shape == (50, 1, 8)
    p, i = 7, 2
    assert math.isclose(pe.pe[p, 0, 2 * i].item(), math.sin(p / 10000 ** (2 * i / 8)), rel_tol=1e-5)
    assert math.isclose(pe.pe[p, 0, 2 * i + 1].item(), math.cos(p / 10000 ** (2 * i / 8)), rel_tol=1e-5)
    x = torch.zeros(4, 2, 8)
    torch.testing.assert_close(pe(x), pe.pe[:4].expand(4, 2, 8))
    torch.testing.assert_close(pe(x, offset=1), pe.pe[1:5].expand(4, 2, 8))  # BAMM: text token at 0
    with pytest.raises(ValueError, match="exceeds"):
        pe(torch.zeros(51, 1, 8))
