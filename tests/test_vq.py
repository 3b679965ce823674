"""RVQ-VAE: official state-dict layout, encode/decode, quantizer semantics and training behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.vq import RVQVAE, VQConfig, vq_loss
from models.vq.quantizer import ResidualVQ

W = 512


def _resnet(prefix: str) -> dict[str, tuple[int, ...]]:
    keys = {}
    for i in range(3):
        keys[f"{prefix}.model.{i}.conv1.weight"] = (W, W, 3)
        keys[f"{prefix}.model.{i}.conv1.bias"] = (W,)
        keys[f"{prefix}.model.{i}.conv2.weight"] = (W, W, 1)
        keys[f"{prefix}.model.{i}.conv2.bias"] = (W,)
    return keys


def _expected_vq_keys(dim_pose: int = 263) -> dict[str, tuple[int, ...]]:
    keys = {"encoder.model.0.weight": (W, dim_pose, 3), "encoder.model.0.bias": (W,)}
    for s in (2, 3):
        keys[f"encoder.model.{s}.0.weight"] = (W, W, 4)
        keys[f"encoder.model.{s}.0.bias"] = (W,)
        keys.update(_resnet(f"encoder.model.{s}.1"))
    keys |= {"encoder.model.4.weight": (W, W, 3), "encoder.model.4.bias": (W,)}
    keys |= {"decoder.model.0.weight": (W, W, 3), "decoder.model.0.bias": (W,)}
    for s in (2, 3):
        keys.update(_resnet(f"decoder.model.{s}.0"))
        keys[f"decoder.model.{s}.2.weight"] = (W, W, 3)
        keys[f"decoder.model.{s}.2.bias"] = (W,)
    keys |= {"decoder.model.4.weight": (W, W, 3), "decoder.model.4.bias": (W,),
             "decoder.model.6.weight": (dim_pose, W, 3), "decoder.model.6.bias": (dim_pose,)}
    keys |= {f"quantizer.layers.{q}.codebook": (512, 512) for q in range(6)}
    return keys


TINY = VQConfig(nb_code=32, code_dim=16, output_emb_width=16, width=16, depth=2, num_quantizers=3)


def _tiny(seed: int = 0, **kw) -> RVQVAE:
    torch.manual_seed(seed)
    model = RVQVAE(VQConfig.from_dict({**TINY.to_dict(), **kw}))
    for layer in model.quantizer.layers:  # a random codebook, as if loaded from a checkpoint
        layer.codebook.normal_()
    return model.eval()


@pytest.mark.parametrize("dim_pose", [263, 251])
def test_official_state_dict_keys_and_shapes(dim_pose):
    with torch.device("meta"):
        model = RVQVAE(VQConfig(dim_pose=dim_pose))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == _expected_vq_keys(dim_pose)
    assert len(shapes) == 72
    if dim_pose == 263:
        assert sum(torch.Size(s).numel() for s in shapes.values()) == 21_009_671
        assert sum(p.numel() for p in model.parameters()) == 19_436_807
    buffers = {k for k, _ in model.named_buffers()}
    assert buffers == {f"quantizer.layers.{q}.codebook" for q in range(6)}


def test_resnet_dilations_are_9_3_1_in_encoder_and_decoder():
    with torch.device("meta"):
        model = RVQVAE()
    for stack in (model.encoder.model[2][1], model.encoder.model[3][1],
                  model.decoder.model[2][0], model.decoder.model[3][0]):
        assert [blk.conv1.dilation[0] for blk in stack.model] == [9, 3, 1]
        assert [blk.conv1.padding[0] for blk in stack.model] == [9, 3, 1]


def test_residual_block_is_pre_activation():
    model = _tiny()
    blk = model.encoder.model[2][1].model[0]
    x = torch.randn(2, 16, 8)
    expected = blk.conv2(F.relu(blk.conv1(F.relu(x)))) + x
    torch.testing.assert_close(blk(x), expected)


def test_config_round_trip_and_validation():
    cfg = VQConfig(dim_pose=251, num_quantizers=3)
    assert VQConfig.from_dict(cfg.to_dict()) == cfg
    assert VQConfig(norm="None").norm is None  # opt.txt stores the string 'None'
    assert VQConfig().unit_length == 4
    with pytest.raises(ValueError, match="unknown VQConfig keys"):
        VQConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="code_dim"):
        VQConfig(code_dim=256)
    with pytest.raises(ValueError, match="norm"):
        VQConfig(norm="LN")


def test_encode_decode_shapes_and_residual_quantisation():
    model = _tiny()
    x = torch.randn(2, 24, 263)
    ids = model.encode(x)
    assert ids.shape == (2, 6, 3) and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < 32
    # layer q picks the nearest code to the residual left by layers < q
    z = model.encoder(x.permute(0, 2, 1)).permute(0, 2, 1).reshape(-1, 16)
    residual = z
    for q, layer in enumerate(model.quantizer.layers):
        expected = torch.cdist(residual, layer.codebook).argmin(-1)
        assert torch.equal(ids.reshape(-1, 3)[:, q], expected)
        residual = residual - layer.codebook[expected]
    out = model.forward_decoder(ids)
    assert out.shape == (2, 24, 263) and torch.isfinite(out).all()


def test_decoder_treats_missing_layers_and_minus_one_as_zero_vectors():
    model = _tiny()
    ids = model.encode(torch.randn(1, 16, 263))
    padded = torch.cat([ids[..., :1], torch.full_like(ids[..., 1:], -1)], dim=-1)
    torch.testing.assert_close(model.forward_decoder(ids[..., :1]), model.forward_decoder(padded))
    torch.testing.assert_close(model.forward_decoder(ids[..., 0]), model.forward_decoder(ids[..., :1]))
    blank = model.forward_decoder(torch.full((1, 4, 3), -1))
    torch.testing.assert_close(blank, model.decoder(torch.zeros(1, 16, 4)).permute(0, 2, 1))
    latent = model.quantizer.dequantize(ids)
    manual = sum(model.quantizer.layers[q].codebook[ids[..., q]] for q in range(3))
    torch.testing.assert_close(latent, manual)


def test_bad_inputs_raise_value_errors():
    model = _tiny()
    with pytest.raises(ValueError, match="multiple of 4"):
        model.encode(torch.randn(1, 10, 263))
    with pytest.raises(ValueError, match=r"\(B, T, 263\)"):
        model.encode(torch.randn(1, 12, 100))
    with pytest.raises(ValueError, match="quantizer layers"):
        model.forward_decoder(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[-1, 31\]"):
        model.forward_decoder(torch.full((1, 4, 1), 32))


def test_training_initialises_codebook_from_first_batch_then_updates_by_ema():
    torch.manual_seed(0)
    model = RVQVAE(VQConfig.from_dict({**TINY.to_dict(), "quantize_dropout_prob": 0.0})).train()
    x = torch.randn(4, 32, 263)  # 4 * 8 = 32 latent rows = nb_code: taken as they are
    first = model.quantizer.layers[0]
    assert not first.initialized
    g = torch.Generator().manual_seed(0)
    recon, commit, perplexity = model(x, generator=g)
    assert recon.shape == x.shape and commit.ndim == 0 and perplexity > 1
    assert first.initialized
    # after init (codebook = z rows) the EMA moves codes towards assigned vectors: not a parameter update
    assert not any("codebook" in name for name, _ in model.named_parameters())
    assert first.code_count is not None and first.code_count.shape == (32,)
    before = first.codebook.clone()
    model(x, generator=g)
    assert not torch.equal(before, first.codebook)
    loss, _, _ = model.loss(x, generator=g)
    loss.backward()
    assert model.encoder.model[0].weight.grad is not None and torch.isfinite(loss)


def test_loaded_codebook_is_not_reinitialised_by_training():
    src = _tiny(seed=1)
    dst = RVQVAE(VQConfig.from_dict(TINY.to_dict()))
    dst.load_state_dict(src.state_dict())
    assert all(layer.initialized for layer in dst.quantizer.layers)
    torch.testing.assert_close(dst.quantizer.layers[0].codebook, src.quantizer.layers[0].codebook)


def test_quantizer_dropout_keeps_a_prefix_of_layers():
    rvq = ResidualVQ(4, 8, 4, mu=0.99, quantize_dropout_prob=1.0).train()
    g = torch.Generator().manual_seed(3)
    kept = set()
    for _ in range(20):
        _, ids, _, _ = rvq(torch.randn(16, 4), generator=g)
        active = (ids[0] >= 0).tolist()
        n = sum(active)
        assert active == [True] * n + [False] * (4 - n) and n >= 1
        assert bool((ids[:, n:] == -1).all())
        kept.add(n)
    assert len(kept) > 1  # s ~ U{0..Q-1} varies between batches
    rvq.eval()
    _, ids, _, _ = rvq(torch.randn(16, 4))
    assert bool((ids >= 0).all())  # no dropout at eval


def test_training_code_selection_is_stochastic_but_eval_is_argmin():
    layer = ResidualVQ(1, 16, 4, mu=0.99, quantize_dropout_prob=0.0).layers[0]
    layer._start_ema(torch.randn(16, 4))
    x = torch.randn(200, 4)
    nearest = layer.quantize(x)
    layer.eval()
    assert torch.equal(layer(x)[1], nearest)
    layer.train()
    _, sampled, _, _ = layer(x, sample_temp=0.5, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(sampled, nearest)


def test_vq_loss_formula():
    target = torch.randn(2, 8, 263)
    recon = target + 0.3
    commit = torch.tensor(2.0)
    ric = slice(4, 4 + 21 * 3)
    expected = (F.smooth_l1_loss(recon, target) + 0.5 * F.smooth_l1_loss(recon[..., ric], target[..., ric])
                + 0.02 * commit)
    torch.testing.assert_close(vq_loss(recon, target, commit), expected)
    torch.testing.assert_close(vq_loss(target, target, commit), torch.tensor(0.04))
    with pytest.raises(ValueError, match="shapes differ"):
        vq_loss(recon[:, :4], target, commit)


def test_ema_init_and_dead_code_reset():
    from models.vq.quantizer import QuantizeEMAReset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4)
    frozen = QuantizeEMAReset(8, 4, mu=1.0).train()  # mu = 1: the EMA keeps the initial codebook
    frozen(x, generator=g)
    torch.testing.assert_close(frozen.codebook, x[:8])  # first batch rows (enough rows: no tiling)

    layer = QuantizeEMAReset(8, 4, mu=0.0).train()  # mu = 0: codebook = this batch's statistics
    layer._start_ema(torch.randn(8, 4) * 10)  # far-away codes: most of them get no assignment
    ids = layer.quantize(x)
    layer(x, generator=g)
    for k in range(8):
        members = x[ids == k]
        if len(members) >= 1:  # used code -> mean of its members
            torch.testing.assert_close(layer.codebook[k], members.mean(0))
        else:  # dead code -> reset to one of the current inputs
            assert bool((layer.codebook[k] == x).all(dim=1).any())
    assert int((torch.bincount(ids, minlength=8) == 0).sum()) >= 1  # the reset branch was exercised
