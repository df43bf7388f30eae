"""Per-link latency and loss emulation for outgoing messages.

The testbed kernel has no tc/netem, so each connection delays or drops its own outgoing messages in
user space. Delivery keeps the order of one link (TCP would): a message never overtakes the one sent
before it on the same link, even when its drawn delay is shorter.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

from dataclasses import dataclass

DELAY_DISTRIBUTIONS = ("exponential", "uniform")


@dataclass
class LinkModel:
    """Emulated latency/loss applied to every outgoing message of every link of a node.

    delay_ms: mean one-way delay; jitter_ms: spread (uniform: delay +- jitter; exponential: the
    delay is delay_ms + Exp(jitter_ms)); loss: fraction of messages dropped.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    distribution: str = "uniform"

    def validate(self, prefix: str = "link") -> None:
        if self.delay_ms < 0:
            raise ValueError(f"{prefix}.delay_ms must be >= 0, got {self.delay_ms}")
        if self.jitter_ms < 0:
            raise ValueError(f"{prefix}.jitter_ms must be >= 0, got {self.jitter_ms}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"{prefix}.loss must be in [0, 1), got {self.loss}")
        if self.distribution not in DELAY_DISTRIBUTIONS:
            raise ValueError(f"{prefix}.distribution must be one of {DELAY_DISTRIBUTIONS}, got {self.distribution!r}")

    @property
    def active(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.loss > 0


class LinkEmulator:
    __slots__ = ("model", "rng", "loop", "_queue", "_timer", "_last_due", "dropped", "delayed")

    def __init__(self, model: LinkModel, rng: random.Random, loop: asyncio.AbstractEventLoop) -> None:
        self.model = model
        self.rng = rng
        self.loop = loop
        self._queue: deque[tuple[float, bytes, Callable[[bytes], None]]] = deque()  # FIFO: keeps link order
        self._timer: asyncio.TimerHandle | None = None
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
        if delay <= 0 and not self._queue:
            write(data)
            return True
        # Never before the message ahead of it; one timer drains the FIFO (equal-time timers in
        # asyncio's heap have no guaranteed order, so one timer per message could reorder).
        due = max(self.loop.time() + delay, self._last_due)
        self._last_due = due
        self.delayed += 1
        self._queue.append((due, data, write))
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._drain)
        return True

    def _drain(self) -> None:
        self._timer = None
        now = self.loop.time()
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, data, write = queue.popleft()
            write(data)
        if queue:
            self._timer = self.loop.call_at(queue[0][0], self._drain)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
