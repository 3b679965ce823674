"""BAMM base transformer: attention mask, forward pass, two-pass generation, editing and the training loss."""

from __future__ import annotations

import pytest
import torch

from models.bamm import BAMMTransformer
from models.bamm.attention import attention_allowed, blocked_per_head, condition_positions
from models.common.sampling import categorical_sample, lowest_k_mask, num_masked, uniform
from models.momask import TransformerConfig

K = 12  # codes 0..11, end 12, pad 13, mask 14
COND_DIM = 8


def tiny(dropout: float = 0.0, seed: int = 0) -> BAMMTransformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(code_dim=16, latent_dim=16, ff_size=32, num_layers=2, num_heads=2,
                            dropout=dropout, cond_dim=COND_DIM, num_tokens=K)
    return BAMMTransformer(cfg).eval()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def conds(b: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, COND_DIM, generator=gen(seed))


# ------------------------------------------------------------------ attention mask
def test_attention_mask_hand_checked():
    pad = 13
    # 4 tokens; token 1 (sequence position 2) is a condition; the text (position 0) always is
    cond_pos = condition_positions(torch.tensor([[pad, 7, pad, pad]]), pad, 1, 4)
    assert cond_pos.tolist() == [[True, False, True, False, False]]
    expected = torch.tensor([
        [1, 0, 1, 0, 0],  # condition query: all condition positions, nothing else
        [1, 1, 1, 0, 0],  # causal (0, 1) + the future condition 2
        [1, 0, 1, 0, 0],  # condition query
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(attention_allowed(cond_pos)[0], expected)
    # no token conditions: purely causal
    plain = attention_allowed(condition_positions(None, pad, 2, 4))
    assert torch.equal(plain, torch.ones(5, 5, dtype=torch.bool).tril().expand(2, 5, 5))


def test_blocked_mask_is_per_head_repeat_interleave():
    allowed = torch.rand(2, 3, 3) > 0.5
    blocked = blocked_per_head(allowed, num_heads=3)
    assert blocked.shape == (6, 3, 3)
    for b in range(2):
        for h in range(3):
            assert torch.equal(blocked[b * 3 + h], ~allowed[b])


def test_condition_positions_rejects_wrong_shape():
    with pytest.raises(ValueError, match="cond_idx"):
        condition_positions(torch.zeros(2, 3, dtype=torch.long), 13, 2, 4)


# ------------------------------------------------------------------ forward
def test_forward_shapes_and_causality_with_conditions():
    m = tiny()
    ids = torch.randint(0, K, (1, 6), generator=gen(0))
    cond_idx = torch.full_like(ids, m.pad_id)
    cond_idx[0, 4] = ids[0, 4]  # token 4 (sequence position 5) is a condition
    c = conds(1)
    base = m.forward_logits(ids, c, cond_idx)
    assert base.shape == (1, 7, K + 1)

    later = ids.clone()
    later[0, 2] = (ids[0, 2] + 1) % K  # a non-condition token at sequence position 3
    out = m.forward_logits(later, c, cond_idx)
    assert torch.allclose(out[:, :3], base[:, :3])           # earlier positions cannot see it
    assert not torch.allclose(out[:, 3:5], base[:, 3:5])     # later non-condition positions can
    assert torch.allclose(out[:, 5], base[:, 5])              # a condition query only sees conditions

    cond_changed = ids.clone()
    cond_changed[0, 4] = (ids[0, 4] + 1) % K
    out = m.forward_logits(cond_changed, c, cond_idx)
    assert not torch.allclose(out[:, 1], base[:, 1])          # future conditions are visible


def test_text_token_gets_positional_encoding_and_prefix_equivalence():
    m = tiny()
    c = conds(2)
    ids = torch.randint(0, K, (2, 5), generator=gen(3))
    logits = m.forward_logits(ids, c)
    # position 0 only sees itself: text token + pe[0]
    h0 = (m.cond_emb(c) + m.position_enc.pe[0]).unsqueeze(0)
    assert torch.allclose(logits[:, 0], m.output_process(m.seqTransEncoder(h0))[:, 0], atol=1e-5)
    # causal without conditions: the logits at position k only depend on the prefix ids[:, :k]
    for k in range(6):
        assert torch.allclose(m.forward_logits(ids[:, :k], c)[:, k], logits[:, k], atol=1e-5)


def test_batched_rows_use_their_own_mask():
    m = tiny()
    ids = torch.randint(0, K, (2, 6), generator=gen(4))
    cond_idx = torch.where(torch.rand(2, 6, generator=gen(5)) < 0.5, ids, m.pad_id)
    c = conds(2)
    both = m.forward_logits(ids, c, cond_idx)
    for b in range(2):
        one = m.forward_logits(ids[b:b + 1], c[b:b + 1], cond_idx[b:b + 1])
        assert torch.allclose(both[b], one[0], atol=1e-5)


def test_cfg_by_batch_doubling():
    m = tiny()
    ids = torch.randint(0, K, (2, 4), generator=gen(6))
    c = conds(2)
    l_c = m.forward_logits(ids, c)
    l_u = m.forward_logits(ids, c, force_mask=True)
    assert torch.allclose(l_u, m.forward_logits(ids, torch.zeros_like(c)))
    guided = m.forward_with_cond_scale(ids, c, cond_scale=4.0)
    assert torch.allclose(guided, l_u + 4.0 * (l_c - l_u), atol=1e-5)
    assert torch.allclose(m.forward_with_cond_scale(ids, c, cond_scale=4.0, force_mask=True), l_u)


# ------------------------------------------------------------------ generation
def test_generate_with_given_lengths():
    m = tiny()
    lens = torch.tensor([3, 49, 1])
    ids, out_lens = m.generate(conds(3), lens, generator=gen(0))
    assert ids.shape == (3, 49) and ids.dtype == torch.long
    assert torch.equal(out_lens, lens)
    for b, n in enumerate(lens.tolist()):
        assert ((ids[b, :n] >= 0) & (ids[b, :n] < K)).all()
        assert (ids[b, n:] == -1).all()


def test_generate_predicts_lengths_and_is_deterministic():
    m = tiny()
    c = conds(4)
    ids, lens = m.generate(c, None, generator=gen(7))
    again, lens2 = m.generate(c, None, generator=gen(7))
    assert torch.equal(ids, again) and torch.equal(lens, lens2)
    assert ((lens >= 1) & (lens <= 49)).all()
    assert ids.shape == (4, int(lens.max()))
    for b, n in enumerate(lens.tolist()):
        assert ((ids[b, :n] >= 0) & (ids[b, :n] < K)).all()
        assert (ids[b, n:] == -1).all()
    other, _ = m.generate(c, None, generator=gen(8))
    assert not torch.equal(ids, other)


def test_generate_row_independent_of_batch_composition():
    m = tiny()
    c = conds(3)
    ids, lens = m.generate(c, None, generator=[gen(20), gen(21), gen(22)])
    alone, alone_len = m.generate(c[1:2], None, generator=[gen(21)])
    assert lens[1] == alone_len[0]
    n = int(lens[1])
    assert torch.equal(ids[1, :n], alone[0, :n])
    given, _ = m.generate(c, torch.tensor([5, 9, 2]), generator=[gen(30), gen(31), gen(32)])
    given_alone, _ = m.generate(c[2:3], torch.tensor([2]), generator=[gen(32)])
    assert torch.equal(given[2, :2], given_alone[0])


def test_generate_length_extremes_from_the_end_logit():
    m = tiny()
    with torch.no_grad():
        m.output_process.poseFinal.bias[m.end_id] = 100.0  # end token sampled right away
    ids, lens = m.generate(conds(2), None, generator=gen(0))
    assert lens.tolist() == [1, 1]                           # forced length >= 1
    assert ids.shape == (2, 1) and ((ids >= 0) & (ids < K)).all()
    with torch.no_grad():
        m.output_process.poseFinal.bias[m.end_id] = -100.0  # end never sampled -> all 49 slots
    ids, lens = m.generate(conds(2), None, generator=gen(0))
    assert lens.tolist() == [49, 49] and (ids >= 0).all()


def test_second_pass_resamples_half_and_keeps_the_rest(monkeypatch):
    m = tiny()
    calls = []
    inner = m._autoregress

    def spy(ids, cond, cond_idx, *args, **kwargs):
        out = inner(ids, cond, cond_idx, *args, **kwargs)
        calls.append((ids.clone(), cond_idx, out))
        return out

    monkeypatch.setattr(m, "_autoregress", spy)
    lens = torch.tensor([5, 1, 20])
    ids, _ = m.generate(conds(3), lens, generator=gen(2))
    (_, first_idx, draft), (pass2_in, cond_idx, _) = calls
    assert first_idx is None
    for b, n in enumerate(lens.tolist()):
        kept = (cond_idx[b] != m.pad_id).nonzero().flatten().tolist()
        n_resampled = max(1, round(0.5 * n))   # torch.round: round-half-to-even -> 2 for n = 5
        assert n_resampled == {5: 2, 1: 1, 20: 10}[n]
        assert kept[-1] == n and cond_idx[b, n] == m.end_id  # the end token is a condition
        kept_codes = kept[:-1]
        assert len(kept_codes) == n - n_resampled and all(j < n for j in kept_codes)
        assert torch.equal(ids[b, kept_codes], draft[b, kept_codes])  # kept draft tokens restored
        assert torch.equal(pass2_in[b, :n], draft[b, :n])
        assert (pass2_in[b, n + 1:] == m.pad_id).all()


def test_generate_rejects_bad_input():
    m = tiny()
    with pytest.raises(ValueError, match="cond"):
        m.generate(torch.zeros(2, COND_DIM + 1), None)
    with pytest.raises(ValueError, match="exceeds"):
        m.generate(conds(1), torch.tensor([50]))
    with pytest.raises(ValueError, match=">= 1"):
        m.generate(conds(1), torch.tensor([0]))
    with pytest.raises(ValueError, match="generator"):
        m.generate(conds(2), None, generator=[gen(1)])


# ------------------------------------------------------------------ editing
def test_edit_keeps_given_tokens():
    m = tiny()
    tokens = torch.full((2, 10), -1)
    tokens[:, :3] = torch.tensor([1, 2, 3])
    tokens[1, 7] = 9
    out = m.edit(tokens, conds(2), generator=gen(0))
    assert out.shape == (2, 10)
    given = tokens >= 0
    assert torch.equal(out[given], tokens[given])
    assert ((out >= 0) & (out < K)).all()
    uncond = m.edit(tokens, None, generator=[gen(1), gen(2)])
    assert torch.equal(uncond[given], tokens[given])
    with pytest.raises(ValueError, match="cond_tokens"):
        m.edit(torch.full((1, 4), K + 5), None)


# ------------------------------------------------------------------ training loss
def test_loss_finite_and_ignores_tokens_after_length():
    m = tiny().train()
    ids = torch.randint(0, K, (3, 8), generator=gen(0))
    lens = torch.tensor([8, 3, 5])
    c = conds(3)
    loss, acc = m.loss(ids, c, lens, generator=gen(1))
    assert loss.ndim == 0 and torch.isfinite(loss) and 0.0 <= float(acc) <= 1.0
    garbage = ids.clone()
    garbage[1, 3:] = 99  # past the length: not even a valid code
    loss2, _ = m.loss(garbage, c, lens, generator=gen(1))
    assert torch.allclose(loss, loss2)
    bad = ids.clone()
    bad[0, 0] = K
    with pytest.raises(ValueError, match="valid positions"):
        m.loss(bad, c, lens)
    with pytest.raises(ValueError, match="exceeds"):
        m.loss(ids, c, torch.tensor([9, 1, 1]))


def test_loss_decreases_when_overfitting_a_tiny_batch():
    m = tiny().train()
    ids = torch.randint(0, K, (4, 10), generator=gen(0))
    lens = torch.tensor([10, 6, 4, 8])
    c = conds(4)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = gen(5)
    losses = []
    for _ in range(40):
        loss, _ = m.loss(ids, c, lens, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def _reference_generate(m, c, lens, generators):
    """The official two-pass loop written plainly: all 49 steps over the full 50 slots in both passes,
    one draw per row and token before the row's end (the draws `generate` makes) -> ids (B, max len)."""
    b, n = c.shape[0], m.max_tokens
    pos = torch.arange(n + 1).unsqueeze(0)
    valid, lcol = pos < lens.unsqueeze(1), lens.unsqueeze(1)

    def sweep(ids, cond_idx, scale):
        for k in range(n):
            logits = m.forward_with_cond_scale(ids if cond_idx is not None else ids[:, :k], c, cond_idx, scale)
            active = (lens > k).long()
            drawn = categorical_sample(logits[:, k, :m.end_id].unsqueeze(1), 1.0, generators, active).squeeze(1)
            ids[:, k] = torch.where(active.bool(), drawn, ids[:, k])
        return ids

    with torch.no_grad():
        ids = sweep(torch.full((b, n + 1), m.pad_id), None, 4.0)
        ids = torch.where(valid, ids, m.pad_id).masked_fill(pos == lcol, m.end_id)
        scores = uniform((b, n + 1), generators).masked_fill(~valid, 2.0)
        keep = (valid & ~lowest_k_mask(scores, num_masked(0.5, lens))) | (pos == lcol)
        cond_idx = torch.where(keep, ids, m.pad_id)
        ids = torch.where(keep, cond_idx, sweep(ids, cond_idx, 3.0))
    return torch.where(valid, ids, -1)[:, : int(lens.max())]


def test_trimmed_generation_equals_the_full_length_loop():
    """`generate` stops each pass at the longest row and runs pass 2 on max(len) + 1 slots only; the result
    must equal the plain 49-step, 50-slot loop."""
    m = tiny().eval()
    lens = torch.tensor([7, 3, 12])
    c = conds(3)
    fast, _ = m.generate(c, lens, generator=[gen(40), gen(41), gen(42)])
    slow = _reference_generate(m, c, lens, [gen(40), gen(41), gen(42)])
    assert fast.shape == slow.shape == (3, 12)
    assert torch.equal(fast, slow)
