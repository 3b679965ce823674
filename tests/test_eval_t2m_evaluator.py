"""Official T2M evaluator: exact checkpoint layout, strict loading, GloVe vectorizer, co-embeddings."""

import os
import pickle

import numpy as np
import pytest
import torch

from models.evaluator.plain_pickle import UnsafePickleError, load_plain_pickle, loads_plain
from models.evaluator.protocol import Evaluator
from models.evaluator.t2m_evaluator import (
    T2MEvaluator,
    T2MEvaluatorConfig,
    load_official_evaluator,
    momask_order,
)
from models.evaluator.word_vectorizer import POS_ENUMERATOR, WordVectorizer

# evaluator.md §4, transcribed from the official modules instantiated with random weights
OFFICIAL_LAYOUT = {
    "movement_encoder": {
        "main.0.weight": (512, 259, 4), "main.0.bias": (512,), "main.3.weight": (512, 512, 4),
        "main.3.bias": (512,), "out_net.weight": (512, 512), "out_net.bias": (512,),
    },
    "motion_encoder": {
        "hidden": (2, 1, 1024), "input_emb.weight": (1024, 512), "input_emb.bias": (1024,),
        "gru.weight_ih_l0": (3072, 1024), "gru.weight_hh_l0": (3072, 1024), "gru.bias_ih_l0": (3072,),
        "gru.bias_hh_l0": (3072,), "gru.weight_ih_l0_reverse": (3072, 1024),
        "gru.weight_hh_l0_reverse": (3072, 1024), "gru.bias_ih_l0_reverse": (3072,),
        "gru.bias_hh_l0_reverse": (3072,), "output_net.0.weight": (1024, 2048), "output_net.0.bias": (1024,),
        "output_net.1.weight": (1024,), "output_net.1.bias": (1024,), "output_net.3.weight": (512, 1024),
        "output_net.3.bias": (512,),
    },
    "text_encoder": {
        "hidden": (2, 1, 512), "pos_emb.weight": (300, 15), "pos_emb.bias": (300,),
        "input_emb.weight": (512, 300), "input_emb.bias": (512,), "gru.weight_ih_l0": (1536, 512),
        "gru.weight_hh_l0": (1536, 512), "gru.bias_ih_l0": (1536,), "gru.bias_hh_l0": (1536,),
        "gru.weight_ih_l0_reverse": (1536, 512), "gru.weight_hh_l0_reverse": (1536, 512),
        "gru.bias_ih_l0_reverse": (1536,), "gru.bias_hh_l0_reverse": (1536,),
        "output_net.0.weight": (512, 1024), "output_net.0.bias": (512,), "output_net.1.weight": (512,),
        "output_net.1.bias": (512,), "output_net.3.weight": (512, 512), "output_net.3.bias": (512,),
    },
}  # fmt: skip

VOCAB = ["sos", "eos", "unk", "a", "man", "kick", "left", "walk", "person", "forward"]


def _random_official_state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        mod: {k: torch.randn(shape, generator=g) * 0.05 for k, shape in keys.items()}
        for mod, keys in OFFICIAL_LAYOUT.items()
    }


def _write_checkpoint(root, state: dict) -> None:
    d = root / "text_mot_match" / "model"
    d.mkdir(parents=True, exist_ok=True)
    params = [torch.zeros(1, requires_grad=True)]
    torch.save(
        {
            **state,
            "opt_text_encoder": torch.optim.Adam(params, lr=1e-4).state_dict(),
            "opt_motion_encoder": torch.optim.Adam(params, lr=1e-4).state_dict(),
            "epoch": 42,
            "iter": 1234,
        },
        d / "finest.tar",
    )


def _write_glove(d, dim: int = 300) -> np.ndarray:
    d.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(0).normal(size=(len(VOCAB), dim)).astype(np.float32)
    np.save(d / "our_vab_data.npy", vectors)
    with open(d / "our_vab_words.pkl", "wb") as f:
        pickle.dump(VOCAB, f, protocol=2)
    with open(d / "our_vab_idx.pkl", "wb") as f:
        pickle.dump({w: i for i, w in enumerate(VOCAB)}, f)
    return vectors


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    state = _random_official_state(0)
    _write_checkpoint(root / "t2m", state)
    _write_glove(root / "glove")
    model = load_official_evaluator(root / "t2m", glove_dir=root / "glove")
    return root, state, model


def _motions(b=3, t=64, seed=0):
    return torch.randn(b, t, 263, generator=torch.Generator().manual_seed(seed))


# ---- layout and strict loading ----------------------------------------------------------------------


def test_module_layout_is_exactly_official():
    model = T2MEvaluator()
    for mod, keys in OFFICIAL_LAYOUT.items():
        got = {k: tuple(v.shape) for k, v in getattr(model, mod).state_dict().items()}
        assert got == keys, mod
    kit = T2MEvaluator(T2MEvaluatorConfig.for_dataset("kit"))
    assert kit.movement_encoder.main[0].weight.shape == (512, 247, 4)


def test_official_checkpoint_loads_strictly(official):
    _, state, model = official
    assert isinstance(model, Evaluator) and not model.training and model.epoch == 42
    for mod, sd in state.items():
        for k, v in getattr(model, mod).state_dict().items():
            torch.testing.assert_close(v, sd[k], rtol=0, atol=0)


def _drop_gru_bias(s):
    s["motion_encoder"].pop("gru.bias_hh_l0_reverse")


def _add_extra_key(s):
    s["text_encoder"]["extra.weight"] = torch.zeros(1)


def _reshape_first_conv(s):
    s["movement_encoder"]["main.0.weight"] = torch.zeros(512, 263, 4)


def _drop_text_encoder(s):
    s.pop("text_encoder")


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop_gru_bias, r"\[motion_encoder\].*missing keys \['gru.bias_hh_l0_reverse'\]"),
        (_add_extra_key, r"\[text_encoder\].*unexpected keys \['extra.weight'\]"),
        (
            _reshape_first_conv,
            r"\[movement_encoder\].*mis-shaped keys "
            r"\['main.0.weight: checkpoint \(512, 263, 4\) vs model \(512, 259, 4\)",
        ),
        (_drop_text_encoder, r"missing entries \['text_encoder'\]"),
    ],
)
def test_bad_checkpoint_raises_naming_the_key(tmp_path, edit, message):
    state = _random_official_state(1)
    edit(state)
    _write_checkpoint(tmp_path, state)
    with pytest.raises(ValueError, match=message):
        load_official_evaluator(tmp_path)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="finest.tar"):
        load_official_evaluator(tmp_path)
    (tmp_path / "finest.tar").write_bytes(pickle.dumps(_Exploit(tmp_path / "pwned"), protocol=2))
    with pytest.raises(ValueError, match="weights-only"):
        load_official_evaluator(tmp_path / "finest.tar")
    assert not (tmp_path / "pwned").exists()


# ---- restricted pickle ------------------------------------------------------------------------------


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_restricted_pickle_refuses_code_without_running_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(["sos", _Exploit(marker)], protocol=protocol))
    with pytest.raises(UnsafePickleError, match="GLOBAL|REDUCE"):
        load_plain_pickle(path)
    assert not marker.exists()


def test_restricted_pickle_accepts_plain_data_only():
    data = {"words": ["a", "b"], "idx": {"a": 0, "b": 1}, "t": (1.5, None, True)}
    assert loads_plain(pickle.dumps(data, protocol=4)) == data
    with pytest.raises(UnsafePickleError, match="non-plain type set"):
        loads_plain(pickle.dumps({1, 2}, protocol=4))
    with pytest.raises(UnsafePickleError, match="opcode"):
        loads_plain(pickle.dumps(np.int64(3)))
    with pytest.raises(UnsafePickleError, match="not a valid pickle"):
        loads_plain(b"\x80\x04garbage")


# ---- GloVe vectorizer -------------------------------------------------------------------------------


def test_word_vectorizer_lookup_rules(tmp_path):
    vectors = _write_glove(tmp_path)
    wv = WordVectorizer.from_dir(tmp_path)
    assert len(wv) == len(VOCAB)

    def pos(tok):
        return int(np.argmax(wv[tok][1]))

    np.testing.assert_array_equal(wv["man/NOUN"][0], vectors[VOCAB.index("man")])
    assert pos("man/NOUN") == POS_ENUMERATOR["NOUN"]
    assert pos("left/VERB") == POS_ENUMERATOR["Loc_VIP"]  # VIP list overrides the spaCy POS
    assert pos("kick/NOUN") == POS_ENUMERATOR["Act_VIP"]
    assert pos("forward/ADV") == POS_ENUMERATOR["Loc_VIP"]
    assert pos("person/PROPN") == POS_ENUMERATOR["OTHER"]  # not one of the 15 names
    for oov in ("dog/NOUN", "***/VERB", "slowly/ADV"):  # OOV (even VIP words): unk vector + OTHER
        np.testing.assert_array_equal(wv[oov][0], vectors[VOCAB.index("unk")])
        assert pos(oov) == POS_ENUMERATOR["OTHER"]
    with pytest.raises(ValueError, match="word/POS"):
        wv["nopos"]


def test_sentence_preparation(tmp_path):
    vectors = _write_glove(tmp_path)
    wv = WordVectorizer.from_dir(tmp_path)
    w, p, n = wv.sentence(["a/DET", "man/NOUN", "kick/VERB"])
    assert w.shape == (22, 300) and p.shape == (22, 15) and n == 5
    np.testing.assert_array_equal(w[0], vectors[0])  # sos
    np.testing.assert_array_equal(w[4], vectors[1])  # eos
    np.testing.assert_array_equal(w[5:], np.repeat(vectors[2:3], 17, axis=0))  # unk padding
    assert p[0, POS_ENUMERATOR["OTHER"]] == 1 and p[3, POS_ENUMERATOR["Act_VIP"]] == 1
    w, p, n = wv.sentence(["man/NOUN"] * 19)
    assert n == 21 and w.shape == (22, 300)
    w, p, n = wv.sentence(["man/NOUN"] * 25)  # truncated to 20 words
    assert n == 22
    np.testing.assert_array_equal(w[-1], vectors[1])
    wb, pb, nb = wv.batch(["a/DET man/NOUN kick/VERB", ["man/NOUN"] * 25])
    assert wb.shape == (2, 22, 300) and nb.tolist() == [5, 22]


def test_glove_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="our_vab_data.npy"):
        WordVectorizer.from_dir(tmp_path)
    _write_glove(tmp_path)
    np.save(tmp_path / "our_vab_data.npy", np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        WordVectorizer.from_dir(tmp_path)
    with pytest.raises(ValueError, match="missing from the word index"):
        WordVectorizer(np.zeros((3, 4)), ["unk", "a"], {"unk": 0})
    with pytest.raises(ValueError, match="no 'unk'"):
        WordVectorizer(np.zeros((3, 4)), ["a"], {"a": 0})


# ---- embeddings ------------------------------------------------------------------------------------


def test_co_embeddings_momask_sort_semantics(official):
    _, _, model = official
    tokens = ["a/DET man/NOUN kick/VERB", "a/DET person/NOUN walk/VERB forward/ADV", "man/NOUN"]
    m_lens = torch.tensor([40, 64, 52])
    motions = _motions()
    assert momask_order(m_lens).tolist() == [1, 2, 0]
    w, p, n = model.vectorizer.batch(tokens)
    t_emb, m_emb = model.get_co_embeddings(w, p, n, motions, m_lens)
    t_in, m_in = model.text_embeddings(tokens), model.motion_embeddings(motions, m_lens)
    assert t_emb.shape == m_emb.shape == (3, 512)
    torch.testing.assert_close(t_emb, t_in[[1, 2, 0]])
    torch.testing.assert_close(m_emb, m_in[[1, 2, 0]])
    torch.testing.assert_close(model.get_motion_embeddings(motions, m_lens), m_in[[1, 2, 0]])
    t_bamm, m_bamm = model.get_co_embeddings(w, p, n, motions, m_lens, sort=False)
    torch.testing.assert_close(t_bamm, t_in)
    torch.testing.assert_close(m_bamm, m_in)
    torch.testing.assert_close(model.text_embeddings((w, p, n)), t_in)


def test_motion_embedding_uses_valid_steps_and_drops_contacts(official):
    _, _, model = official
    motions, m_lens = _motions(), torch.tensor([40, 64, 52])
    ref = model.motion_embeddings(motions, m_lens)
    edited = motions.clone()
    edited[..., -4:] = 100.0  # foot contacts are dropped
    edited[0, 48:] = 7.0  # beyond the conv receptive field of sample 0's last valid step (40 + 2)
    torch.testing.assert_close(model.motion_embeddings(edited, m_lens), ref)
    # packed GRU == running the GRU on the truncated sequence (order-independent batching)
    mov = model.movement_encoder(motions[0:1, :, :259])
    enc = model.motion_encoder
    _, h = enc.gru(enc.input_emb(mov[:, :10]), enc.hidden)
    manual = enc.output_net(torch.cat([h[0], h[1]], dim=-1))
    torch.testing.assert_close(ref[0:1], manual, rtol=1e-5, atol=1e-5)
    # a row's embedding does not depend on the rest of the batch
    torch.testing.assert_close(model.motion_embeddings(motions[2:3], m_lens[2:3]), ref[2:3])


def test_bad_motion_and_text_inputs(official):
    _, _, model = official
    with pytest.raises(ValueError, match="263"):
        model.motion_embeddings(torch.zeros(2, 64, 259), torch.tensor([64, 64]))
    with pytest.raises(ValueError, match="m_lens"):
        model.motion_embeddings(torch.zeros(2, 64, 263), torch.tensor([2, 64]))
    with pytest.raises(ValueError, match="m_lens"):
        model.motion_embeddings(torch.zeros(2, 64, 263), torch.tensor([64]))
    with pytest.raises(ValueError, match="WordVectorizer"):
        T2MEvaluator().text_embeddings(["a/DET"])
