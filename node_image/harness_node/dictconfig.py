"""Building a config dataclass from a mapping, with errors that name the unknown field."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_mapping(cls: type[T], data: Any, what: str, error: type[Exception] = ValueError) -> T:
    """`cls(**data)`, refusing non-mappings and unknown keys (a typo must not pass silently)."""
    if not isinstance(data, dict):
        raise error(f"{what} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise error(f"{what}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as e:
        raise error(f"{what}: {e}") from None
