"""Validated method parameters: one dataclass per method, built from a plain dict (API, CLI, worker).

Unknown keys raise a ValueError naming them; values are coerced to the annotated type (an int where a float
is expected, a scalar where a list is expected) and each dataclass checks its own bounds in `validate()`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

P = TypeVar("P", bound="MethodParams")


def require(ok: bool, message: str) -> None:
    """Raise a ValueError with `message` unless `ok`."""
    if not ok:
        raise ValueError(message)


def one_of(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    require(value in choices, f"{name} must be one of {list(choices)}, got {value!r}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(name, value, arg)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if hint is bool:
        require(isinstance(value, bool), f"parameter {name!r} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        require(
            isinstance(value, int) and not isinstance(value, bool),
            f"parameter {name!r} must be an integer, got {value!r}",
        )
        return value
    if hint is float:
        require(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            f"parameter {name!r} must be a number, got {value!r}",
        )
        return float(value)
    if hint is str:
        require(isinstance(value, str), f"parameter {name!r} must be a string, got {value!r}")
        return value
    if origin is list:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return [_coerce(name, v, args[0]) for v in items]
    if origin is dict:
        require(isinstance(value, Mapping), f"parameter {name!r} must be an object, got {value!r}")
        return {_coerce(name, k, args[0]): _coerce(name, v, args[1]) for k, v in value.items()}
    raise TypeError(f"unsupported parameter type {hint!r} for {name!r}")


@dataclass
class MethodParams:
    """Base of the per-method parameter dataclasses."""

    method: ClassVar[str] = ""

    def validate(self) -> None:
        """Check bounds and choices (subclasses); raise ValueError."""

    @classmethod
    def from_dict(cls: type[P], params: Mapping[str, Any] | None = None) -> P:
        """Build and validate from a dict; unknown keys -> ValueError naming them."""
        params = dict(params or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(params) - set(known))
        require(not unknown, f"unknown {cls.method} parameters {unknown}; known: {known}")
        hints = typing.get_type_hints(cls)
        obj = cls(**{k: _coerce(k, v, hints[k]) for k, v in params.items()})
        obj.validate()
        return obj

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
