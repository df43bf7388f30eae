"""The node, and the package's only composition root: it builds the services (chain, mempool,
relay, misbehaviour, connection manager, addr service), registers which service handles each
message command (the table: relay/dispatch.py), and is what every lower layer reports to
through its small Protocol (net.peer.PeerEvents, net.connection.ConnectionEvents,
peering.connman.ConnManHost, relay.relay.RelayHost, addr.addrservice.AddrHost); none of them
imports this module.

Manual peers (`connect`, control API) are kept here and redialled when they drop. Automatic peer
management lives in peering/connman.py (8 full-relay + 2 block-relay outbound, feelers, anchors,
inbound eviction, bans), addr/addrservice.py (addr gossip) and addr/bootstrap.py (DNS seeds, fixed
seeds, seed nodes). Protocol (planned) vs transport addresses: NodeConfig.address, endpoints,
inbound_hosts (docs/node.md).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .addr.addrservice import AddrService
from .addr.bootstrap import BootstrapState, run_bootstrap
from .chain.chain import Chain
from .chain.mempool import Mempool
from .config import NodeConfig
from .procutil import within
from .wheel import SLOTS, TimerWheel, wheel_for
from .net.capture import CAPTURE_DIR, MessageCapture
from .net.connection import Connection, WriteBatch
from .net.chaos import ChaosFaults
from .net.linkem import LinkModel
from .net.looplag import LoopLag, monitor_for
from .net.peer import OUTBOUND_KINDS, LocalVersion, Peer
from .net.sandbox import DialRefused, Sandbox
from .net.shaping import Shaper
from .net.stats import NodeStats
from .peering.connman import ConnMan
from .peering.manual import ManualPeers
from .peering.discipline import MISBEHAVIOUR_LOG, Discipline
from .peering.misbehaviour import Misbehaviour
from .relay.dandelion import Dandelion
from .relay.dispatch import MESSAGE_HANDLERS, PAYLOAD_HANDLERS
from .relay.relay import Relay
from .timing import Clock
from .wire.codec import NetAddr, hash_to_hex
from .wire.messages import NODE_DANDELION, msg_version
from .wire.primitives import Block, Tx
from .wire.synthetic import make_block, make_tx


@functools.lru_cache(maxsize=1024)
def _unspecified(ip: str) -> bool:
    """Whether a bind address is 0.0.0.0 or ::. Asked at every dial, where parsing it each time
    was ~1.5 % of what 800 nodes spent forming their graph (py-spy); a process binds few."""
    return ipaddress.ip_address(ip).is_unspecified


@dataclass(frozen=True, slots=True)
class Disconnect:
    """One entry of a node's recent-disconnect log: 72 B where a dict took 232 (feelers alone add one
    every two minutes to each of 10,000 nodes, and the log keeps 256)."""

    address: str
    kind: str
    reason: str
    handshake_done: bool
    time: float


log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5.0  # netbase.h DEFAULT_CONNECT_TIMEOUT 5000 ms (socket level, not scaled)
MAX_BLOCK_TXS = 1000  # testbed: a mined synthetic block takes at most this many mempool txs


class Node(ChaosFaults, Discipline):
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.timers = config.make_timers()
        self.magic = config.magic_bytes
        self.rng = random.Random(config.seed)
        self.clock = Clock(config.clock_skew)  # wall clock as this node sees it (chaos: clock skew)
        self.shaper = Shaper(config.link, config.regions, config.bandwidth)
        self.lag: LoopLag | None = None  # the process's event-loop lag monitor, from start()
        self.stats = NodeStats()
        self.exports_lag = False  # the one node of a host that exports `lag` (host.py)
        self.misbehaviour = Misbehaviour(config.misbehaviour_policy)
        self.mempool = Mempool(config.max_mempool_mb)
        self.chain = Chain(max_orphan_mb=config.max_orphan_blocks_mb, max_stale_mb=config.max_stale_blocks_mb)
        self.relay = Relay(self, config.relay_policy)
        # Dandelion++ stem phase in front of diffusion (relay/dandelion.py); None under other policies
        self.dandelion = Dandelion(self, self.relay, config.dandelion) if config.relay_policy == "dandelion" else None
        self.sandbox = Sandbox(config.allowlist)
        self.peers: dict[int, Peer] = {}
        self.connman = ConnMan(self, config.peering)
        banman, cm = self.connman.banman, config.peering.countermeasures
        self.addrs = AddrService(
            self, self.connman.addrman, self.connman.netgroups, time_scale=config.time_scale,
            advertise=config.listen and config.peering.self_advertise, rate_limit=cm.addr_rate_limit,
            getaddr_cache=cm.getaddr_cache, wake=self.connman.wake,
            refused=lambda ip: not banman.empty and (banman.is_banned(ip) or banman.is_discouraged(ip)),
            in_initial_download=(lambda: False) if config.peering.self_advertise_in_ibd else
            lambda: self.chain.in_initial_download(self.clock(), self.timers.max_tip_age))
        self.handlers = MESSAGE_HANDLERS  # command -> service (through peer.owner: this node)
        self.payload_handlers = PAYLOAD_HANDLERS  # tried first, on the raw bytes
        self.bootstrap = BootstrapState()
        self.paused = False
        self.manual = ManualPeers(self)  # -connect/addnode targets (peering/manual.py)
        self.block_seen: dict[bytes, tuple[int, str | None]] = {}  # hash -> (first seen ns, from)
        self.disconnects: deque[Disconnect] = deque(maxlen=256)  # recent disconnects, for tests/status
        self.misbehaviour_log: deque[dict[str, Any]] = deque(maxlen=MISBEHAVIOUR_LOG)  # discipline.py says why
        self.port = config.port
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.write_batch: WriteBatch = None  # type: ignore[assignment]  # set by start()
        self.server: asyncio.AbstractServer | None = None
        self._tick_wheel: TimerWheel | None = None
        self._next_peer_check = 0.0  # loop time: no peer's timeout can expire before it (housekeeping_step)
        self._tick_key = 0
        self._dials: set[asyncio.Task[Any]] = set()
        self._bootstrap_task: asyncio.Task[None] | None = None
        self.running = False
        self.capture: MessageCapture | None = None
        if config.capture:
            self.set_capture(True)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> str:
        """Our protocol address ip:port (the planned one; see NodeConfig.address)."""
        return f"{self.config.protocol_address}:{self.port}"

    @property
    def link(self) -> LinkModel:
        return self.config.link

    @property
    def services(self) -> int:
        """The configured service bits, plus NODE_DANDELION when we relay stem transactions."""
        return self.config.services | (NODE_DANDELION if self.dandelion is not None else 0)

    def self_address(self) -> NetAddr:
        return NetAddr(self.config.protocol_address, self.port, self.services, int(self.clock()))

    def local_version(self, peer: Peer) -> LocalVersion:
        cfg = self.config
        return LocalVersion(services=self.services, user_agent=cfg.user_agent,
                            start_height=max(self.chain.height, cfg.start_height),
                            # dialling: name the planned address we are, so a receiver whose
                            # inbound_hosts packs several planned addresses on our transport IP
                            # can attribute us (protocol.md §1.4; Core sends an empty address)
                            addr_from=NetAddr() if peer.inbound else self.self_address())

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (unless `listen` is off); dialling starts with `start_dialling()` (host mode
        starts every listener first so that the first round of dials finds them up)."""
        self.loop = asyncio.get_running_loop()
        self.write_batch = WriteBatch(self.loop)
        self.lag = monitor_for(self.loop)
        self.lag.acquire()
        self.connman.load()  # addrman tables, bans and anchors from the data dir
        # before the listener: an inbound link counts against the process's descriptors from the first
        self.connman.hold_descriptors(listeners=int(self.config.listen), manual=len(self.config.connect_endpoints),
                                      automatic=not self.config.connect)
        self.running = True
        if self.config.listen:
            self.server = await self.loop.create_server(
                lambda: Connection(self, inbound=True), host=self.config.bind, port=self.config.port,
                reuse_address=True, backlog=128)
            self.port = self.server.sockets[0].getsockname()[1]
        self._tick_wheel = wheel_for(self.loop, self._tick_period())  # one timer per host, not a task per node
        self._tick_key = self._tick_wheel.add(self._housekeeping, slot=self.rng.randrange(SLOTS))
        if self.dandelion is not None:
            self.dandelion.start()

    def start_dialling(self) -> None:
        for ip, port in self.config.connect_endpoints:
            self.add_manual(ip, port)
        if self.config.connect:
            return  # Core's -connect: no automatic outbound connections and no DNS seeding
        self.connman.start()
        self._bootstrap_task = self.loop.create_task(run_bootstrap(self, self.connman, self.bootstrap),
                                                     name=f"{self.name}-bootstrap")

    async def stop(self) -> None:
        if not self.running:  # idempotent: a second stop must not overwrite the saved state
            return
        self.running = False
        if self.server is not None:
            self.server.close()  # first: whatever fails below, the address is not left held
        try:
            if self.lag is not None:
                self.lag.release()
            if self._tick_wheel is not None:
                self._tick_wheel.remove(self._tick_key)
                self._tick_wheel = None
            if self._bootstrap_task is not None:
                self._bootstrap_task.cancel()
            await self.connman.stop()  # saves addrman and anchors before the links go
            self.manual.stop()
            for task in list(self._dials):
                task.cancel()
            self.relay.stop()
            if self.dandelion is not None:
                self.dandelion.stop()
        finally:
            self.connman.release_descriptors()
            conns = [p.conn for p in self.peers.values()]
            for c in conns:
                c.close("shutdown")
            if conns:
                await asyncio.wait([c.closed for c in conns], timeout=5.0)
            if self.server is not None:
                await self.server.wait_closed()
            if self.capture is not None:
                self.capture.close()

    def set_capture(self, on: bool) -> dict[str, Any]:
        """Start or stop recording every message (net/capture.py) under <datadir>/message_capture.
        ValueError without a data directory: a capture must outlive the node to be read."""
        if on and self.capture is None:
            if not self.config.datadir:
                raise ValueError("capture needs a data directory (config datadir)")
            self.capture = MessageCapture(Path(self.config.datadir) / CAPTURE_DIR, self.config.capture_max_bytes)
        elif not on and self.capture is not None:
            self.capture.close()
            self.capture = None
        return self.capture_info()

    def capture_info(self) -> dict[str, Any]:
        return {"on": True, **self.capture.info()} if self.capture is not None else {"on": False}

    def _tick_period(self) -> float:
        t = self.timers
        return min(1.0, max(0.01, min(t.handshake_timeout, t.ping_interval, t.ping_timeout) / 10))

    def _housekeeping(self) -> None:
        """Once a tick period, from the host's timer wheel (in a random slot: ticks stay spread)."""
        if self.paused:
            return
        try:
            self.housekeeping_step(self.loop.time())
        except Exception:  # one bug must not stop pings and timeouts for good
            self.stats.housekeeping_errors += 1
            log.exception("%s: housekeeping round failed", self.name)

    def housekeeping_step(self, now: float) -> None:
        """One round of the periodic task: peer timeouts and pings, relay retries, addr sending."""
        if now >= self._next_peer_check:
            # Most ticks find no peer due (a ping every 2 min): the earliest deadline is kept here, and
            # a new peer or a finished handshake (attach, peer_ready) makes it "now" again.
            earliest = float("inf")
            for peer in list(self.peers.values()):
                if now >= peer.next_check and not peer.conn.closing:
                    peer.check_timeouts(now)
                earliest = min(earliest, peer.next_check)
            self._next_peer_check = earliest
        self.relay.tick(now)
        self.addrs.tick()

    # --- connections -----------------------------------------------------------------------------

    def attach(self, conn: Connection, addr: tuple[str, int], local: tuple[str, int]) -> Peer | None:
        """A TCP connection is up: refuse banned inbound, else make its Peer (outbound sends version)."""
        direction = "inbound" if conn.inbound else "outbound"
        prefer_evict = False
        if conn.inbound:
            hosted = self.config.inbound_hosts.get(addr[0])
            if hosted is not None and len(hosted) == 1:
                addr = (hosted[0], addr[1])  # a transport IP hosting one planned address is that address
            admit, prefer_evict = self.connman.admit_inbound(addr[0])
            if not admit:
                outcome = "refused-banned" if self.is_banned(addr[0]) else "refused-full"
                self.stats.connections[(direction, outcome)] += 1
                conn.close(outcome)
                return None
        peer = Peer(self, conn, addr if conn.inbound else (conn.target or addr), local, conn.inbound, conn.kind)
        peer.prefer_evict = prefer_evict
        if conn.inbound:
            self.connman.inbound_held(+1)
        if self.paused:
            conn.pause()
        self.peers[peer.id] = peer
        self._next_peer_check = 0.0  # its handshake deadline counts from now
        self.stats.connections[(direction, "accepted")] += 1
        if not conn.inbound:
            peer.send_version()
        return peer

    def detach(self, peer: Peer, exc: Exception | None) -> None:
        self.peers.pop(peer.id, None)
        self.misbehaviour.forget(peer.id)
        self.relay.peer_closed(peer)
        self.addrs.peer_gone(peer)
        if not peer.inbound:
            self.connman.wake()  # an outbound slot is free
        else:
            self.connman.inbound_held(-1)
        reason = peer.disconnect_reason or (f"connection lost: {exc}" if exc else "closed by peer")
        self.disconnects.append(Disconnect(peer.address, peer.kind, reason, peer.verack_received, time.time()))
        self.manual.peer_gone(peer)
        self.on_peer_disconnected(peer)

    def peer_ready(self, peer: Peer) -> None:
        """The handshake completed (verack received)."""
        self._next_peer_check = 0.0  # its keep-alive deadlines start now (Peer.on_verack)
        self.manual.peer_ready(peer)
        self.connman.peer_ready(peer)
        self.relay.peer_ready(peer)
        self.addrs.peer_ready(peer)
        self.on_peer_connected(peer)

    def check_incoming_nonce(self, nonce: int) -> bool:
        """False if `nonce` is one of our own outbound handshakes: we connected to ourselves."""
        return not any(p.local_nonce == nonce for p in self.peers.values()
                       if not p.inbound and not p.verack_received)

    def connected_to(self, ip: str, port: int | None = None) -> bool:
        """Core's AlreadyConnectedToAddress matches by IP (any direction); `port` narrows to outbound."""
        for p in self.peers.values():
            if p.ip == ip and (port is None or (not p.inbound and p.port == port)):
                return True
        return False

    def outbound_peers(self, kind: str | None = None) -> list[Peer]:
        """Open outbound peers: a closing one holds no slot (it may take CLOSE_GRACE to go)."""
        return [p for p in self.peers.values()
                if not p.inbound and not p.conn.closing and (kind is None or p.kind == kind)]

    def inbound_peers(self) -> list[Peer]:
        """Open inbound peers: what counts for admission and eviction (closing ones do not)."""
        return [p for p in self.peers.values() if p.inbound and not p.conn.closing]

    async def open_connection(self, ip: str, port: int, kind: str = "manual",
                              source_ip: str | None = None) -> Peer:
        """Dial ip:port. Raises DialRefused (sandbox, banned, already connected) or OSError/TimeoutError.

        The returned peer may still be in its handshake; `on_peer_connected` fires after verack.
        """
        if kind not in OUTBOUND_KINDS:
            raise ValueError(f"kind must be one of {OUTBOUND_KINDS}, got {kind!r}")
        dial_ip, dial_port = self.config.endpoint_of(ip, port)
        try:
            self.sandbox.check(ip)  # the allowlist covers planned addresses and their endpoints
            if dial_ip != ip:
                self.sandbox.check(dial_ip)
        except DialRefused:
            self.stats.sandbox_refused += 1
            raise
        if self.is_banned(ip) or self.connman.banman.is_discouraged(ip):
            raise DialRefused("banned", ip)
        if self.connected_to(ip):
            raise DialRefused("already-connected", ip)
        if ip in self.shaper.held:  # partitioned away: the SYN would never be answered
            raise DialRefused("unreachable", ip)
        bind = source_ip or self.config.bind
        local = None if _unspecified(bind) else (bind, 0)
        conn = Connection(self, inbound=False, kind=kind, target=(ip, port))
        try:
            dial = self.loop.create_connection(lambda: conn, host=dial_ip, port=dial_port, local_addr=local)
            await within(DEFAULT_CONNECT_TIMEOUT, dial)
        except (OSError, asyncio.TimeoutError) as e:
            conn.abandon(e)
            self.stats.connections[("outbound", "failed")] += 1
            raise
        except asyncio.CancelledError as e:  # the node stops
            conn.abandon(e)
            raise
        if conn.peer is None:
            raise ConnectionError(f"connection to {ip}:{port} closed at once")
        return conn.peer

    def add_manual(self, ip: str, port: int) -> None:
        """Keep a connection to ip:port, redialling it when it drops (like -connect/addnode)."""
        self.manual.add(ip, port)

    def remove_manual(self, ip: str, port: int) -> bool:
        return self.manual.remove(ip, port)

    # --- hooks (peer management) ------------------------------------------------------------------

    def on_peer_version(self, peer: Peer, msg: msg_version) -> bool:
        """A peer's version arrived (PeerEvents). An inbound peer from a transport IP that packs
        several planned addresses becomes the one its addr_from names (refused if that is not one
        of them, or is banned); then the on_version hook. False: refused and closed."""
        hosted = self.config.inbound_hosts.get(peer.ip) if peer.inbound else None
        if hosted is not None and len(hosted) > 1:
            claimed = msg.addr_from.ip
            if claimed not in hosted:
                self.stats.protocol_errors["unattributed-inbound"] += 1
                peer.disconnect(f"addr_from {claimed} is not hosted by {peer.ip}")
                return False
            if self.is_banned(claimed) or self.connman.banman.is_discouraged(claimed):
                self.stats.connections[("inbound", "refused-banned")] += 1
                peer.disconnect("refused-banned")
                return False
            peer.ip = claimed
        self.on_version(peer, msg.addr_from.port if msg.addr_from.ip == peer.ip else 0)
        return True

    def on_version(self, peer: Peer, listen_port: int = 0) -> None:
        """Hook: a peer's version was accepted. Outbound addresses are marked good in addrman (Core);
        `listen_port`: the port an inbound peer's addr_from announces for its own address (0: none)."""
        self.connman.on_version(peer, listen_port)

    def on_peer_connected(self, peer: Peer) -> None:
        """Handshake done (verack). Subclasses (attackers) may extend."""

    def on_peer_disconnected(self, peer: Peer) -> None:
        """A peer is gone (any reason, any stage)."""

    # --- pause (a frozen process, as SIGSTOP would make it, but for one node of a host) ------------

    def pause(self) -> None:
        """Stop reading, sending timers and dialling; links stay open until peers time out."""
        self.paused = True
        for p in self.peers.values():
            p.conn.pause()

    def resume(self) -> None:
        self.paused = False
        for p in self.peers.values():
            p.conn.resume()

    # --- injection (harness and control API) ------------------------------------------------------

    def submit_tx(self, tx: Tx) -> bool:
        """Our own transaction: into the Dandelion stem under that policy, else the mempool."""
        if self.dandelion is not None:
            return self.dandelion.originate(tx)
        return self.relay.accept_tx(tx, None)

    def inject_tx(self) -> Tx:
        tx = make_tx()
        self.submit_tx(tx)
        return tx

    def submit_block(self, block: Block) -> bool:
        """Raises chain.BlockInvalid for a block that fails the checks."""
        return self.relay.accept_block(block, None)

    def mine_block(self, include_mempool: bool = True, size: int | None = None, fill: str = "txs") -> Block:
        """A block on our tip with the mempool's txs, and filled up to `size` bytes if given."""
        tip = self.chain.tip
        txs = list(self.mempool.txs.values())[:MAX_BLOCK_TXS] if include_mempool else []
        block = make_block(tip.hash, self.chain.height + 1, tip.header.time, txs, size=size, fill=fill)
        self.submit_block(block)
        return block

    def status(self, peer_list: bool = True) -> dict[str, Any]:
        """Without `peer_list`, `peer_counts` by direction replaces `peers` (a poll of 10,000 nodes
        that needs the counts only: 3 kB of JSON a node instead of 15 kB)."""
        hosts = self.config.inbound_hosts  # unlisted: a link from a transport IP of several planned addresses before its version
        peers: dict[str, Any] = {"peers": [p.info() for p in self.peers.values()
                                           if not (p.inbound and len(hosts.get(p.ip, ())) > 1)]} if peer_list else \
            {"peer_counts": {"inbound": sum(p.inbound for p in self.peers.values()),
                             "outbound": sum(not p.inbound for p in self.peers.values())}}
        return {
            "id": self.name, "address": self.address, "height": self.chain.height,
            "tip": hash_to_hex(self.chain.tip.hash), "mempool": len(self.mempool),
            "relay_policy": self.config.relay_policy,
            "dandelion": self.dandelion.status() if self.dandelion is not None else None, "user_agent": self.config.user_agent,
            **peers, "paused": self.paused,
            "peering": self.connman.status(),
            "chaos": self.chaos_status(),
            "load": {"processing_seconds": self.stats.processing_seconds,
                     "bytes_in": sum(b for (d, _), b in self.stats.bytes.items() if d == "in")},
            "bootstrap": {"queried": self.bootstrap.queried, "refused": self.bootstrap.refused,
                          "learned": self.bootstrap.learned,
                          "fixed_seeds_used": self.bootstrap.fixed_seeds_used},
        }
