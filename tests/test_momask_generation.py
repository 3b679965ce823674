"""MaskTransformer / ResidualTransformer / LengthEstimator behaviour on small random-weight configs."""

from __future__ import annotations

import pytest
import torch

from models.common.sampling_config import SamplingConfig
from models.momask import LengthEstimator, MaskTransformer, ResidualTransformer, TransformerConfig

CFG = TransformerConfig(code_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=2, dropout=0.1,
                        cond_dim=12, num_tokens=40, num_quantizers=4)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def base() -> MaskTransformer:
    torch.manual_seed(0)
    return MaskTransformer(CFG).eval()


@pytest.fixture(scope="module")
def residual() -> ResidualTransformer:
    torch.manual_seed(1)
    return ResidualTransformer(CFG).eval()


@pytest.fixture(scope="module")
def cond() -> torch.Tensor:
    return torch.randn(3, 12, generator=_gen(5))


LENS = torch.tensor([7, 12, 1])


# ------------------------------------------------------------------------------------- base layer
def test_generate_shapes_pads_and_range(base, cond):
    ids = base.generate(cond, LENS, sampling=SamplingConfig(timesteps=5), generator=_gen(0))
    assert ids.shape == (3, 12) and ids.dtype == torch.long
    valid = torch.arange(12)[None] < LENS[:, None]
    assert bool((ids[~valid] == -1).all())
    assert bool(((ids[valid] >= 0) & (ids[valid] < 40)).all())


@pytest.mark.parametrize("gsample", [False, True])
def test_generate_is_deterministic_by_seed(base, cond, gsample):
    a = base.generate(cond, LENS, sampling=SamplingConfig(timesteps=4, gsample=gsample), generator=_gen(1))
    b = base.generate(cond, LENS, sampling=SamplingConfig(timesteps=4, gsample=gsample), generator=_gen(1))
    c = base.generate(cond, LENS, sampling=SamplingConfig(timesteps=4, gsample=gsample), generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_restores_training_mode(base, cond):
    base.train()
    base.generate(cond, LENS, sampling=SamplingConfig(timesteps=2), generator=_gen(0))
    assert base.training
    base.eval()


def test_generate_row_is_independent_of_batch_neighbours(base, cond):
    alone = base.generate(cond[1:2], LENS[1:2], sampling=SamplingConfig(timesteps=4), generator=[_gen(3)])
    batched = base.generate(cond, torch.tensor([20, 12, 3]), sampling=SamplingConfig(timesteps=4),
                            generator=[_gen(9), _gen(3), _gen(4)])
    assert torch.equal(alone[0], batched[1, :12])


def test_masked_counts_follow_the_cosine_schedule_and_shrink_monotonically(base):
    seen: list[torch.Tensor] = []
    original = base.forward_with_cond_scale

    def spy(ids, *args, **kwargs):
        seen.append(ids == base.mask_id)
        return original(ids, *args, **kwargs)

    base.forward_with_cond_scale = spy
    try:
        base.generate(torch.randn(1, 12), torch.tensor([49]), sampling=SamplingConfig(timesteps=10),
                      generator=_gen(0))
    finally:
        del base.forward_with_cond_scale
    assert [int(m.sum()) for m in seen] == [49, 48, 46, 42, 38, 31, 24, 17, 9, 1]
    for prev, cur in zip(seen, seen[1:], strict=False):
        assert bool((cur <= prev).all())  # tokens kept at one step are never re-masked


def test_greedy_single_step_equals_argmax_of_guided_logits(base, cond):
    """k = 1 top-k + Gumbel: the sample is the argmax of the CFG-combined logits of the all-mask input."""
    greedy = SamplingConfig(timesteps=1, cond_scale=3.0, topk_filter_thres=0.99, gsample=True)
    ids = base.generate(cond, LENS, sampling=greedy, generator=_gen(0))
    pad = torch.arange(12)[None] >= LENS[:, None]
    start = torch.where(pad, base.pad_id, base.mask_id)
    with torch.no_grad():
        logits = base.forward_with_cond_scale(start, cond, pad, cond_scale=3.0)
    expected = torch.where(pad, -1, logits.argmax(-1))
    assert torch.equal(ids, expected)


def test_cfg_conventions(base, cond):
    ids = torch.randint(0, 40, (3, 12), generator=_gen(0))
    pad = torch.arange(12)[None] >= LENS[:, None]
    with torch.no_grad():
        lc = base.forward_logits(ids, cond, pad)
        lu = base.forward_logits(ids, torch.zeros_like(cond), pad)
        assert lc.shape == (3, 12, 40)
        torch.testing.assert_close(base.forward_logits(ids, cond, pad, force_mask=True), lu)
        torch.testing.assert_close(base.forward_with_cond_scale(ids, cond, pad, 1.0), lc)
        torch.testing.assert_close(base.forward_with_cond_scale(ids, cond, pad, 4.0), lu + 4.0 * (lc - lu))
        torch.testing.assert_close(base.forward_with_cond_scale(ids, cond, pad, 4.0, force_mask=True), lu)


def test_pad_tokens_are_not_attended(base, cond):
    ids = torch.randint(0, 40, (3, 12), generator=_gen(0))
    pad = torch.arange(12)[None] >= LENS[:, None]
    other = torch.where(pad, torch.randint(0, 40, (3, 12), generator=_gen(1)), ids)
    with torch.no_grad():
        a, b = base.forward_logits(ids, cond, pad), base.forward_logits(other, cond, pad)
    torch.testing.assert_close(a[~pad], b[~pad])


def test_edit_keeps_tokens_outside_the_edit_mask(base, cond):
    src = torch.randint(0, 40, (3, 12), generator=_gen(0))
    edit = torch.zeros(3, 12, dtype=torch.bool)
    edit[:, 0:1] = True
    edit[:2, 3:6] = True
    out = base.edit(src, cond, LENS, edit_mask=edit, sampling=SamplingConfig(timesteps=4), generator=_gen(1))
    valid = torch.arange(12)[None] < LENS[:, None]
    keep = valid & ~edit
    assert torch.equal(out[keep], src[keep]) and bool((out[~valid] == -1).all())
    assert not torch.equal(out[edit & valid], src[edit & valid])
    free = base.edit(src, cond, LENS, sampling=SamplingConfig(timesteps=3), generator=_gen(1))  # mask-free mode
    assert free.shape == (3, 12) and bool((free[~valid] == -1).all())
    with pytest.raises(ValueError, match="no valid token"):
        base.edit(src, cond, LENS, edit_mask=torch.zeros(3, 12, dtype=torch.bool))


def test_generate_rejects_bad_inputs(base, cond):
    with pytest.raises(ValueError, match=r"\(B, 12\)"):
        base.generate(torch.randn(3, 5), LENS)
    with pytest.raises(ValueError, match=">= 1"):
        base.generate(cond, torch.tensor([3, 0, 2]))
    with pytest.raises(ValueError, match="entries"):
        base.generate(cond, torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="integer"):
        base.generate(cond, torch.tensor([3.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="timesteps"):
        base.generate(cond, LENS, sampling=SamplingConfig(timesteps=0))


def test_mask_loss_is_finite_differentiable_and_ignores_pad_content(base, cond):
    ids = torch.randint(0, 40, (3, 12), generator=_gen(0))
    base.eval()  # no dropout: the loss is a deterministic function of the generator
    loss, acc = base.loss(ids, cond, LENS, generator=_gen(1))
    assert torch.isfinite(loss) and 0.0 <= float(acc) <= 1.0
    pad = torch.arange(12)[None] >= LENS[:, None]
    other = torch.where(pad, torch.randint(0, 40, (3, 12), generator=_gen(2)), ids)
    again, _ = base.loss(other, cond, LENS, generator=_gen(1))
    torch.testing.assert_close(loss, again)
    base.train()
    loss, _ = base.loss(ids, cond, LENS, generator=_gen(1))
    loss.backward()
    assert base.token_emb.weight.grad is not None and base.cond_emb.weight.grad is not None
    base.zero_grad()
    base.eval()


def test_config_round_trip():
    assert TransformerConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown TransformerConfig keys"):
        TransformerConfig.from_dict({"clip_dim": 512})
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(latent_dim=30, num_heads=4)


# --------------------------------------------------------------------------------- residual layers
def test_residual_generate_shapes_pads_and_base_layer(residual, cond):
    base_ids = torch.randint(0, 40, (3, 12), generator=_gen(0))
    valid = torch.arange(12)[None] < LENS[:, None]
    base_ids = torch.where(valid, base_ids, -1)
    out = residual.generate(base_ids, cond, LENS, generator=_gen(1))
    assert out.shape == (3, 12, 4)
    assert torch.equal(out[..., 0], base_ids)
    assert bool((out[~valid] == -1).all())
    assert bool(((out[valid] >= -1) & (out[valid] < 40)).all())
    assert torch.equal(out, residual.generate(base_ids, cond, LENS, generator=_gen(1)))
    two = residual.generate(base_ids, cond, LENS, num_res_layers=2, generator=_gen(1))
    assert two.shape == (3, 12, 3) and torch.equal(two, out[..., :3])
    with pytest.raises(ValueError, match="num_res_layers"):
        residual.generate(base_ids, cond, LENS, num_res_layers=4)


def test_residual_row_is_independent_of_batch_neighbours(residual, cond):
    base_ids = torch.randint(0, 40, (3, 20), generator=_gen(0))
    alone = residual.generate(base_ids[1:2, :12], cond[1:2], LENS[1:2], generator=[_gen(3)])
    gens = [_gen(8), _gen(3), _gen(4)]
    batched = residual.generate(base_ids, cond, torch.tensor([20, 12, 2]), generator=gens)
    assert torch.equal(alone[0], batched[1, :12])


def test_residual_history_is_sum_of_lower_layer_embeddings(residual):
    ids = torch.randint(0, 41, (2, 5, 4), generator=_gen(0))
    embed, _ = residual.tables()
    upto = torch.tensor([1, 3])
    h = residual.embed_history(ids, upto)
    torch.testing.assert_close(h[0], embed[0][ids[0, :, 0]])
    torch.testing.assert_close(h[1], sum(embed[j][ids[1, :, j]] for j in range(3)))


def test_residual_shared_weight_assembly(residual):
    embed, proj = residual.tables()
    assert embed.shape == proj.shape == (3, 41, 16)
    for j in range(1, 3):  # layer j is predicted and embedded by the same matrix
        assert torch.equal(proj[j - 1], embed[j])
    assert torch.equal(embed[0], residual.token_embed_weight_[0])
    assert torch.equal(proj[2], residual.output_proj_weight_[0])


def test_residual_nonshared_projection_doubles_logits_and_adds_bias():
    torch.manual_seed(2)
    model = ResidualTransformer(TransformerConfig.from_dict({**CFG.to_dict(), "share_weight": False}))
    assert model.output_proj_bias.shape == (4, 41)
    with torch.no_grad():
        model.output_proj_bias.normal_()
    h = torch.randn(2, 5, 16)
    qids = torch.tensor([1, 3])
    logits = model.output_project(h, qids)
    for b in range(2):
        w, bias = model.output_proj_weight[qids[b] - 1], model.output_proj_bias[qids[b] - 1]
        torch.testing.assert_close(logits[b], 2 * h[b] @ w.t() + bias)


def test_residual_loss_is_finite_and_differentiable(residual, cond):
    all_ids = torch.randint(0, 40, (3, 12, 4), generator=_gen(0))
    residual.train()
    loss, acc = residual.loss(all_ids, cond, LENS, generator=_gen(1))
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= float(acc) <= 1.0
    assert residual.embed_proj_shared_weight.grad is not None
    residual.zero_grad()
    residual.eval()
    with pytest.raises(ValueError, match=r"\(B, L, 4\)"):
        residual.loss(all_ids[..., :3], cond, LENS)


def test_residual_rejects_shared_codebook():
    with pytest.raises(ValueError, match="shared_codebook"):
        ResidualTransformer(TransformerConfig(shared_codebook=True))


# --------------------------------------------------------------------------------- length estimator
def test_length_estimator_sampling():
    torch.manual_seed(0)
    est = LengthEstimator(12, 50)
    cond = torch.randn(4, 12)
    assert est(cond).shape == (4, 50)
    a = est.sample_token_lengths(cond, _gen(0))
    assert a.shape == (4,) and bool((a >= 1).all()) and bool((a < 50).all())
    assert torch.equal(a, est.sample_token_lengths(cond, _gen(0)))
    with torch.no_grad():  # all mass on class 0 -> clamped to 1
        est.output[11].bias.fill_(-1e4)
        est.output[11].bias[0] = 1e4
    assert est.sample_token_lengths(cond, _gen(0)).tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match=r"\(B, 12\)"):
        est(torch.randn(2, 5))
