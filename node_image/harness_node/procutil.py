"""Process set-up shared by the long-running entry points (node host, attacker process)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop (a declared dependency: faster sockets and timers), else the stdlib loop: the fallback is
    for platforms it does not build on (pyproject marks it `sys_platform != 'win32'`)."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# Young-generation threshold for a host process (CPython's default is 700 allocations). A process of
# 800 nodes holds ~900,000 objects (~1,100 per node) and a handshake allocates thousands of short-lived
# ones, so with the default the collector ran ~2,700 young and ~250 middle collections and 14 full ones
# (each walking every object) while such a network formed: 3.0 of its 9.3 CPU seconds. At 50,000 it
# runs ~35 young collections and no full one in the same work (docs/benchmarks.md, issue 17, fifth round).
# Cyclic garbage is still collected, only in larger batches.
# The middle generation runs after every 4 young collections, not 20: every object it walks is walked
# there once before it moves on to the oldest, so its total work does not depend on this number, but
# after 20 each run walked a million objects at once (~0.5 CPU s: a loop stalled 2.4 s with 12
# processes on 2 cores, seen as idle lag and a late first transaction at 10,000 nodes). A full
# collection still waits for 200 young ones (4 x 50) and for CPython's 25 % growth rule.
GC_THRESHOLDS = (50_000, 4, 50)


def tune_gc() -> None:
    """Collect cyclic garbage in fewer, larger batches: the many-node processes allocate fast."""
    gc.set_threshold(*GC_THRESHOLDS)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: a node holds ~20 sockets (listener, 10
    outbound, inbound) and a flooding attacker hundreds, so the common soft limit of 1024 is short."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (not in the main thread: never set)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


# A timer that runs this much later than due says the loop was busy, not that the socket was slow.
LATE_TIMER = 0.25  # seconds
MAX_REARMS = 4  # within(): how often a late timer is given the lost time back


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`await awaitable`, raising TimeoutError after `seconds` of time the loop could look at it.

    For a socket operation (the node's connect timeout, Core's 5 s): on loopback a connect completes
    in the kernel at once, but a host process whose loop runs seconds behind (thousands of nodes
    handshaking at once) sees its timer and the socket's completion in the same late turn, and
    timers run first: the dial was given up although the socket had connected, and both ends paid
    for a link nobody used (21,411 of 130,482 dials while 10,000 nodes formed their graph,
    docs/benchmarks.md). So when the timer fires, it first asks whether the loop is behind: by how
    late the timer ran, else by how long a callback queued now waits for its turn (whatever the loop
    had queued before it, a connect's completion among them, runs first). Behind by more than
    LATE_TIMER, the timer is re-armed for that long (at most `seconds`): the operation gets back the
    time the loop lost. Up to MAX_REARMS times: a connect's completion can take several of a slow
    loop's turns, and a timer that runs early in a long turn looks on time (3,936 of 107,900 dials
    given up while 10,000 nodes formed, when only a late timer was re-armed, once). A peer that
    really does not answer still fails, when the loop is not behind or after the last re-arm
    (protocol.md, testbed adaptation 9).

    asyncio.timeout where it exists (3.11), which cancels in place, instead of wait_for's extra task
    per call (about 8 % of the CPU a thousand nodes spend dialling each other); on 3.10 wait_for,
    without the re-arming."""
    if not hasattr(asyncio, "timeout"):
        return await asyncio.wait_for(awaitable, seconds)
    async with asyncio.timeout(None) as scope:
        deadline = _Deadline(asyncio.get_running_loop(), scope, seconds)
        try:
            return await awaitable
        finally:
            deadline.cancel()


class _Deadline:
    """within()'s timer. An object, not closures: closures that call each other form a cycle that
    outlives the dial until the collector runs (~2 kB a node more after 800 nodes formed), where
    this is freed as soon as its handle is cancelled."""

    __slots__ = ("loop", "scope", "seconds", "due", "rearms", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, scope: asyncio.Timeout, seconds: float) -> None:
        self.loop, self.scope, self.seconds, self.rearms = loop, scope, seconds, 0
        self.due = loop.time() + seconds
        self.handle: asyncio.Handle = loop.call_at(self.due, self.expire)

    def cancel(self) -> None:
        self.handle.cancel()

    def expire(self) -> None:
        late = self.loop.time() - self.due
        if late > LATE_TIMER or self.rearms >= MAX_REARMS:
            self.settle(late)
        else:  # on time, but is the loop behind? (the wall clock: uvloop's time() is per turn)
            self.handle = self.loop.call_soon(self.probe, time.monotonic())

    def probe(self, queued: float) -> None:
        self.settle(time.monotonic() - queued)

    def settle(self, behind: float) -> None:
        now = self.loop.time()
        if behind > LATE_TIMER and self.rearms < MAX_REARMS:
            self.rearms += 1
            self.due = now + min(behind, self.seconds)
            self.handle = self.loop.call_at(self.due, self.expire)
        else:
            self.scope.reschedule(now)  # now: the scope cancels the awaiting task
