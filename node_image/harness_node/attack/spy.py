"""The spy supernode (`kind: spy`, issue 11): it connects to every target, never relays anything,
and records for each transaction the time each peer first announced it to the spy.

Two ways in, as in the deanonymisation literature (protocol.md §8):

- **dialling** (Fanti & Viswanath's supernode): `connections` links to every target. The spy is
  their inbound peer, so it hears their diffusion announcements (`inv`) on the shared inbound timer.
- **listening** (Dandelion++'s spy nodes): the identity accepts connections on its planned address
  and, with `advertise_dandelion`, claims NODE_DANDELION and our user agent, so a Dandelion node that
  dials it may pick it as a stem relay; a stem transaction (`dandeliontx`) handed to it is recorded
  as announced by the sender. The spy drops it (it never relays), so the sender's embargo timer
  fluffs it (relay/dandelion.py): the spy costs the network latency, never a transaction.

It never sends `getdata`, `inv` or `tx`; it answers the handshake and pings only. It does not send
`wtxidrelay`, so announcements carry txids, the ids the harness journals.

The view (`views`: txid hex -> {peer name: first announcement, unix seconds}) is read through the
identity's `GET /data` (its counts ride on `/status`); the harness's collector merges the views of
all identities and its estimators (harness/analysis/privacy.py) do the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from .. import USER_AGENT
from ..wire.codec import hash_to_hex
from ..wire.messages import MSG_TX, MSG_WTX, NODE_DANDELION, NODE_NETWORK, NODE_WITNESS
from .base import ATTACKS, Attacker, AttackPeer
from .config import AttackConfigError

MAX_CONNECTIONS_PER_TARGET = 8  # a node's inbound slots are shared with honest peers; more is a flood
MAX_VIEW_TRANSACTIONS = 100_000  # bounded memory: older transactions are forgotten first
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds between dials of a target that is not up (yet)


@dataclass
class SpyParams:
    connections: int = 1  # links the identity opens to each target
    listen: bool = True  # accept inbound connections (be dialled: a possible Dandelion stem relay)
    advertise_dandelion: bool = True  # claim NODE_DANDELION so Dandelion nodes may choose it

    @classmethod
    def from_dict(cls, data: Any) -> "SpyParams":
        from ..dictconfig import from_mapping
        params = from_mapping(cls, data, "spy params", AttackConfigError)
        c = params.connections
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= MAX_CONNECTIONS_PER_TARGET:
            raise AttackConfigError(f"spy params.connections: must be an integer in 0..{MAX_CONNECTIONS_PER_TARGET}, "
                                    f"got {c!r}")
        for key in ("listen", "advertise_dandelion"):
            if not isinstance(getattr(params, key), bool):
                raise AttackConfigError(f"spy params.{key}: must be true or false, got {getattr(params, key)!r}")
        return params


class SpyPeer(AttackPeer):
    """One spy link: records tx announcements, relays nothing."""

    def __init__(self, owner: "SpyAttacker", **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self.spy = owner

    def on_inv(self, msg: Any) -> None:
        for inv in msg.inv:
            if inv.type in (MSG_TX, MSG_WTX):
                self.spy.record(inv.hash, self)

    def on_dandeliontx(self, msg: Any) -> None:
        self.spy.record(msg.tx.txid, self, stem=True)

    def on_tx(self, msg: Any) -> None:  # unsolicited: still an announcement of sorts
        self.spy.record(msg.tx.txid, self)


@ATTACKS.register("spy", params=SpyParams)
class SpyAttacker(Attacker):
    """A supernode that connects to every target and times their transaction announcements."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.views: dict[str, dict[str, float]] = {}
        self.stems = 0
        self.server: asyncio.AbstractServer | None = None
        self.accepted: list[SpyPeer] = []
        # planned ip -> the target's node name, so an accepted link is named like a dialled one
        names = self.spec.target_names or self.spec.targets
        self.names = {t.rsplit(":", 1)[0]: n for t, n in zip(self.spec.targets, names)}

    def _peer_kwargs(self) -> dict[str, Any]:
        services = NODE_NETWORK | NODE_WITNESS | (NODE_DANDELION if self.params.advertise_dandelion else 0)
        return {"services": services, "user_agent": USER_AGENT, "negotiate": ("sendaddrv2",)}

    def new_peer(self, **kwargs: Any) -> SpyPeer:
        """Every link of the spy records (Attacker.new_peer's addr_from rule, with a SpyPeer)."""
        for k, v in self._peer_kwargs().items():
            kwargs.setdefault(k, v)
        if self.spec.bind and self.spec.bind != self.spec.address:
            kwargs.setdefault("addr_from", self.own_address())
        return SpyPeer(self, **kwargs)

    def name_of(self, peer: AttackPeer) -> str:
        ip = peer.target.rsplit(":", 1)[0] if peer.target else peer.peer_addr[0]
        return self.names.get(ip, ip)

    def record(self, txid: bytes, peer: AttackPeer, stem: bool = False) -> None:
        now = time.time()
        key = hash_to_hex(txid)
        view = self.views.get(key)
        if view is None:
            if len(self.views) >= MAX_VIEW_TRANSACTIONS:
                self.views.pop(next(iter(self.views)))
            view = self.views[key] = {}
        who = self.name_of(peer)
        if who not in view:
            view[who] = now
            self.metrics.spy_announcements.labels(self.metrics.attacker).inc()
        if stem:
            self.stems += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = self.new_peer()
        peer.attach(reader, writer)
        self.accepted.append(peer)
        self.peers.append(peer)
        self.metrics.set_open(self.open_count())

    async def run(self) -> None:
        if self.params.listen:
            self.server = await asyncio.start_server(self._accept, self.spec.source_ip, self.spec.port,
                                                     reuse_address=True)
        dials = [asyncio.ensure_future(self._dial_one(t)) for t in self.spec.targets
                 for _ in range(self.params.connections)]
        try:
            await asyncio.Event().wait()  # keep listening and recording until stopped
        finally:
            for d in dials:
                d.cancel()
            if self.server is not None:
                self.server.close()
                with contextlib.suppress(Exception):
                    await self.server.wait_closed()

    async def _dial_one(self, target: str) -> None:
        """Keep trying until the link is up: a supernode wants every reachable node, including
        those that start after it (backoff 0.5 s doubling to 30 s, wall clock)."""
        delay = RETRY_FIRST
        while True:
            try:
                await self.dial(target)
                return
            except (OSError, asyncio.TimeoutError, ConnectionError, TimeoutError) as e:
                self.note("dial-failed", target=target, error=str(e))
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)

    def detail(self) -> dict[str, Any]:
        return {"transactions": len(self.views), "announcements": sum(len(v) for v in self.views.values()),
                "stem_transactions": self.stems, "accepted": sum(1 for p in self.accepted if not p.closed)}

    def data(self, since: float | None = None) -> dict[str, Any]:
        """The views; with `since`, only the announcements first heard at or after it (a first
        announcement never changes, so the reader merges these into what it read before), and
        `now`, the `since` of the reader's next call."""
        now = time.time()
        if since is None:
            return {"views": self.views, "now": now}
        recent = {item: {who: t for who, t in view.items() if t >= since} for item, view in self.views.items()}
        return {"views": {item: view for item, view in recent.items() if view}, "now": now}
