"""A table of pre-computed caption features that stands in for a text encoder.

Training only ever encodes the captions of its dataset. On a machine that lacks an encoder's weights (e.g. a
GPU box without the MiniLM package), export the features once with `export_text_features` and point
`HMU_TEXT_FEATURES` at the file: `load_text_encoder` then serves the encoder whose spec matches from the
table (unknown captions are an error, never a silent zero vector). Command line: models/text/export.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.text.encoder import TextEncoder, check_texts


class PrecomputedTextEncoder(TextEncoder):
    """Serves `encode` from a caption -> feature table; `spec()` is the original encoder's spec."""

    def __init__(self, table: dict[str, torch.Tensor], spec: dict):
        super().__init__(torch.nn.Linear(1, 1))  # holds the device; features live in `table`
        if not table:
            raise ValueError("a pre-computed text feature table needs at least one caption")
        self._table, self._spec = table, dict(spec)
        self.dim = int(next(iter(table.values())).shape[0])
        self.name = f"precomputed:{spec.get('type')}"

    @classmethod
    def from_file(cls, path: str | Path) -> PrecomputedTextEncoder:
        """Load a table written by `export_text_features`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pre-computed text features {path} not found")
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            features = handle.get_tensor("features")
        if "captions" not in meta or "spec" not in meta:
            raise ValueError(f"{path} is not a pre-computed text feature file (metadata captions/spec missing)")
        captions = json.loads(meta["captions"])
        if len(captions) != features.shape[0]:
            raise ValueError(f"{path}: {len(captions)} captions for {features.shape[0]} feature rows")
        return cls(dict(zip(captions, features, strict=True)), json.loads(meta["spec"]))

    def spec(self) -> dict:
        return dict(self._spec)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in texts if t not in self._table]
        if missing:
            raise KeyError(f"{len(missing)} captions have no pre-computed feature, e.g. {missing[0]!r}")
        return torch.stack([self._table[t] for t in texts]).to(self.device)


def export_text_features(captions: Sequence[str], encoder: TextEncoder, out: str | Path) -> Path:
    """Encode every unique caption once and write the table (features + captions + spec) to `out`."""
    unique = sorted(set(check_texts(list(captions))))
    features = encoder.encode(unique).cpu().contiguous()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"captions": json.dumps(unique), "spec": json.dumps(encoder.spec(), sort_keys=True)}
    save_file({"features": features}, str(out), metadata=metadata)
    return out


def dataset_captions(data_dir: str | Path) -> list[str]:
    """Every caption of a HumanML3D-format folder (first field of each texts/*.txt line)."""
    captions = []
    for path in sorted(Path(data_dir, "texts").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                captions.append(line.split("#")[0])
    if not captions:
        raise FileNotFoundError(f"no captions found in {Path(data_dir, 'texts')}")
    return captions
