"""Text encoders: MiniLM (packaged weights) and CLIP (tiny random CLIP written to tmp_path, all formats)."""

from __future__ import annotations

import gzip
import json
import pickle
import zipfile
from collections import Counter, OrderedDict

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPConfig, CLIPModel

from models.text import TextEncoder, clear_text_encoder_cache, load_text_encoder
from models.text.clip import CLIPEncoder, openai_vocab, read_openai_file, read_torchscript_tensors

# ----------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return load_text_encoder({"type": "minilm"})


def test_minilm_shape_norm_and_reference_values(minilm):
    x = minilm.encode(["a person walks forward", "a person kicks"])
    assert minilm.name == "minilm" and minilm.dim == 384 and minilm.spec() == {"type": "minilm"}
    assert x.shape == (2, 384) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(2))
    # reference values: sentence-transformers' SentenceTransformer(<packaged dir>).encode gave the same
    expected = [-0.0181149710, -0.0089200903, -0.0150660658, -0.0206506811, 0.0694648623, 0.0534194782]
    torch.testing.assert_close(x[0, :6], torch.tensor(expected), atol=1e-5, rtol=0)


def test_minilm_deterministic_distinct_and_batch_equals_single(minilm):
    texts = ["a man jumps twice", "someone waves with the right hand while walking in a circle", "", "JUMPS"]
    batch = minilm.encode(texts)
    assert torch.equal(batch, minilm.encode(texts))
    singles = torch.cat([minilm.encode([t]) for t in texts])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)
    assert (batch[0] - batch[1]).abs().max() > 0.05
    torch.testing.assert_close(batch[3], minilm.encode(["jumps"])[0])  # uncased model


def test_minilm_input_checks_and_empty_batch(minilm):
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="list of strings"):
        minilm.encode("a person walks")
    with pytest.raises(ValueError, match="list of strings"):
        minilm.encode(["ok", 3])


def test_registry_cache_and_unknown_type(minilm):
    assert load_text_encoder({"type": "minilm"}) is minilm
    with pytest.raises(ValueError, match="unknown text encoder type 'bert'"):
        load_text_encoder({"type": "bert"})
    with pytest.raises(ValueError, match="unknown keys"):
        load_text_encoder({"type": "minilm", "device": "cpu"})


# ----------------------------------------------------------------------------- tiny CLIP

MERGES = [("a", "b"), ("ab", "c</w>")]
VOCAB = 256 * 2 + len(MERGES) + 2  # bytes, bytes</w>, merges, SOT, EOT
SOT, EOT = VOCAB - 2, VOCAB - 1
A, B_END, A_END = 64, 256 + 65, 256 + 64  # 'a' and 'b' are printable bytes 97, 98 (table starts at '!' = 33)
WIDTH, LAYERS, PROJ = 64, 2, 32


def write_bpe_gz(folder):
    with gzip.open(folder / "bpe_simple_vocab_16e6.txt.gz", "wt", encoding="utf-8") as f:
        f.write("bpe_simple_vocab_16e6.txt#version: 0.2\n" + "\n".join(" ".join(m) for m in MERGES) + "\n")


def write_hf_tokenizer(folder):
    (folder / "vocab.json").write_text(json.dumps(openai_vocab(MERGES)))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in MERGES) + "\n")


@pytest.fixture(scope="module")
def clip_ref(tmp_path_factory):
    """A random CLIPModel (weights exactly representable in fp16) saved as a Hugging Face directory."""
    torch.manual_seed(0)
    text = dict(
        vocab_size=VOCAB,
        hidden_size=WIDTH,
        intermediate_size=4 * WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=WIDTH // 64,
        max_position_embeddings=77,
        bos_token_id=SOT,
        eos_token_id=EOT,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJ)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
            p.copy_(p.half().float())
    folder = tmp_path_factory.mktemp("clip_hf")
    model.save_pretrained(folder)
    write_hf_tokenizer(folder)
    return model, folder


def reference_features(model: CLIPModel, ids: list[list[int]]) -> torch.Tensor:
    """text_projection(final LayerNorm(last encoder layer))[EOT], computed by hand from HF hidden states."""
    with torch.no_grad():
        out = []
        for row in ids:
            t = torch.tensor([row])
            hidden = model.text_model(input_ids=t, output_hidden_states=True).hidden_states[-1]  # (1, L, W)
            eot = hidden[0, row.index(EOT)]
            out.append(model.text_model.final_layer_norm(eot) @ model.text_projection.weight.T)
        return torch.stack(out)


def test_clip_hf_dir_tokenizes_and_matches_manual_computation(clip_ref):
    model, folder = clip_ref
    enc = load_text_encoder({"type": "clip", "path": str(folder)})
    assert isinstance(enc, CLIPEncoder) and enc.dim == PROJ and enc.name == "clip"
    assert enc.spec() == {"type": "clip", "path": str(folder.resolve())}
    texts = ["abc", "ABC  ab"]
    ids = [
        [SOT, 513, EOT],
        [SOT, 513, A, B_END, EOT],
    ]  # "abc</w>" is the 2nd merge; "ab" has no word-end merge
    tokens = enc.tokenize(texts)
    assert tokens[0, :3].tolist() == ids[0] and tokens[1].tolist() == ids[1]
    x = enc.encode(texts)
    assert x.shape == (2, PROJ) and x.dtype == torch.float32
    torch.testing.assert_close(x, reference_features(model, ids), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the HF equivalent of OpenAI encode_text
        hf = model.get_text_features(input_ids=torch.tensor([ids[1]])).pooler_output
    torch.testing.assert_close(x[1:], hf, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x, torch.cat([enc.encode([t]) for t in texts]), atol=1e-5, rtol=0)


def test_clip_truncates_overlong_prompts_keeping_eot(clip_ref):
    enc = load_text_encoder({"type": "clip", "path": str(clip_ref[1])})
    tokens = enc.tokenize(["a " * 100, "ab"])
    assert tokens.shape == (2, 77)
    assert tokens[0, 0] == SOT and tokens[0, -1] == EOT and (tokens[0, 1:-1] == A_END).all()
    torch.testing.assert_close(enc.encode(["a " * 100]), enc.encode(["a " * 75]))  # exactly 77 tokens
    assert not torch.allclose(enc.encode(["a " * 75]), enc.encode(["a " * 74]))


def test_clip_relative_path_search_and_fp16_is_cuda_only(clip_ref):
    folder = clip_ref[1]
    clear_text_encoder_cache()
    enc = load_text_encoder({"type": "clip", "path": folder.name, "fp16": True}, search_paths=[folder.parent])
    assert enc.spec() == {"type": "clip", "path": str(folder.resolve()), "fp16": True}
    assert next(enc.module.parameters()).dtype == torch.float32  # CPU stays fp32, as MoMask
    assert load_text_encoder({"type": "clip", "path": str(folder), "fp16": True}) is enc
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text_encoder({"type": "clip", "path": "no_such_clip"}, search_paths=[folder.parent])
    with pytest.raises(ValueError, match="needs a 'path'"):
        load_text_encoder({"type": "clip"})


def test_clip_missing_files_are_named(clip_ref, tmp_path):
    folder = clip_ref[1]
    needed = [("config.json", "config.json"), ("model.safetensors", "model.safetensors"),
              ("vocab.json", "vocab.json \\+ merges.txt"), ("merges.txt", "merges.txt")]
    for name, message in needed:  # each missing file is named, in the order they are read
        with pytest.raises(FileNotFoundError, match=message):
            CLIPEncoder(tmp_path)
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    assert CLIPEncoder(tmp_path).encode(["abc"]).shape == (1, PROJ)


# ----------------------------------------------------------------------------- OpenAI format


def to_openai(model: CLIPModel) -> dict[str, torch.Tensor]:
    """The OpenAI CLIP key layout of `model`'s text tower (written independently of the loader)."""
    tm, sd = model.text_model, {}
    sd["token_embedding.weight"] = tm.embeddings.token_embedding.weight
    sd["positional_embedding"] = tm.embeddings.position_embedding.weight
    for i, layer in enumerate(tm.encoder.layers):
        p, att = f"transformer.resblocks.{i}.", layer.self_attn
        sd[p + "attn.in_proj_weight"] = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
        sd[p + "attn.in_proj_bias"] = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias])
        pairs = {
            "attn.out_proj": att.out_proj,
            "ln_1": layer.layer_norm1,
            "ln_2": layer.layer_norm2,
            "mlp.c_fc": layer.mlp.fc1,
            "mlp.c_proj": layer.mlp.fc2,
        }
        for name, module in pairs.items():
            sd[p + name + ".weight"], sd[p + name + ".bias"] = module.weight, module.bias
    sd["ln_final.weight"], sd["ln_final.bias"] = tm.final_layer_norm.weight, tm.final_layer_norm.bias
    sd["text_projection"] = model.text_projection.weight.T
    sd["logit_scale"] = torch.tensor(4.5)  # other CLIP keys are ignored
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, width // 64)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, 4 * width), c_proj=nn.Linear(4 * width, width))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_1(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(width) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class OpenAITextTower(nn.Module):
    """Same attribute names as OpenAI's CLIP text tower, to build a TorchScript archive like ViT-B-32.pt."""

    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.positional_embedding = nn.Parameter(torch.empty(77, WIDTH))
        self.transformer = Transformer(WIDTH, LAYERS)
        self.ln_final = nn.LayerNorm(WIDTH)
        self.text_projection = nn.Parameter(torch.empty(WIDTH, PROJ))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln_final(self.transformer(self.token_embedding(x))) @ self.text_projection


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_openai_formats_convert_to_the_same_encoder(clip_ref, tmp_path):
    model, folder = clip_ref
    texts = ["abc", "a b c ab", "a " * 90]
    expected = load_text_encoder({"type": "clip", "path": str(folder)}).encode(texts)
    state = to_openai(model)
    write_bpe_gz(tmp_path)
    save_file(state, tmp_path / "clip_openai.safetensors")
    torch.save(state, tmp_path / "clip_openai.pt")
    tower = OpenAITextTower()
    tower.load_state_dict(state)
    torch.jit.save(torch.jit.script(tower.half()), tmp_path / "ViT-tiny.pt")  # fp16, as OpenAI's file
    script = read_torchscript_tensors(tmp_path / "ViT-tiny.pt")
    assert script["transformer.resblocks.1.attn.in_proj_weight"].dtype == torch.float16
    assert all(torch.equal(script[k].float(), v) for k, v in state.items())
    for name in ["clip_openai.safetensors", "clip_openai.pt", "ViT-tiny.pt"]:
        enc = CLIPEncoder(tmp_path / name)  # tokenizer: bpe_simple_vocab_16e6.txt.gz next to the weights
        torch.testing.assert_close(enc.encode(texts), expected, atol=1e-5, rtol=1e-5, msg=name)
    missing = {k: v for k, v in state.items() if k != "text_projection"}
    save_file(missing, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="missing keys \\['text_projection'\\]"):
        CLIPEncoder(tmp_path / "bad.safetensors")
    save_file(
        {k: v for k, v in state.items() if k != "transformer.resblocks.1.ln_2.bias"},
        tmp_path / "bad.safetensors",
    )
    with pytest.raises(ValueError, match="transformer.resblocks.1.ln_2.bias"):
        CLIPEncoder(tmp_path / "bad.safetensors")


def test_torchscript_reader_refuses_other_globals(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Counter(a=1), protocol=2))
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load collections.Counter"):
        read_openai_file(path)


def test_concurrent_loads_build_one_encoder():
    """Worker task threads load pipelines at once: one build per spec (transformers' lazy imports are not safe
    to race; a fresh worker saw `cannot import name 'BertConfig'` when two jobs started together)."""
    import threading
    import time

    from models.text import base

    builds = []

    class Slow(base.TextEncoder):
        name, dim = "slow", 2

        def spec(self) -> dict:
            return {"type": "slow-test"}

        def _encode_batch(self, texts):
            return torch.zeros(len(texts), 2)

    def factory(spec: dict):
        builds.append(threading.get_ident())
        time.sleep(0.2)  # a build takes a while: the others arrive meanwhile
        return Slow(torch.nn.Linear(1, 1))

    base.register_text_encoder("slow-test", factory)
    got = []
    try:
        threads = [threading.Thread(target=lambda: got.append(base.load_text_encoder({"type": "slow-test"})))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        base.ENCODER_TYPES.pop("slow-test", None)
        base.clear_text_encoder_cache()
    assert len(builds) == 1 and len(got) == 4 and all(encoder is got[0] for encoder in got)
