"""Our co-embedding evaluator: interface, embeddings geometry, persistence and the contrastive loss."""

import math

import numpy as np
import pytest
import torch

from models.eval.metrics import r_precision_and_matching
from models.evaluator.our_evaluator import OurEvaluator, OurEvaluatorConfig, contrastive_loss
from models.evaluator.protocol import Evaluator

SMALL = dict(movement_hidden=32, movement_latent=32, motion_hidden=32, text_hidden=32, embed_dim=16)


class SeededFeatures:
    """Test double for the sentence encoder interface: a fixed random 384-d vector per caption."""

    dim = 384

    def encode(self, texts):
        out = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(t)))
            out.append(torch.randn(self.dim, generator=g))
        return torch.stack(out)


def _batch(b=4, t=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 263, generator=g), torch.tensor([48, 40, 20, 8][:b])


def test_config_roundtrip_and_validation():
    cfg = OurEvaluatorConfig(embed_dim=64, margin_weight=0.5)
    assert OurEvaluatorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        OurEvaluatorConfig.from_dict({"embed_dims": 3})
    with pytest.raises(ValueError, match="unit_length"):
        OurEvaluatorConfig(unit_length=2)


def test_embeddings_shape_norm_and_protocol():
    torch.manual_seed(0)
    model = OurEvaluator(OurEvaluatorConfig(**SMALL, embed_scale=3.0), SeededFeatures()).eval()
    assert isinstance(model, Evaluator) and model.embed_dim == 16
    motions, m_lens = _batch()
    m = model.motion_embeddings(motions, m_lens)
    t = model.text_embeddings(["a person kicks", "a person walks", "jump", "wave"])
    assert m.shape == t.shape == (4, 16) and not m.requires_grad
    torch.testing.assert_close(m.norm(dim=-1), torch.full((4,), 3.0))
    torch.testing.assert_close(t.norm(dim=-1), torch.full((4,), 3.0))
    # captions and their pre-computed sentence features give the same embeddings
    feats = SeededFeatures().encode(["a person kicks", "wave"])
    torch.testing.assert_close(model.text_embeddings(feats), t[[0, 3]])
    # input order; foot contacts ignored; padding beyond the receptive field ignored
    torch.testing.assert_close(model.motion_embeddings(motions[[2, 0]], m_lens[[2, 0]]), m[[2, 0]])
    edited = motions.clone()
    edited[..., -4:] = 50.0
    edited[3, 16:] = -9.0  # sample 3 has 8 valid frames
    torch.testing.assert_close(model.motion_embeddings(edited, m_lens), m)


def test_text_errors_without_encoder_and_bad_features():
    model = OurEvaluator(OurEvaluatorConfig(**SMALL))
    with pytest.raises(ValueError, match="no text_encoder"):
        model.text_embeddings(["a person walks"])
    with pytest.raises(ValueError, match=r"\(B, 384\)"):
        model.text_embeddings(torch.zeros(2, 512))
    with pytest.raises(ValueError, match="m_lens"):
        model.motion_embeddings(torch.zeros(2, 16, 263), torch.tensor([20, 16]))


def test_save_and_load_pretrained(tmp_path):
    torch.manual_seed(1)
    model = OurEvaluator(OurEvaluatorConfig(**SMALL)).eval()
    model.save_pretrained(tmp_path, text_encoder_spec={"type": "minilm"})
    loaded = OurEvaluator.from_pretrained(tmp_path, text_encoder=SeededFeatures())
    motions, m_lens = _batch()
    torch.testing.assert_close(
        loaded.motion_embeddings(motions, m_lens), model.motion_embeddings(motions, m_lens)
    )
    assert loaded.cfg == model.cfg and not loaded.training
    (tmp_path / "evaluator.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="evaluator.safetensors"):
        OurEvaluator.from_pretrained(tmp_path)


def test_infonce_known_values_and_dedup():
    cfg = OurEvaluatorConfig(temperature=1.0)
    e = torch.eye(4)
    loss, logs = contrastive_loss(e, e, cfg)
    # logits = I (cosine, tau 1): CE = -log(e / (e + 3))
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 3)), rel=1e-6)
    assert set(logs) == {"infonce", "loss"}
    # two pairs with the same caption and the same motion: without dedup each is a false negative
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    plain, _ = contrastive_loss(t, t, cfg)
    feats = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    dedup, _ = contrastive_loss(t, t, cfg, text_features=feats)
    assert dedup.item() < plain.item()
    # rows/columns 0 and 1: softmax over {1, 0} (duplicate removed); row/column 2: over {1, 0, 0}
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 3
    assert dedup.item() == pytest.approx(expected, rel=1e-6)


def test_margin_term():
    cfg = OurEvaluatorConfig(temperature=1.0, margin=2.0, margin_weight=1.0)
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    m = t.clone()  # positives at distance 0; the only shift (1) pairs texts with motions 1 apart
    loss, logs = contrastive_loss(t, m, cfg, generator=torch.Generator().manual_seed(0))
    assert logs["margin"] == pytest.approx((2.0 - 1.0) ** 2)
    assert loss.item() == pytest.approx(logs["infonce"] + 1.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        contrastive_loss(t[:1], m[:1], cfg)


def test_short_training_aligns_pairs():
    """A few Adam steps on 16 fixed pairs must reduce the loss and reach perfect R@1 on them."""
    torch.manual_seed(0)
    cfg = OurEvaluatorConfig(**SMALL, dropout=0.0, margin_weight=0.1)
    model = OurEvaluator(cfg)
    g = torch.Generator().manual_seed(0)
    motions, feats = torch.randn(16, 16, 263, generator=g), torch.randn(16, 384, generator=g)
    m_lens = torch.full((16,), 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss, _ = contrastive_loss(*model(feats, motions, m_lens), cfg, text_features=feats, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    model.eval()
    assert loss.item() < 0.5 * first
    t = model.text_embeddings(feats).numpy().astype(np.float64)
    m = model.motion_embeddings(motions, m_lens).numpy().astype(np.float64)
    r, _ = r_precision_and_matching(t, m, batch_size=16)
    assert r[0] == 1.0
