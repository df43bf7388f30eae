"""Event-loop lag: how late the loop runs a timer. The controller's times (first sightings, ban
times, the timeline's schedule) are only as precise as this, so it is exported as a histogram."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LAG_PERIOD_SECONDS = 0.25  # a timer every 250 ms: cheap, and often enough to catch a stalled loop


async def watch_loop_lag(observe: Callable[[float], None], period: float = LAG_PERIOD_SECONDS) -> None:
    """Until cancelled: sleep ``period`` and observe how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period)  # the probe itself: the lateness of this wake-up is the measure
        observe(max(0.0, loop.time() - before - period))
