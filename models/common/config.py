"""`to_dict()` / strict `from_dict()` shared by the config dataclasses."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="DictConfig")


class DictConfig:
    """Mixin for a config dataclass: `to_dict()` (asdict) and `from_dict()`, where unknown keys raise
    a ValueError naming the class and the keys."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build from a dict; unknown keys raise a ValueError."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {unknown}")
        return cls(**d)
