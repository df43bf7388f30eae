"""Per-link latency, loss, pacing and holding of outgoing messages.

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
from typing import Protocol

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


def draw_delay(model: LinkModel, rng: random.Random) -> float:
    """One propagation delay in seconds from `model`."""
    if model.distribution == "exponential":
        extra = rng.expovariate(1000.0 / model.jitter_ms) if model.jitter_ms > 0 else 0.0
        return model.delay_ms / 1000.0 + extra
    return max(0.0, (model.delay_ms + rng.uniform(-model.jitter_ms, model.jitter_ms)) / 1000.0)


class LinkShaper(Protocol):
    """What an emulator reads from the node-wide shaper (net/shaping.py)."""

    held: set[str]
    dropped: dict[str, int]  # cause ("loss", "partition") -> messages, node-wide

    def model_for(self, ip: str) -> LinkModel: ...
    def upload_done(self, nbytes: int, now: float) -> float: ...


class FixedLink:
    """A shaper with one model for every peer and no bandwidth cap (tests, the client peer)."""

    def __init__(self, model: LinkModel) -> None:
        self.model = model
        self.held: set[str] = set()
        self.dropped = {"loss": 0, "partition": 0}

    def model_for(self, ip: str) -> LinkModel:
        return self.model

    def upload_done(self, nbytes: int, now: float) -> float:
        return now


class LinkEmulator:
    """One link's outgoing queue: loss, upload pacing (the node's bucket), propagation delay, and
    holding while the peer is unreachable (partition). `held_bytes` lets the connection give up on
    a peer it has held too much for, as a full send buffer would."""

    __slots__ = ("shaper", "rng", "loop", "_queue", "_held", "_timer", "_last_due", "dropped", "delayed",
                 "held_bytes", "busy")

    def __init__(self, shaper: LinkShaper, rng: random.Random, loop: asyncio.AbstractEventLoop) -> None:
        self.shaper = shaper
        self.rng = rng
        self.loop = loop
        # Made on first use: every connection has an emulator, few ever queue or hold, and two empty
        # deques are ~1.2 kB per connection (30 kB per node at 20 peers; issue 17's memory budget).
        self._queue: deque[tuple[float, bytes, Callable[[bytes], None]]] | None = None  # FIFO: keeps link order
        self._held: deque[tuple[bytes, Callable[[bytes], None]]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_due = 0.0
        self.dropped = 0
        self.delayed = 0
        self.held_bytes = 0
        # Something queued or held: a later message must follow it. A plain attribute, kept by the
        # methods below, where a property was a Python call for every message every node sends.
        self.busy = False

    def send(self, data: bytes, write: Callable[[bytes], None], ip: str = "") -> bool:
        """Deliver `data` to `ip` through `write` after the emulated delay; False if it was dropped."""
        if self._held or ip in self.shaper.held:
            if self._held is None:
                self._held = deque()
            self._held.append((data, write))  # TCP holds what it cannot deliver; order is kept
            self.held_bytes += len(data)
            self.busy = True
            return True
        return self._schedule(data, write, ip)

    def release(self, ip: str) -> None:
        """The peer is reachable again: what was held goes out, in order, paced and delayed."""
        held, self._held = self._held or (), None
        self.held_bytes = 0
        self.busy = bool(self._queue)
        for data, write in held:
            self._schedule(data, write, ip)

    def _schedule(self, data: bytes, write: Callable[[bytes], None], ip: str) -> bool:
        model = self.shaper.model_for(ip)
        if model.loss and self.rng.random() < model.loss:
            self.dropped += 1
            self.shaper.dropped["loss"] += 1
            return False
        now = self.loop.time()
        due = self.shaper.upload_done(len(data), now) + draw_delay(model, self.rng)
        if due <= now and not self._queue:
            write(data)
            return True
        # Never before the message ahead of it; one timer drains the FIFO (equal-time timers in
        # asyncio's heap have no guaranteed order, so one timer per message could reorder).
        due = max(due, self._last_due)
        self._last_due = due
        self.delayed += 1
        if self._queue is None:
            self._queue = deque()
        self._queue.append((due, data, write))
        self.busy = True
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._drain)
        return True

    def _drain(self) -> None:
        self._timer = None
        now = self.loop.time()
        queue = self._queue
        assert queue is not None  # the timer is only set after an append
        while queue and queue[0][0] <= now:
            _, data, write = queue.popleft()
            write(data)
        self.busy = bool(queue or self._held)
        if queue:
            self._timer = self.loop.call_at(queue[0][0], self._drain)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue = None
        self.shaper.dropped["partition"] += len(self._held or ())  # held for a peer that is gone now
        self._held = None
        self.held_bytes = 0
        self.busy = False
