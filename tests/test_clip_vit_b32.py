"""CLIP ViT-B/32 facts that can be checked without the weights: the released text tower's state-dict table
(OpenAI layout, 49408-token vocabulary, 77 positions, width 512, 12 layers, 8 heads, MLP 2048, projection 512)
converts key by key and shape by shape onto the model we build, and the OpenAI tokenizer rules (vocabulary =
256 bytes + 256 end-of-word bytes + 48894 merges + SOT/EOT, so SOT = 49406 and EOT = 49407; lower-cased,
whitespace-collapsed words ending in '</w>'). No weights or vocabulary files are downloaded: the table is built on
the meta device and the merges are synthetic."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from models.io.official import save_official_layout
from models.pipelines import MotionPipeline
from models.text.clip import OPENAI_BPE_FILE, bytes_to_unicode, load_clip_tokenizer, openai_to_hf

VOCAB, CONTEXT, WIDTH, LAYERS, HEADS, MLP, EMBED = 49408, 77, 512, 12, 8, 2048, 512


def released_text_tower() -> dict[str, torch.Tensor]:
    """The text-tower entries of OpenAI's released ViT-B-32.pt state dict (names and shapes), on the meta device."""
    table = {"positional_embedding": (CONTEXT, WIDTH), "text_projection": (WIDTH, EMBED),
             "token_embedding.weight": (VOCAB, WIDTH), "ln_final.weight": (WIDTH,), "ln_final.bias": (WIDTH,)}
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}."
        table.update({
            p + "attn.in_proj_weight": (3 * WIDTH, WIDTH), p + "attn.in_proj_bias": (3 * WIDTH,),
            p + "attn.out_proj.weight": (WIDTH, WIDTH), p + "attn.out_proj.bias": (WIDTH,),
            p + "ln_1.weight": (WIDTH,), p + "ln_1.bias": (WIDTH,),
            p + "mlp.c_fc.weight": (MLP, WIDTH), p + "mlp.c_fc.bias": (MLP,),
            p + "mlp.c_proj.weight": (WIDTH, MLP), p + "mlp.c_proj.bias": (WIDTH,),
            p + "ln_2.weight": (WIDTH,), p + "ln_2.bias": (WIDTH,),
        })
    return {k: torch.empty(shape, device="meta") for k, shape in table.items()}


def test_released_text_tower_table_converts_onto_our_model():
    from transformers import CLIPTextModelWithProjection

    state = released_text_tower()
    assert len(state) == 5 + 12 * LAYERS
    config, hf = openai_to_hf(state, Path("ViT-B-32.pt"))
    assert (config.vocab_size, config.max_position_embeddings, config.hidden_size) == (VOCAB, CONTEXT, WIDTH)
    assert (config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (LAYERS, HEADS, MLP)
    assert (config.projection_dim, config.bos_token_id, config.eos_token_id) == (EMBED, 49406, 49407)
    assert config.hidden_act == "quick_gelu"
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert {k: tuple(v.shape) for k, v in hf.items()} == expected
    assert sum(v.numel() for v in state.values()) == 63_428_096  # the '63M-parameter' text tower (with projection)


def _synthetic_bpe(folder: Path, merges: int) -> list[tuple[str, str]]:
    """A bpe_simple_vocab_16e6.txt.gz with `merges` distinct merges after the '#version' header line, each
    starting with a non-letter byte (so words of letters stay single bytes)."""
    table = bytes_to_unicode()
    starts = [c for b, c in table.items() if not chr(b).isalpha()]
    ends = [*table.values(), *(c + "</w>" for c in table.values())]
    pairs = [(a, b) for a in starts for b in ends][:merges]
    assert len(pairs) == merges
    with gzip.open(folder / OPENAI_BPE_FILE, "wt", encoding="utf-8") as f:
        f.write("bpe_simple_vocab_16e6.txt#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in pairs) + "\n")
    return pairs


def test_openai_tokenizer_rules(tmp_path):
    _synthetic_bpe(tmp_path, 50_000)  # the released file holds more merges than the 48894 the tokenizer uses
    tok = load_clip_tokenizer(tmp_path)
    assert len(tok) == VOCAB
    sot, eot = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    assert (sot, eot) == (49406, 49407)
    byte_id = {chr(b): i for i, b in enumerate(bytes_to_unicode())}     # single bytes: ids 0..255 in table order
    ids = tok("A  Person\tWALKS")["input_ids"]
    words = ["a", "person", "walks"]
    expected = [sot] + [byte_id[c] + (256 if k == len(w) - 1 else 0) for w in words for k, c in enumerate(w)] + [eot]
    assert ids == expected                                                # lower case, '</w>' ends every word
    assert tok("a person walks")["input_ids"] == ids
    long = tok(["walk " * 100], max_length=CONTEXT, truncation=True)["input_ids"][0]
    assert len(long) == CONTEXT and long[0] == sot and long[-1] == eot


def test_missing_clip_names_the_expected_files(tmp_path, tiny_momask, monkeypatch):
    monkeypatch.delenv("HMU_CLIP_PATH", raising=False)
    save_official_layout(tiny_momask.checkpoint(), tmp_path / "checkpoints")
    with pytest.raises(FileNotFoundError) as error:
        MotionPipeline.from_pretrained(tmp_path / "checkpoints")
    message = str(error.value)
    for needed in ("ViT-B-32.pt", OPENAI_BPE_FILE, "openai/clip-vit-base-patch32", "vocab.json", "merges.txt",
                   "--clip-path", "HMU_CLIP_PATH"):
        assert needed in message
    with pytest.raises(FileNotFoundError, match="ViT-B-32.pt"):
        MotionPipeline.from_pretrained(tmp_path / "checkpoints", clip_path=tmp_path / "ViT-B-32.pt")
