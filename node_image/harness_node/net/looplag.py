"""Event-loop lag of this process: how late a timer fires. Every node of a host shares one loop, so
one monitor per loop; it is what tells whether the delays the link layer emulates are the delays the
network saw (a loop 50 ms late adds 50 ms to every hop). Exported as
`harness_node_event_loop_lag_seconds{worker}` and in each node's /status (`loop_lag`)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from collections.abc import Callable

from .stats import Histogram

INTERVAL = 0.05  # seconds between probes: 20 wake-ups a second cost nothing next to a node
WINDOW = 1200  # recent probes kept for the quantiles (one minute)
LAG_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopLag:
    def __init__(self, loop: asyncio.AbstractEventLoop, worker: str) -> None:
        self.loop = loop
        self.worker = worker
        self.histogram = Histogram(LAG_BUCKETS)
        self.recent: deque[float] = deque(maxlen=WINDOW)
        self.users = 0
        self._task: asyncio.Task[None] | None = None

    def acquire(self) -> None:
        self.users += 1
        if self._task is None:
            self._task = self.loop.create_task(self._probe(), name="loop-lag")

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self._task is not None:
            self._task.cancel()
            self._task = None
            _MONITORS.pop(self.loop, None)

    async def _probe(self) -> None:
        await watch_loop_lag(self._record)

    def _record(self, lag: float) -> None:
        self.histogram.observe(lag)
        self.recent.append(lag)

    def summary(self) -> dict[str, float | int | str]:
        """p50/p99/max over the last minute, and the number of probes since start."""
        xs = sorted(self.recent)
        pick = (lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]) if xs else (lambda q: 0.0)
        return {"worker": self.worker, "p50_s": pick(0.5), "p99_s": pick(0.99), "max_s": xs[-1] if xs else 0.0,
                "probes": self.histogram.count}


async def watch_loop_lag(record: Callable[[float], None], interval: float = INTERVAL) -> None:
    """Until cancelled: sleep `interval` and record how much later than asked the loop woke us (the
    probe of every worker's monitor, and of the controller's own loop, so that the two compare)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        record(max(0.0, loop.time() - due))


_MONITORS: dict[asyncio.AbstractEventLoop, LoopLag] = {}


def monitor_for(loop: asyncio.AbstractEventLoop) -> LoopLag:
    """The one monitor of `loop` (created on first use); its `worker` name is host and pid."""
    mon = _MONITORS.get(loop)
    if mon is None:
        mon = _MONITORS[loop] = LoopLag(loop, f"{socket.gethostname()}-{os.getpid()}")
    return mon
