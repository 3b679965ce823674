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
