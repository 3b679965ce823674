"""The installed package's version (from its metadata, so that every layer reports the same one)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def package_version() -> str:
    """Version of the installed `hmu` distribution ("0+unknown" when run from a tree that is not installed)."""
    try:
        return version("hmu")
    except PackageNotFoundError:
        return "0+unknown"
