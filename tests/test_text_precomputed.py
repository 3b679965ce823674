"""Pre-computed caption features stand in for an encoder (training on machines without its weights)."""

from __future__ import annotations

import pytest
import torch

from models.text.base import TextEncoder, clear_text_encoder_cache, load_text_encoder
from models.text.precomputed import PrecomputedTextEncoder, export_text_features


class _Hashing(TextEncoder):
    """A deterministic 8-dim encoder (character statistics) so the test needs no model weights."""

    name, dim = "hashing", 8

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(1, 1))

    def spec(self) -> dict:
        return {"type": "hashing-test"}

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[len(t), *[t.count(c) for c in "aeiouts"]] for t in texts], dtype=torch.float32)


def test_table_reproduces_the_encoder_and_refuses_unknown_captions(tmp_path, monkeypatch) -> None:
    encoder = _Hashing()
    captions = ["a person walks", "someone kicks", "a person walks"]
    path = export_text_features(captions, encoder, tmp_path / "f.safetensors")
    table = PrecomputedTextEncoder.from_file(path)
    assert table.spec() == encoder.spec() and table.dim == 8
    torch.testing.assert_close(table.encode(captions), encoder.encode(captions), rtol=0, atol=0)
    with pytest.raises(KeyError, match="pre-computed"):
        table.encode(["never seen"])

    monkeypatch.setenv("HMU_TEXT_FEATURES", str(path))
    clear_text_encoder_cache()
    served = load_text_encoder({"type": "hashing-test"})
    assert isinstance(served, PrecomputedTextEncoder)
    with pytest.raises(ValueError, match="unknown text encoder type"):
        load_text_encoder({"type": "other"})  # a spec the table was not made for is not served from it
    clear_text_encoder_cache()


def test_missing_or_foreign_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        PrecomputedTextEncoder.from_file(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"features": torch.zeros(2, 3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="metadata"):
        PrecomputedTextEncoder.from_file(tmp_path / "plain.safetensors")
