"""A named registry of parameter models: timeline actions, checks and attacker kinds all use one.

Adding an entry is one decorator on its params model, in the module that owns the entry:

    @ACTIONS.register("stop_node", description="...", takes_duration=True)
    class StopNode(ActionParams): ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=type[BaseModel])


@dataclass(frozen=True)
class Entry:
    name: str
    params: type[BaseModel]
    description: str
    meta: dict[str, Any] = field(default_factory=dict)


def did_you_mean(word: str, choices: list[str]) -> str:
    """"; did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Registry(Generic[M]):
    def __init__(self, what: str) -> None:
        self.what = what  # "action", "check", "attacker kind": used in messages
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, description: str = "", **meta: Any) -> Callable[[M], M]:
        def decorate(model: M) -> M:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = Entry(name, model, description or (model.__doc__ or "").strip(), meta)
            return model

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in self.names())

    def get(self, name: str) -> Entry:
        """The entry, or KeyError whose message names the known entries and the closest one."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise KeyError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        return f"unknown {self.what} {name!r}{did_you_mean(str(name), self.names())} (known: {', '.join(self.names())})"
