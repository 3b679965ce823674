"""Markdown text from templates shipped as package data (`string.Template`, `$name` placeholders)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from string import Template

from models.common.package_data import read_text


def render(anchor: str, template: str, /, **values: object) -> str:
    """Fill the template file `template` (path relative to the module file `anchor`) with `values`; every
    placeholder must be given."""
    return Template(read_text(anchor, template)).substitute(values)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A pipe table: header, `|---|` separator and one line per row (cells through `str`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)
