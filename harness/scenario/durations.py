"""Durations as scenario files write them: "250ms", "30s", "5m", "1h30m", "1d", or a number of seconds.

Parsed to float seconds. A string must be one or more <number><unit> parts, largest unit first,
each unit at most once, so "5m30s" is fine and "30s5m" or "5 minutes" are errors, not guesses.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from harness.scenario.problem import problem

UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
HELP = "a number of seconds or a string like 250ms, 30s, 5m, 1h30m"


class DurationError(ValueError):
    pass


def parse_duration(value: Any) -> float:
    """Seconds from a number (>= 0) or a duration string; DurationError says what is allowed."""
    if isinstance(value, bool) or value is None:
        raise DurationError(f"must be a duration: {HELP} (got {value!r})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"must be a duration: {HELP} (got a {type(value).__name__})")
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"must be a duration >= 0: {HELP} (got {value!r})")
    return seconds


def _parse_text(text: str) -> float:
    compact = text.strip()
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise DurationError(f"not a duration: {text!r}; use {HELP}")
    order = list(UNITS)
    seen = [order.index(unit) for _, unit in parts]
    if seen != sorted(seen) or len(set(seen)) != len(seen):
        raise DurationError(f"not a duration: {text!r}; write units largest first, each once (e.g. 1h30m)")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Short human form: 0.25 -> '250ms', 90 -> '1m30s', 5400 -> '1h30m'."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    rest = seconds - whole
    text = ""
    for unit in ("d", "h", "m"):
        size = int(UNITS[unit])
        if whole >= size:
            text += f"{whole // size}{unit}"
            whole %= size
    if whole or rest or not text:
        text += f"{whole + rest:g}s"
    return text


def _validate(value: Any) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise problem(str(exc)) from None


# A pydantic field type: accepts what parse_duration accepts, holds and serialises float seconds.
Duration = Annotated[float, BeforeValidator(_validate), PlainSerializer(float, return_type=float)]
