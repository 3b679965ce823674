"""CLIP ViT-B/32 text tower exactly as MoMask/BAMM use it, loaded from local files only.

feature = text_projection(ln_final(transformer(tokens))[first EOT]), 512-d, not normalised: the same as
OpenAI `clip_model.encode_text(clip.tokenize(texts, truncate=True)).float()` and HF
`CLIPModel.get_text_features`. Prompts are lower-cased BPE, cut to 77 tokens keeping the EOT token.

`path` is either
* a Hugging Face directory: config.json (CLIPModel or CLIPTextModelWithProjection) + model.safetensors
  or pytorch_model.bin + vocab.json/merges.txt (e.g. a local copy of openai/clip-vit-base-patch32), or
* an OpenAI-format weights file (`token_embedding.weight`, `transformer.resblocks.0.attn.in_proj_weight`,
  `text_projection`, ...): .safetensors, a weights-only torch file, or the original TorchScript
  `ViT-B-32.pt`, whose tensors are read with a restricted unpickler (no code is run). Its tokenizer is
  vocab.json + merges.txt or the OpenAI `bpe_simple_vocab_16e6.txt.gz` next to it (or `tokenizer`).
"""

from __future__ import annotations

import gzip
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from models.common.tensors import load_state_dict_strict, load_tar
from models.text.encoder import TextEncoder

if TYPE_CHECKING:
    from transformers import CLIPTextConfig, CLIPTokenizer

OPENAI_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
OPENAI_NUM_MERGES = 49152 - 256 - 2  # merges used by OpenAI's SimpleTokenizer
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
HF_HINT = "a Hugging Face CLIP directory such as a local copy of openai/clip-vit-base-patch32"


# ----------------------------------------------------------------------------- tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character table, in vocabulary order (printable bytes first)."""
    table = {
        b: chr(b)
        for b in [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    }
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return table


def read_merges(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """BPE merges from merges.txt or OpenAI's .txt.gz (the first, '#version' line is a header)."""
    with (
        gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as f
    ):
        text = f.read()
    lines = text.split("\n")
    lines = lines[1:] if lines and "#version" in lines[0] else lines
    merges = [tuple(line.split()) for line in lines if line.strip()]
    bad = [m for m in merges if len(m) != 2]
    if bad:
        raise ValueError(f"{path}: merge lines must hold two symbols, found {bad[:3]}")
    return merges[:limit]


def openai_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """OpenAI SimpleTokenizer vocabulary: bytes, bytes + '</w>', merged symbols, then SOT and EOT."""
    symbols = list(bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    return {s: i for i, s in enumerate(symbols)}


def load_clip_tokenizer(where: Path) -> CLIPTokenizer:
    """CLIP tokenizer from a directory (vocab.json + merges.txt, or OpenAI's .txt.gz) or that .txt.gz."""
    from transformers import CLIPTokenizer  # heavy: imported when a CLIP encoder is built

    if where.is_dir() and (where / "vocab.json").is_file():
        if not (where / "merges.txt").is_file():
            raise FileNotFoundError(
                f"missing {where / 'merges.txt'} (the CLIP BPE merges next to vocab.json)"
            )
        vocab = json.loads((where / "vocab.json").read_text("utf-8"))
        merges = read_merges(where / "merges.txt")
    else:
        bpe = where / OPENAI_BPE_FILE if where.is_dir() else where
        if not bpe.is_file():
            raise FileNotFoundError(
                f"missing CLIP tokenizer files at {where}: expected vocab.json + merges.txt (Hugging Face) "
                f"or {OPENAI_BPE_FILE} (from the OpenAI clip package)"
            )
        merges = read_merges(bpe, limit=OPENAI_NUM_MERGES)
        vocab = openai_vocab(merges)
    for special in (SOT, EOT):
        if special not in vocab:
            raise ValueError(f"CLIP tokenizer vocabulary at {where} lacks the special token {special}")
    return CLIPTokenizer(vocab=vocab, merges=merges)


# ----------------------------------------------------------------------------- weights


def read_hf_dir(folder: Path) -> tuple[CLIPTextConfig, dict[str, torch.Tensor]]:
    """Text config and text-tower state dict (HF names) of a Hugging Face CLIP directory."""
    from transformers import CLIPTextConfig

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"missing {config_file} (the model config of {HF_HINT})")
    raw = json.loads(config_file.read_text("utf-8"))
    if raw.get("model_type") == "clip":  # full CLIPModel: the projection size is a top-level field
        text = dict(raw.get("text_config") or {}, projection_dim=raw.get("projection_dim", 512))
    elif raw.get("model_type") == "clip_text_model":
        text = raw
    else:
        raise ValueError(
            f"{config_file} has model_type {raw.get('model_type')!r}, expected 'clip' or 'clip_text_model'"
        )
    config = CLIPTextConfig.from_dict({k: v for k, v in text.items() if k != "model_type"})

    def wanted(key: str) -> bool:
        return (key.startswith("text_model.") or key == "text_projection.weight") and not key.endswith(
            "position_ids"
        )

    if (folder / "model.safetensors").is_file():
        with safe_open(folder / "model.safetensors", framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys() if wanted(k)}  # noqa: SIM118 (safe_open)
    elif (folder / "pytorch_model.bin").is_file():
        state = {k: v for k, v in load_tar(folder / "pytorch_model.bin").items() if wanted(k)}
    else:
        raise FileNotFoundError(
            f"missing {folder / 'model.safetensors'} (or pytorch_model.bin): the weights of {HF_HINT}"
        )
    return config, state


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for any TorchScript class in an archive: keeps its attributes, runs nothing."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


def _rebuild_tensor(storage, offset, size, stride, *_):
    return torch.as_strided(storage, size, stride, offset).clone()


class _TorchScriptUnpickler(pickle.Unpickler):
    """Reads the attribute tree of a TorchScript archive allowing only tensors and plain containers."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(archive.open(prefix + "data.pkl"))
        self.archive, self.prefix, self.source = archive, prefix, source

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch.jit._pickle", "restore_type_tag"): lambda value, *_: value,
            ("torch.jit._pickle", "build_intlist"): list,
            ("torch.jit._pickle", "build_doublelist"): list,
            ("torch.jit._pickle", "build_boollist"): list,
            ("torch.jit._pickle", "build_tensorlist"): list,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"{self.source}: refusing to load {module}.{name} (only tensors are read)"
            )
        return allowed[(module, name)]

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"{self.source}: unexpected persistent id {pid!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        if flat.numel() != numel:
            raise ValueError(f"{self.source}: storage {key} holds {flat.numel()} values, expected {numel}")
        return flat


def read_torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a TorchScript archive (e.g. OpenAI's ViT-B-32.pt) by dotted attribute name."""
    with zipfile.ZipFile(path) as archive:
        data_pkl = min((n for n in archive.namelist() if n.endswith("data.pkl")), key=len)
        root = _TorchScriptUnpickler(archive, data_pkl[: -len("data.pkl")], path).load()
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: _ScriptObject, prefix: str) -> None:
        for key, value in vars(obj).items():
            if isinstance(value, torch.Tensor):
                tensors[prefix + key] = value
            elif isinstance(value, _ScriptObject):
                walk(value, f"{prefix}{key}.")

    walk(root, "")
    return tensors


def read_openai_file(path: Path) -> dict[str, torch.Tensor]:
    """OpenAI-format CLIP tensors from .safetensors, a weights-only torch file or a TorchScript archive."""
    if path.suffix == ".safetensors":
        return load_file(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            is_script = any(n.endswith("constants.pkl") for n in archive.namelist())
        if is_script:
            return read_torchscript_tensors(path)
    state = load_tar(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def openai_to_hf(
    state: dict[str, torch.Tensor], source: Path
) -> tuple[CLIPTextConfig, dict[str, torch.Tensor]]:
    """Convert an OpenAI CLIP state dict to the config and state dict of CLIPTextModelWithProjection."""
    from transformers import CLIPTextConfig

    layer_ids = {int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks.")}
    layers = 1 + max(layer_ids, default=-1)
    per_layer = ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias"]
    per_layer += [
        f"{m}.{kind}" for m in ("ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj") for kind in ("weight", "bias")
    ]
    required = ["token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias"]
    required += ["text_projection"] + [
        f"transformer.resblocks.{i}.{k}" for i in range(layers) for k in per_layer
    ]
    missing = [k for k in required if k not in state]
    if missing or layers == 0:
        raise ValueError(
            f"{source} is not an OpenAI CLIP state dict: missing keys {missing or ['transformer.*']}"
        )
    state = {k: v.float() for k, v in state.items() if torch.is_tensor(v)}
    vocab, width = state["token_embedding.weight"].shape
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        max_position_embeddings=state["positional_embedding"].shape[0],
        projection_dim=state["text_projection"].shape[1],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,  # OpenAI: SOT and EOT are the last two ids
    )
    hf = {
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].t().contiguous(),  # x @ P == Linear with P^T
    }
    renames = {
        "attn.out_proj": "self_attn.out_proj",
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    for i in range(layers):
        old, new = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            for name, chunk in zip("qkv", state[f"{old}attn.in_proj_{kind}"].chunk(3), strict=True):
                hf[f"{new}{name}_proj.{kind}"] = chunk.contiguous()
            for a, b in renames.items():
                hf[f"text_model.encoder.layers.{i}.{b}.{kind}"] = state[f"{old}{a}.{kind}"]
    return config, hf


# ----------------------------------------------------------------------------- encoder


class CLIPEncoder(TextEncoder):
    """Frozen CLIP text tower; `fp16=True` runs it in half precision on CUDA (as MoMask), fp32 on CPU."""

    name = "clip"

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None, fp16: bool = False):
        from transformers import CLIPTextModelWithProjection

        self.path, self.tokenizer_path, self.fp16 = Path(path), tokenizer, bool(fp16)
        if self.path.is_dir():
            config, state = read_hf_dir(self.path)
        elif self.path.is_file():
            config, state = openai_to_hf(read_openai_file(self.path), self.path)
        else:
            raise FileNotFoundError(f"missing {self.path}: expected {HF_HINT} or an OpenAI CLIP weights file")
        model = CLIPTextModelWithProjection(config)
        load_state_dict_strict(model, state, self.path)
        super().__init__(model)
        tok_where = (
            Path(tokenizer)
            if tokenizer is not None
            else self.path
            if self.path.is_dir()
            else self.path.parent
        )
        self.tokenizer = load_clip_tokenizer(tok_where)
        if len(self.tokenizer) > config.vocab_size:
            raise ValueError(
                f"CLIP tokenizer has {len(self.tokenizer)} tokens, the model only {config.vocab_size}"
            )
        self.eot_id = self.tokenizer.convert_tokens_to_ids(EOT)
        self.context_length = config.max_position_embeddings  # 77
        self.dim = config.projection_dim  # 512

    @classmethod
    def from_spec(cls, spec: dict) -> CLIPEncoder:
        unknown = set(spec) - {"type", "path", "tokenizer", "fp16"}
        if unknown:
            raise ValueError(
                f"unknown keys {sorted(unknown)} in clip spec {spec} (allowed: path, tokenizer, fp16)"
            )
        if not spec.get("path"):
            raise ValueError(f"clip spec {spec} needs a 'path' ({HF_HINT} or an OpenAI weights file)")
        return cls(spec["path"], spec.get("tokenizer"), spec.get("fp16", False))

    def spec(self) -> dict:
        spec = {"type": "clip", "path": str(self.path)}
        if self.tokenizer_path is not None:
            spec["tokenizer"] = str(self.tokenizer_path)
        return spec | ({"fp16": True} if self.fp16 else {})

    def to(self, device: str | torch.device) -> CLIPEncoder:
        """Move to `device`: fp16 there if `fp16` and CUDA, else fp32 (weights once halved stay rounded)."""
        device = torch.device(device)
        dtype = torch.float16 if self.fp16 and device.type == "cuda" else torch.float32
        self.module.to(device=device, dtype=dtype)
        return self

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids `(B, L)`, L <= 77: SOT, lower-cased BPE, EOT (kept when cut), EOT padding."""
        return self.tokenizer(
            texts, max_length=self.context_length, truncation=True, padding=True, return_tensors="pt"
        ).input_ids

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenize(texts).to(self.device)  # (B, L)
        hidden = self.module.text_model(input_ids=ids).last_hidden_state  # (B, L, W), after ln_final
        eot = (ids == self.eot_id).int().argmax(-1)  # (B,) first EOT, as OpenAI's argmax
        return self.module.text_projection(hidden[torch.arange(len(ids), device=ids.device), eot])  # (B, 512)
