"""One repeating timer per event loop and period for every node's housekeeping, instead of a task
per node: a host of a thousand nodes wakes up 20 times a period, not a thousand times.

The period is cut into ``SLOTS`` slots and each entry fires in its own slot (the caller picks it
at random), so the nodes' ticks stay spread over the period as the per-node tasks' random start
offsets spread them before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

SLOTS = 20


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self.loop = loop
        self.period = period
        self.slots: list[dict[int, Callable[[], None]]] = [{} for _ in range(SLOTS)]
        self.size = 0
        self._next = 0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def add(self, callback: Callable[[], None], slot: int) -> int:
        """Call `callback` once a period, in `slot` (0..SLOTS-1); returns a key for remove()."""
        key = id(callback)
        self.slots[slot % SLOTS][key] = callback
        self.size += 1
        if self._handle is None:
            self._due = self.loop.time() + self.period / SLOTS
            self._handle = self.loop.call_at(self._due, self._fire)
        return key

    def remove(self, key: int) -> None:
        for slot in self.slots:
            if slot.pop(key, None) is not None:
                self.size -= 1
                break
        if self.size <= 0 and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            _WHEELS.pop((self.loop, self.period), None)

    def _fire(self) -> None:
        slot = self.slots[self._next]
        self._next = (self._next + 1) % SLOTS
        # absolute due times: a late wake-up does not push every later slot back
        self._due = max(self._due + self.period / SLOTS, self.loop.time())
        self._handle = self.loop.call_at(self._due, self._fire)
        for callback in list(slot.values()):
            try:
                callback()
            except Exception:  # one node's bug must not stop every other node's housekeeping
                log.exception("housekeeping tick failed")


_WHEELS: dict[tuple[asyncio.AbstractEventLoop, float], TimerWheel] = {}


def wheel_for(loop: asyncio.AbstractEventLoop, period: float) -> TimerWheel:
    wheel = _WHEELS.get((loop, period))
    if wheel is None:
        wheel = _WHEELS[(loop, period)] = TimerWheel(loop, period)
    return wheel
