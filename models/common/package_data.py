"""Data files shipped inside the packages (JSON tables, Markdown templates), found next to their module."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any


def package_file(anchor: str, name: str) -> Path:
    """Path of `name` relative to the folder of the module file `anchor` (pass the module's `__file__`)."""
    return Path(anchor).resolve().parent / name


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def read_text(anchor: str, name: str) -> str:
    """Text of a package data file (read once, then cached)."""
    return _read(package_file(anchor, name))


def read_json(anchor: str, name: str) -> Any:
    """A JSON package data file, parsed afresh on each call (callers may keep or convert the result)."""
    return json.loads(read_text(anchor, name))


# Top-level folders of the repository that the code reads at run time. In a checkout (editable install) they
# are read in place; a built wheel carries a copy inside the package (`models/shipped/<folder>`, put there by
# setup.py's build step), so a non-editable install (e.g. Dockerfile.gpu's `pip install /app`) finds them.
SHIPPED_FOLDERS = ("configs", "weights")
PACKAGED_ROOT = Path(__file__).resolve().parents[1] / "shipped"
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def shipped_path(folder: str, *parts: str) -> Path:
    """`<folder>/<parts...>` of the shipped files: the wheel's copy when installed, else the checkout's."""
    if folder not in SHIPPED_FOLDERS:
        raise ValueError(f"{folder!r} is not a shipped folder ({', '.join(SHIPPED_FOLDERS)})")
    packaged = PACKAGED_ROOT / folder
    root = packaged if packaged.is_dir() else CHECKOUT_ROOT / folder
    return root.joinpath(*parts)
