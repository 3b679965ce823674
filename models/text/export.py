"""Command line: export the pre-computed caption features of a dataset (see models/text/precomputed.py).

    python -m models.text.export --data DATA_DIR --out FEATURES.safetensors [--spec '{"type": "minilm"}']
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from models.text.base import load_text_encoder
from models.text.precomputed import dataset_captions, export_text_features


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="export pre-computed caption features of a dataset")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--spec", default='{"type": "minilm"}')
    args = parser.parse_args(argv)
    encoder = load_text_encoder(json.loads(args.spec))
    path = export_text_features(dataset_captions(args.data), encoder, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
