"""Spam peers (`kind: spam`): each identity runs its behaviours (behaviours.CATALOGUE) against every
target, one connection per target and behaviour, and records what the victim did: when it closed
the link, and whether a reconnection right after was refused (a ban) or accepted.

Params (unknown keys refused):

    {"behaviours": [{"behaviour": "oversized-inv", "rate": 50, "start": 2, "count": null,
                     "connections": 1, "observe": 10}]}

`rate` is messages per second, `start` seconds after the attacker starts (behaviours run in list
order, each waiting for its own start), `count` messages (default: what the table needs, see
behaviours.Behaviour.count), `connections` links for connection-flood, `observe` seconds to wait
after the last message for the victim's reaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from ..dictconfig import from_mapping
from .base import ATTACKS, AttackPeer, Attacker
from .behaviours import BEHAVIOURS, READY, VERSION_ONLY, Behaviour, behaviour
from .config import AttackConfigError
from .forge import SENDERS

PROBE_DELAY = 0.5  # s after the victim closed before probing whether the address is refused
PROBE_TIMEOUT = 3.0  # s to wait for the victim's version on the probe
# s to keep dialling a target that is not listening yet (the run is starting): an attacker container
# starts with the nodes' containers, and dozens of them booting on a loaded 2-core machine can take longer
TARGET_WAIT = 120.0


@dataclass
class BehaviourParams:
    behaviour: str
    rate: float = 50.0
    start: float = 0.0
    count: int | None = None
    connections: int = 1
    observe: float = 10.0

    def __post_init__(self) -> None:
        behaviour(self.behaviour)  # ValueError naming the known ones
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 messages per second, got {self.rate}")
        if self.start < 0 or self.observe < 0:
            raise ValueError("start and observe must be >= 0 seconds")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.connections < 1 or (self.connections > 1 and not BEHAVIOURS[self.behaviour].connections):
            raise ValueError(f"connections: only connection-flood opens more than one (got {self.connections})")


@dataclass
class SpamParams:
    behaviours: list[BehaviourParams] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> "SpamParams":
        if not isinstance(data, dict) or set(data) - {"behaviours"}:
            raise AttackConfigError(f"spam params: only 'behaviours' is known, got {sorted(data) if isinstance(data, dict) else data!r}")
        raw = data.get("behaviours")
        if not isinstance(raw, list) or not raw:
            raise AttackConfigError("spam params.behaviours: a non-empty list of behaviours")
        items = []
        for i, item in enumerate(raw):
            try:
                items.append(from_mapping(BehaviourParams, item, f"spam params.behaviours[{i}]", AttackConfigError))
            except ValueError as e:
                raise AttackConfigError(f"spam params.behaviours[{i}]: {e}") from None
        return cls(items)


@dataclass
class Run:
    """One behaviour against one target, as the attacker saw it."""

    behaviour: str
    target: str
    target_name: str
    started_at: float | None = None
    sent: int = 0
    connections: int = 0  # links the victim accepted (connection-flood: how many of `connections`)
    closed_by_victim_at: float | None = None
    close_reason: str = ""
    reconnect: str | None = None  # "refused" (closed before its version) or "accepted", after a victim's close
    finished_at: float | None = None
    error: str | None = None


@ATTACKS.register("spam", params=SpamParams)
class SpamAttacker(Attacker):
    """Floods its targets with the behaviours of the spam catalogue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs: list[Run] = []

    async def run(self) -> None:
        begin = asyncio.get_running_loop().time()
        for params in self.params.behaviours:
            delay = begin + params.start - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            b = BEHAVIOURS[params.behaviour]
            self.behaviour = b.name  # the metrics' label for what the links send from now on
            runs = [Run(b.name, t, self.target_name(t)) for t in self.spec.targets]
            self.runs += runs
            await asyncio.gather(*(self._one(b, params, r) for r in runs))
            self.metrics.behaviour_done(b.name)

    async def _one(self, b: Behaviour, params: BehaviourParams, run: Run) -> None:
        try:
            peers = await self._open(b, params, run)
            run.started_at = time.time()
            await self._send(b, params, run, peers[0])
            await self._observe(params, run, peers)
        except (OSError, TimeoutError, ConnectionError, asyncio.TimeoutError) as e:
            run.error = f"{type(e).__name__}: {e}"
        finally:
            run.finished_at = time.time()

    async def _open(self, b: Behaviour, params: BehaviourParams, run: Run) -> list[AttackPeer]:
        if b.stage == READY:
            first = await self.dial(run.target, retry_for=TARGET_WAIT)
            links = [first, *await asyncio.gather(*(self.dial(run.target) for _ in range(params.connections - 1)),
                                                  return_exceptions=True)]
            peers = [p for p in links if isinstance(p, AttackPeer)]
            run.connections = len(peers)
            if not peers:
                raise ConnectionError(f"no connection accepted: {links[0]}")
            return peers
        peer = await self.dial(run.target, handshake=False, handshake_replies=False, retry_for=TARGET_WAIT)
        run.connections = 1
        if b.stage == VERSION_ONLY:
            peer.send_version()
            await peer.wait_until(lambda: peer.their_version is not None, PROBE_TIMEOUT, what="their version")
        return [peer]

    async def _send(self, b: Behaviour, params: BehaviourParams, run: Run, peer: AttackPeer) -> None:
        send = SENDERS.get(b.name)
        if send is None:  # slow-handshake and connection-flood: holding the links is the behaviour
            return
        interval = 1.0 / params.rate
        for i in range(b.count(params.count)):
            if peer.closed:
                break
            send(peer, i)
            run.sent += 1
            await peer.drain()
            await asyncio.sleep(interval)

    async def _observe(self, params: BehaviourParams, run: Run, peers: list[AttackPeer]) -> None:
        """Wait for the victim's reaction on the first link; probe a close with a reconnection."""
        peer = peers[0]
        with contextlib.suppress(TimeoutError):
            await peer.wait_closed(params.observe)
        if peer.closed_by_victim:
            run.closed_by_victim_at = time.time()
            run.close_reason = peer.close_reason
            await asyncio.sleep(PROBE_DELAY)
            run.reconnect = await self._probe(run.target)
        for p in peers:
            await p.close("behaviour over")

    async def _probe(self, target: str) -> str:
        """"refused" when the victim closes a fresh link before sending its version (banned; Core
        refuses discouraged addresses only when nearly full), else "accepted"."""
        try:
            probe = await self.dial(target, handshake=False, handshake_replies=False)
        except (OSError, asyncio.TimeoutError):
            return "refused"
        try:
            probe.send_version()
            await probe.wait_until(lambda: probe.their_version is not None, PROBE_TIMEOUT, what="their version")
            return "accepted"
        except (ConnectionError, TimeoutError):
            return "refused"
        finally:
            await probe.close("probe over")

    def detail(self) -> dict[str, Any]:
        return {"runs": [vars(r) for r in self.runs]}
