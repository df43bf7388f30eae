"""Per-link latency and loss emulation for outgoing messages.

The testbed kernel has no tc/netem, so each connection delays or drops its own outgoing messages in
user space. Delivery keeps the order of one link (TCP would): a message never overtakes the one sent
before it on the same link, even when its drawn delay is shorter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from .config import LinkModel


class LinkEmulator:
    __slots__ = ("model", "rng", "loop", "_last_due", "dropped", "delayed")

    def __init__(self, model: LinkModel, rng: random.Random, loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self.rng = rng
        self.loop = loop
        self._last_due = 0.0
        self.dropped = 0
        self.delayed = 0

    def draw_delay(self) -> float:
        """One delay in seconds from the model."""
        m = self.model
        if m.distribution == "exponential":
            extra = self.rng.expovariate(1000.0 / m.jitter_ms) if m.jitter_ms > 0 else 0.0
            return m.delay_ms / 1000.0 + extra
        return max(0.0, (m.delay_ms + self.rng.uniform(-m.jitter_ms, m.jitter_ms)) / 1000.0)

    def send(self, data: bytes, write: Callable[[bytes], None]) -> bool:
        """Deliver `data` through `write` after the emulated delay; False if it was dropped."""
        if self.model.loss and self.rng.random() < self.model.loss:
            self.dropped += 1
            return False
        delay = self.draw_delay()
        if delay <= 0 and self._last_due <= self.loop.time():
            write(data)
            return True
        due = max(self.loop.time() + delay, self._last_due)
        self._last_due = due
        self.delayed += 1
        self.loop.call_at(due, write, data)
        return True
