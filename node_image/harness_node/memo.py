"""A bounded memo for pure functions of an address string (codec, netgroups, sandbox): the same few
thousand addresses recur in every node of a host process, and a memo that forgets everything when
full costs one dict and no bookkeeping per hit (an LRU would cost a move per hit)."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict, Generic[K, V]):  # type: ignore[type-arg]
    __slots__ = ("limit",)

    def __init__(self, limit: int = 1 << 16) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Remember `value` for `key` (clearing the memo first if it is full); returns `value`."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
