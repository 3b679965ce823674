"""BAMM with `trans: t2mgpt` (bamm-differences.md §8.1): official key table, logits equal to the pre-norm block
formula written out here, the cached generation path, and loading from the official layout with strict=True."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from models.bamm import BAMMTransformer
from models.common.kv_cache import CachedCausalEncoder
from models.common.transformer_config import TransformerConfig
from models.io.official import save_official_layout
from models.io.opt import read_opt
from models.momask import MaskTransformer
from models.pipelines import BAMMPipeline, MotionPipeline

BLOCK_KEYS = [("ln1.weight", (384,)), ("ln1.bias", (384,)), ("ln2.weight", (384,)), ("ln2.bias", (384,)),
              *[(f"attn.{n}.{p}", (384, 384) if p == "weight" else (384,))
                for n in ("key", "query", "value", "proj") for p in ("weight", "bias")],
              ("mlp.0.weight", (1024, 384)), ("mlp.0.bias", (1024,)), ("mlp.2.weight", (384, 1024)),
              ("mlp.2.bias", (384,))]


def test_t2mgpt_keys_and_shapes_in_official_order():
    with torch.device("meta"):
        model = BAMMTransformer(TransformerConfig(num_layers=2, trans="t2mgpt"))
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = [
        ("input_process.poseEmbedding.weight", (384, 512)), ("input_process.poseEmbedding.bias", (384,)),
        ("position_enc.pe", (5000, 1, 384)),
        *[(f"seqTransEncoder.blocks.{i}.{k}", shape) for i in range(2) for k, shape in BLOCK_KEYS],
        ("cond_emb.weight", (384, 512)), ("cond_emb.bias", (384,)),
        ("output_process.dense.weight", (384, 384)), ("output_process.dense.bias", (384,)),
        ("output_process.LayerNorm.weight", (384,)), ("output_process.LayerNorm.bias", (384,)),
        ("output_process.poseFinal.weight", (513, 384)), ("output_process.poseFinal.bias", (513,)),
        ("token_emb.weight", (515, 512)),
    ]
    assert got == expected


def test_t2mgpt_is_bamm_only():
    with pytest.raises(ValueError, match="t2mgpt"):
        MaskTransformer(TransformerConfig(latent_dim=32, ff_size=64, num_layers=1, num_heads=2, trans="t2mgpt"))
    with pytest.raises(ValueError, match="trans"):
        TransformerConfig(trans="gpt")


def _tiny(trans: str = "t2mgpt", seed: int = 0) -> BAMMTransformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(code_dim=16, latent_dim=32, ff_size=48, num_layers=2, num_heads=4, dropout=0.1,
                            cond_dim=24, num_tokens=20, trans=trans)
    model = BAMMTransformer(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that every term of the formula matters
        for name, p in model.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "LayerNorm.weight")):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def _reference_logits(model: BAMMTransformer, ids, cond, cond_pos) -> torch.Tensor:
    """The official t2mgpt forward, written from the formula (batch-first, no shared helper of the model)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    heads, latent = model.cfg.num_heads, model.cfg.latent_dim
    c = cond @ sd["cond_emb.weight"].T + sd["cond_emb.bias"]                                       # (B, E)
    emb_w, emb_b = sd["input_process.poseEmbedding.weight"], sd["input_process.poseEmbedding.bias"]
    tok = sd["token_emb.weight"][ids] @ emb_w.T + emb_b
    x = torch.cat([c.unsqueeze(1), tok], dim=1)                                                    # (B, S, E)
    s = x.shape[1]
    x = x + sd["position_enc.pe"][:s, 0].unsqueeze(0)
    causal = torch.tril(torch.ones(s, s, dtype=torch.bool))
    allowed = torch.zeros(x.shape[0], s, s, dtype=torch.bool)
    for b in range(x.shape[0]):
        for i in range(s):
            for j in range(s):
                allowed[b, i, j] = bool(cond_pos[b, j]) or (not bool(cond_pos[b, i]) and bool(causal[i, j]))
    for i in range(model.cfg.num_layers):
        p = f"seqTransEncoder.blocks.{i}."
        h = F.layer_norm(x, (latent,), sd[p + "ln1.weight"], sd[p + "ln1.bias"], 1e-5)

        def proj(name, h=h, p=p):
            y = h @ sd[p + f"attn.{name}.weight"].T + sd[p + f"attn.{name}.bias"]
            return y.view(*y.shape[:2], heads, latent // heads).transpose(1, 2)               # (B, H, S, d)

        q, k, v = proj("query"), proj("key"), proj("value")
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(k.shape[-1]))
        att = att.masked_fill(~allowed.unsqueeze(1), float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(x.shape)
        x = x + y @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        h = F.layer_norm(x, (latent,), sd[p + "ln2.weight"], sd[p + "ln2.bias"], 1e-5)
        h = F.gelu(h @ sd[p + "mlp.0.weight"].T + sd[p + "mlp.0.bias"])
        x = x + h @ sd[p + "mlp.2.weight"].T + sd[p + "mlp.2.bias"]
    h = F.gelu(x @ sd["output_process.dense.weight"].T + sd["output_process.dense.bias"])
    h = F.layer_norm(h, (latent,), sd["output_process.LayerNorm.weight"], sd["output_process.LayerNorm.bias"], 1e-12)
    return h @ sd["output_process.poseFinal.weight"].T + sd["output_process.poseFinal.bias"]       # (B, S, K+1)


@pytest.mark.parametrize("with_conditions", [False, True])
def test_t2mgpt_logits_equal_the_pre_norm_block_formula(with_conditions):
    model = _tiny()
    g = torch.Generator().manual_seed(1)
    b, n = 3, 9
    ids = torch.randint(0, model.pad_id + 1, (b, n), generator=g)
    cond = torch.randn(b, 24, generator=g)
    cond_pos = torch.zeros(b, n + 1, dtype=torch.bool)
    cond_pos[:, 0] = True
    cond_idx = None
    if with_conditions:
        marks = torch.rand(b, n, generator=g) < 0.4
        cond_idx = torch.where(marks, ids, model.pad_id)
        cond_pos[:, 1:] = marks & (ids != model.pad_id)
    with torch.no_grad():
        got = model.forward_logits(ids, cond, cond_idx)
    expected = _reference_logits(model, ids, cond, cond_pos)
    assert got.shape == (b, n + 1, 21)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the formula is sensitive: a pre-norm stack is not the post-norm one with the same weights
    assert not torch.allclose(got, _tiny("official").forward_logits(ids, cond, cond_idx), atol=1e-3)


def test_t2mgpt_cache_steps_equal_the_full_causal_forward():
    model = _tiny()
    g = torch.Generator().manual_seed(2)
    b, n = 4, 8
    ids = torch.randint(0, model.num_tokens, (b, n), generator=g)
    cond = torch.randn(b, 24, generator=g)
    with torch.no_grad():
        full = model.forward_with_cond_scale(ids, cond, None, cond_scale=4.0)                   # (B, n+1, K+1)
        step = model._cached_causal_logits(cond, 4.0, False, n)
        cached = torch.stack([step(ids[:, k - 1] if k else None) for k in range(n + 1)], dim=1)
        encoder_cache = CachedCausalEncoder(model.seqTransEncoder, batch_size=b, max_len=n + 1)
        assert encoder_cache.heads == 4 and encoder_cache.head_dim == 8
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)


def test_t2mgpt_generation_is_reproducible_and_uses_the_given_lengths():
    model = _tiny()
    cond = torch.randn(2, 24, generator=torch.Generator().manual_seed(3))
    lens = torch.tensor([5, 9])
    a, la = model.generate(cond, lens, generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    b, _ = model.generate(cond, lens, generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    assert torch.equal(a, b) and torch.equal(la, lens)
    assert (a[0, :5] >= 0).all() and (a[0, 5:] == -1).all() and (a[1] >= 0).all()
    predicted, plen = model.generate(cond, None, generator=torch.Generator().manual_seed(4))
    assert ((plen >= 1) & (plen <= 49)).all()


@pytest.fixture(scope="module")
def t2mgpt_pipeline() -> MotionPipeline:
    bamm = MotionPipeline.random(kind="bamm", size="tiny", seed=5)
    torch.manual_seed(6)
    base = BAMMTransformer(replace(bamm.base.cfg, trans="t2mgpt"))
    return BAMMPipeline(text_encoder=bamm.text_encoder, vq=bamm.vq, base=base, residual=bamm.residual,
                        length_estimator=bamm.length_estimator, mean=bamm.mean, std=bamm.std)


def test_t2mgpt_official_layout_loads_strictly_and_generates(tmp_path, t2mgpt_pipeline):
    root = tmp_path / "checkpoints"
    folder = save_official_layout(t2mgpt_pipeline.checkpoint(), root)
    assert read_opt(folder / "t2m_bamm")["trans"] == "t2mgpt"
    state = torch.load(folder / "t2m_bamm" / "model" / "latest.tar", weights_only=True)["t2m_transformer"]
    assert any(k.startswith("seqTransEncoder.blocks.0.attn.query") for k in state)
    assert not any(k.startswith("seqTransEncoder.layers") for k in state)
    loaded = MotionPipeline.from_pretrained(root, text_encoder=t2mgpt_pipeline.text_encoder)
    assert loaded.kind == "bamm" and loaded.base.cfg.trans == "t2mgpt"
    for key, value in t2mgpt_pipeline.base.state_dict().items():
        assert torch.equal(loaded.base.state_dict()[key], value)
    expected = t2mgpt_pipeline.generate(["a person spins"], lengths=[36], seed=3)
    got = loaded.generate(["a person spins"], lengths=[36], seed=3)
    assert got[0].length == 36
    torch.testing.assert_close(torch.from_numpy(got[0].features), torch.from_numpy(expected[0].features))
    native = loaded.save_pretrained(tmp_path / "native")
    again = MotionPipeline.from_pretrained(native, text_encoder=t2mgpt_pipeline.text_encoder)
    assert again.base.cfg.trans == "t2mgpt"


def test_t2mgpt_keys_into_the_official_stack_name_the_missing_keys(tmp_path, t2mgpt_pipeline):
    root = tmp_path / "checkpoints"
    folder = save_official_layout(t2mgpt_pipeline.checkpoint(), root)
    opt = (folder / "t2m_bamm" / "opt.txt").read_text().replace("trans: t2mgpt", "trans: official")
    (folder / "t2m_bamm" / "opt.txt").write_text(opt)
    with pytest.raises(ValueError, match="seqTransEncoder"):
        MotionPipeline.from_pretrained(root, text_encoder=t2mgpt_pipeline.text_encoder)
