"""The implicit set: original clips captioned only by rewritten (implicit) prompts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.data.datasets import load_features
from models.data.pos import pos_tokens
from models.eval.sets import EvalItem, EvalSet


@dataclass
class ImplicitPrompt:
    clip_id: str
    prompt: str
    tokens: list[str] | None = None


def load_implicit_prompts(path: str | Path) -> list[ImplicitPrompt]:
    """Rewritten (implicit) prompts for clips of the dataset.

    JSON: `[{"id": "000123", "prompt": "...", "tokens": "a/DET ..." (optional)}, ...]` or `{"000123": "..."}`;
    text: one `id#prompt[#tokens]` (or `id<TAB>prompt`) per line, `#`-comments and blank lines ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"implicit prompt file {path} not found")
    text = path.read_text(encoding="utf-8")
    rows: list[ImplicitPrompt] = []
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        entries = [{"id": k, "prompt": v} for k, v in data.items()] if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of {{id, prompt}} objects or an {{id: prompt}} object")
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not isinstance(e.get("prompt"), str):
                raise ValueError(f"{path}: bad entry {e!r} (needs string 'id' and 'prompt')")
            tokens = e.get("tokens")
            rows.append(ImplicitPrompt(e["id"], e["prompt"], tokens.split() if isinstance(tokens, str) else tokens))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t") if "\t" in line else line.split("#")
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: expected 'id#prompt' or 'id<TAB>prompt', got {line!r}")
            tokens = parts[2].split() if len(parts) > 2 and parts[2].strip() else None
            rows.append(ImplicitPrompt(parts[0].strip(), parts[1].strip(), tokens))
    rows = [r for r in rows if r.prompt.strip()]
    if not rows:
        raise ValueError(f"{path} holds no implicit prompt")
    return rows


def implicit_set(
    data_dir: str | Path, prompts: Sequence[ImplicitPrompt], min_len: int = 40, max_len: int = 200
) -> EvalSet:
    """The original clips of `prompts` (whole clips), each captioned only by its rewritten prompt."""
    data_dir = Path(data_dir)
    items = []
    for p in prompts:
        motion = load_features(data_dir, p.clip_id)
        if not min_len <= len(motion) < max_len:
            raise ValueError(
                f"implicit prompt clip {p.clip_id} has {len(motion)} frames, outside {min_len}..{max_len - 1}"
            )
        items.append(EvalItem(p.clip_id, p.clip_id, motion, [p.prompt], [p.tokens or pos_tokens(p.prompt)]))
    return EvalSet("implicit", items, str(data_dir))
