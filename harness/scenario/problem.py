"""The one shape of a scenario validation problem.

Raised inside pydantic validators; the loader turns it into `file:line:col: field.path: text`.
`path` points below the field being validated (e.g. a selector's key), when there is one.
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError


def problem(text: str, *path: str | int) -> PydanticCustomError:
    return PydanticCustomError("harness", "{problem}", {"problem": text, "path": path})
