"""Reader for the official `opt.txt` option files (see momask-architecture.md §1.1)."""

from __future__ import annotations

import re
from pathlib import Path

_FLOAT = re.compile(r"^[-+]?[0-9]+\.[0-9]+$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_MARKERS = ("------------ Options -------------", "-------------- End ----------------")


def _convert(value: str) -> bool | int | float | str:
    if value in ("True", "False"):
        return value == "True"
    if _FLOAT.match(value):
        return float(value)
    if _INT.match(value):
        return int(value)  # negative too (the official reader's isdigit() leaves "-1" a string)
    return value  # 'None' and lists such as '[50000]' stay strings, as in the official reader


def parse_opt_text(text: str) -> dict[str, bool | int | float | str]:
    """Parse the contents of an official `opt.txt` into a dict with the official type conversion."""
    options: dict[str, bool | int | float | str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line in _MARKERS:
            continue
        parts = line.split(": ")
        if len(parts) != 2:
            raise ValueError(f"opt.txt line {number} is not 'key: value': {raw!r}")
        options[parts[0]] = _convert(parts[1])
    return options


def read_opt(path: str | Path) -> dict[str, bool | int | float | str]:
    """Read `path` (an opt.txt file, or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "opt.txt"
    if not path.is_file():
        raise FileNotFoundError(f"missing option file {path} (every official run directory holds an opt.txt)")
    return parse_opt_text(path.read_text(encoding="utf-8"))


def write_opt(path: str | Path, options: dict[str, object]) -> None:
    """Write options in the official format (sorted keys between the two marker lines)."""
    lines = [_MARKERS[0]]
    lines += [f"{key}: {options[key]}" for key in sorted(options)]
    lines.append(_MARKERS[1])
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
