"""How many outbound handshakes the nodes of one host process run at once (docs/protocol.md,
testbed adaptation 8).

Core's ThreadOpenConnections opens one connection at a time per node, and each node has a machine
of its own. Here hundreds of nodes share one event loop: when all of them dial together (a network
of thousands forming) the loop falls seconds behind, the 5 s connect timeout (socket level, not
scaled, as Core's) fires on connections the kernel had already made, and every re-dial is more work
for a loop that is already late (at 10,000 nodes the network never formed: docs/benchmarks.md).

So the nodes of a host dial through one gate: at most `limit` outbound connections between the
start of their connect() and the end of their handshake (verack, the connection closing, or
`hold_max` seconds, so that a peer that never answers cannot hold a place); further dials wait
their turn, and a dial's connect timeout starts only when it leaves the gate. A node alone in its
process never waits (the limit is far above its 11 outbound slots).
"""

from __future__ import annotations

import asyncio

HANDSHAKES_IN_FLIGHT = 64  # per host process
HOLD_MAX = 2.0  # seconds a place is held after connect() without a verack


class Permit:
    """One place in the gate; `release` is idempotent (connect failed, verack, close or hold_max)."""

    __slots__ = ("_gate", "_timer")

    def __init__(self, gate: "DialGate") -> None:
        self._gate: DialGate | None = gate
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Keep the place at most `seconds` longer (the handshake is under way)."""
        if self._gate is not None:
            self._timer = loop.call_later(seconds, self.release)

    def release(self, *_: object) -> None:
        gate, self._gate = self._gate, None
        if gate is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gate.left()


class DialGate:
    def __init__(self, limit: int = HANDSHAKES_IN_FLIGHT, hold_max: float = HOLD_MAX) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.hold_max = hold_max
        self.inside = 0
        self.waited = 0  # dials that had to queue (a measure of how saturated the host was)
        self._sem = asyncio.Semaphore(limit)

    async def enter(self) -> Permit:
        if self._sem.locked():
            self.waited += 1
        await self._sem.acquire()
        self.inside += 1
        return Permit(self)

    def left(self) -> None:
        self.inside -= 1
        self._sem.release()
