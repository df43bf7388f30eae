"""Connection manager: automatic outbound slots, feelers, anchors, inbound admission and eviction.

Bitcoin Core's ThreadOpenConnections and AttemptToEvictConnection (protocol.md §2.1), driven by the
node's addrman. Countermeasure switches (peerconfig.Countermeasures) turn single defences off.
Addr gossip lives in addrservice.py; bootstrap from seeds in bootstrap.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..addr.addrman import AddrMan, AddrManCorruptError
from ..addr.netgroup import NetGroups
from ..atomicfile import write_json_atomic
from ..net.peer import Peer
from ..net.sandbox import DialRefused, Sandbox
from ..timing import Timers
from ..wire.messages import NODE_NETWORK, NODE_WITNESS, NetAddr
from .banman import BanListError, BanMan
from .descriptors import DescriptorBudget, budget_for
from .eviction import EvictionCandidate, select_node_to_evict
from .misbehaviour import Action
from .peerconfig import MAX_ANCHORS, MAX_FEELER, PeerConfig

log = logging.getLogger(__name__)

SELECT_TRIES = 100  # net.cpp: up to 100 addrman.Select() tries per loop
RECENT_TRY_SECONDS = 600  # net.cpp: skip addresses tried in the last 10 min (until try 30)
RECENT_TRY_UNTIL = 30
SERVICES_UNTIL = 40  # net.cpp: skip peers without NETWORK|WITNESS (until try 40)
DUMP_PEERS_INTERVAL = 900.0  # net.cpp DUMP_PEERS_INTERVAL 15 min (scaled; at least 1 s)
AUTOMATIC_KINDS = ("outbound-full-relay", "block-relay", "feeler")
IDLE_BACKOFF_MAX = 5  # idle rounds wait up to 2^5 = 32 loop periods (16 s at Core's 500 ms)
INF = float("inf")
ADDRMAN_FILE = "peers.json"
ANCHORS_FILE = "anchors.json"
BANLIST_FILE = "banlist.json"
# A ban storm (an attack that earns a thousand bans in a second) must not rewrite and fsync the
# whole list once per ban on the event loop: changes are written at most this often, off the loop.
BANLIST_FLUSH_DELAY = 1.0  # seconds (not scaled: it is about disk cost, not protocol time)


class HostConfig(Protocol):
    """The node config fields the connection manager reads (config.NodeConfig has them)."""

    name: str
    bind: str
    datadir: str | None
    time_scale: float


class ConnManHost(Protocol):
    """What the connection manager reads from, and asks of, its owner (node.py builds it and is one)."""

    config: HostConfig
    name: str
    loop: Any  # asyncio.AbstractEventLoop
    rng: random.Random
    clock: Callable[[], float]  # the node's wall clock (skewed by a chaos fault)
    timers: Timers
    sandbox: Sandbox
    running: bool
    port: int
    peers: Mapping[int, Peer]

    def outbound_peers(self, kind: str | None = None) -> list[Peer]: ...
    def inbound_peers(self) -> list[Peer]: ...
    def connected_to(self, ip: str, port: int | None = None) -> bool: ...
    async def open_connection(self, ip: str, port: int, kind: str = "manual",
                              source_ip: str | None = None) -> Peer: ...


class ConnMan:
    def __init__(self, node: ConnManHost, cfg: PeerConfig) -> None:
        self.node = node
        self.cfg = cfg
        self.cm = cfg.countermeasures
        scale = node.config.time_scale
        self.datadir = Path(node.config.datadir) if node.config.datadir else None
        # addrman's bucket key: secret per node, stable across restarts (persisted with the tables)
        self.netgroups = NetGroups(cfg.netgroup_bits, cfg.all_routable)
        # addr times and ban expiries read the node's clock, which a chaos fault may skew
        self.addrman = AddrMan(node.rng.randbytes(32), self.netgroups, node.rng, node.clock,
                               use_tried=self.cm.tried_table, test_before_evict=self.cm.test_before_evict,
                               time_scale=scale, common_port=node.config.port)
        self.banman = self._open_banlist()
        self._ban_flush: asyncio.Task[None] | None = None
        self._bans_dirty = False
        self._eviction_key = node.rng.randbytes(16)
        self.anchors: list[tuple[str, int]] = []
        self.pending: dict[tuple[str, int], str] = {}  # dials in flight -> kind
        self.next_feeler = 0.0
        self.next_dump = 0.0
        self.dump_interval = max(1.0, DUMP_PEERS_INTERVAL * scale)
        self.recent_try = RECENT_TRY_SECONDS * scale
        self.counters: dict[str, int] = {"feelers": 0, "sandbox_skipped": 0, "evictions": 0,
                                         "inbound_refused_full": 0, "inbound_refused_descriptors": 0,
                                         "dials": 0, "dial_failures": 0}
        self.descriptors: DescriptorBudget | None = None
        self.slots_filled_at: float | None = None  # epoch s: every outbound slot first held a ready peer
        self._set_aside = 0
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # the outbound loop's pause, while it waits
        self._dials: set[asyncio.Task[Any]] = set()

    def _open_banlist(self) -> BanMan:
        path = self.datadir / BANLIST_FILE if self.datadir else None
        make = lambda: BanMan(str(path) if path else None, self.node.clock, self.node.timers.bantime,  # noqa: E731
                              on_change=self._bans_changed)
        try:
            return make()
        except BanListError as e:  # as a corrupt peers.json: set it aside and start with no bans
            assert path is not None
            log.warning("%s: %s; moved to %s, starting with no bans", self.node.name, e, path.with_suffix(".corrupt"))
            path.rename(path.with_suffix(".corrupt"))
            return make()

    def _bans_changed(self) -> None:
        """The ban list changed: write it within BANLIST_FLUSH_DELAY, on an executor thread (at
        once, on this thread, when no loop runs: before start or after stop)."""
        self._bans_dirty = True
        if self._ban_flush is not None:
            return  # the pending write will see the change
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._bans_dirty = False
            self.banman.flush()
            return
        self._ban_flush = loop.create_task(self._flush_bans(), name=f"{self.node.name}-banlist")

    async def _flush_bans(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._bans_dirty:
                await asyncio.sleep(BANLIST_FLUSH_DELAY)
                self._bans_dirty = False
                await loop.run_in_executor(None, self.banman.write, self.banman.snapshot())
        except OSError as e:  # a full disk must not stop the node; the next change retries
            log.warning("%s: cannot write the ban list: %s", self.node.name, e)
        finally:
            self._ban_flush = None

    # --- lifecycle -------------------------------------------------------------------------------

    def load(self) -> None:
        """Tables, bans and anchors from the data dir (a restarted node resumes where it stopped)."""
        if self.datadir is None:
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        peers = self.datadir / ADDRMAN_FILE
        if peers.exists():
            try:
                self.addrman.load(peers)
            except AddrManCorruptError as e:  # Core renames a corrupt peers.dat and starts empty
                log.warning("%s: %s; starting with an empty address manager", self.node.name, e)
                peers.rename(peers.with_suffix(".corrupt"))
        anchors = self.datadir / ANCHORS_FILE
        if anchors.exists():
            if self.cm.anchors:
                try:
                    self.anchors = [(a["ip"], int(a["port"])) for a in json.loads(anchors.read_text())][:MAX_ANCHORS]
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: unreadable %s ignored", self.node.name, anchors)
            anchors.unlink()  # Core deletes anchors.dat once read

    def hold_descriptors(self, listeners: int, manual: int, automatic: bool = True) -> None:
        """Set this node's own descriptors aside from its process's budget (descriptors.py):
        listeners, every outbound slot (feeler included) and its manual peers. A node told whom to
        connect to (Core's -connect) never opens an automatic slot, so it holds none: 1,000 such
        nodes in one process (bench_node.py) held 21 each and left their 20,000 no inbound link."""
        self.release_descriptors()  # a restarted node sets its share aside once
        self.descriptors = budget_for(self.node.loop)
        slots = self.cfg.outbound_full_relay + self.cfg.block_relay + MAX_FEELER if automatic else 0
        self._set_aside = listeners + slots + manual
        self.descriptors.set_aside(self._set_aside)

    def inbound_held(self, change: int) -> None:
        """An inbound link of this node opened (+1) or went (-1): it counts against the process's share."""
        if self.descriptors is not None:
            self.descriptors.inbound += change

    def release_descriptors(self) -> None:
        if self.descriptors is not None:
            self.descriptors.give_back(self._set_aside)
            self._set_aside = 0

    def start(self) -> None:
        now = time.time()
        self.next_feeler = now + self.node.rng.expovariate(1 / self.node.timers.feeler_mean)
        self.next_dump = now + self.dump_interval
        self._task = self.node.loop.create_task(self._loop(), name=f"{self.node.name}-connman")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for t in list(self._dials):
            t.cancel()
        pending = self._ban_flush is not None
        if self._ban_flush is not None:
            self._ban_flush.cancel()
            self._ban_flush = None
        if pending or self._bans_dirty:
            self.banman.flush()  # the newest snapshot: a write still in flight cannot replace it
        self._bans_dirty = False
        self.save(anchors=True)

    def save(self, anchors: bool = False) -> None:
        if self.datadir is None:
            return
        self.addrman.save(self.datadir / ADDRMAN_FILE)
        if anchors and self.cm.anchors:
            peers = [p for p in self.node.outbound_peers("block-relay") if p.verack_received][:MAX_ANCHORS]
            write_json_atomic(self.datadir / ANCHORS_FILE, [{"ip": p.ip, "port": p.port} for p in peers])

    # --- the outbound loop -----------------------------------------------------------------------

    async def _loop(self) -> None:
        period = self.node.timers.connect_loop
        await asyncio.sleep(self.node.rng.uniform(0, period))
        idle_rounds = 0
        while True:
            try:
                dialled = self.step()
            except Exception:  # a bug in one round must not stop the node from connecting
                log.exception("%s: connection manager round failed", self.node.name)
                dialled = False
            # Core polls every 500 ms; a thousand nodes in one process cannot afford that while
            # nothing changes, so idle rounds back off (x2 up to 32x) until a peer leaves or new
            # addresses arrive (wake())
            idle_rounds = 0 if dialled else min(idle_rounds + 1, IDLE_BACKOFF_MAX)
            pause = period * (1 << idle_rounds if idle_rounds else 1)
            if not dialled and self.settled():
                pause = max(pause, min(self.next_feeler if self.cm.feelers else INF, self.next_dump) - time.time())
            await self._pause(pause)

    def settled(self) -> bool:
        """Whether no round can dial before the next feeler or dump is due, unless wake() says
        something changed: every slot is held by a peer (no dial in flight, whose failure frees a
        slot without a wake) and no tried-table collision waits to be settled (its windows are
        time). A formed node then sleeps until its next feeler (Core's exp(2 min)) where the
        backoff woke it every 16 s: those rounds were a fifth of what 800 formed, idle nodes
        spent (docs/benchmarks.md, issue 17, twenty-seventh round)."""
        return not self.pending and not self.addrman.collisions() and self.next_kind(time.time(), peek=True) is None

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if wake() is called: a future and a timer, where wait_for on an
        Event made a task every round (~6 % of what 10,000 formed nodes spend idle, py-spy)."""
        loop = self.node.loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def wake(self) -> None:
        """Something changed (a peer left, addresses arrived): look for a dial now."""
        if self.node.running:  # not while a stopped node's dial tasks unwind
            _resolve(self._waiter)

    def _counts(self) -> dict[str, int]:
        """Outbound peers by kind, plus dials still in flight (a dial whose link of its kind is
        already up counts once). One walk of the peers a round, where a walk for each kind asked
        was an eighth of what 800 formed, idle nodes spent (cProfile; docs/benchmarks.md)."""
        counts: dict[str, int] = {}
        up: set[tuple[str, str, int]] = set()
        for p in self.node.outbound_peers():
            counts[p.kind] = counts.get(p.kind, 0) + 1
            up.add((p.kind, p.ip, p.port))
        for (ip, port), kind in self.pending.items():
            if (kind, ip, port) not in up:
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    def next_kind(self, now: float, peek: bool = False) -> str | None:
        """Which slot to fill now, in Core's priority order (anchors are block-relay); `peek`
        only asks (the next feeler's time stays)."""
        count = self._counts().get
        block_relay = count("block-relay", 0)
        if block_relay < self.cfg.block_relay and self.anchors:
            return "anchor"
        if count("outbound-full-relay", 0) < self.cfg.outbound_full_relay:
            return "outbound-full-relay"
        if block_relay < self.cfg.block_relay:
            return "block-relay"
        if self.cm.feelers and now >= self.next_feeler and count("feeler", 0) == 0:
            if not peek:
                self.next_feeler = now + self.node.rng.expovariate(1 / self.node.timers.feeler_mean)
            return "feeler"
        return None

    def step(self) -> bool:
        """One round of ThreadOpenConnections: at most one new dial; True if it dialled."""
        now = time.time()
        if self.cm.test_before_evict:
            self.addrman.resolve_collisions()
        if now >= self.next_dump:
            self.next_dump = now + self.dump_interval
            self.save()
        if not self.node.running:
            return False
        kind = self.next_kind(now)
        if kind is None:
            return False
        if kind == "anchor":
            ip, port = self.anchors.pop(0)
            if self._dialable(ip, port):
                self._dial(ip, port, "block-relay")
            return True
        target = self.select_target(kind, now)
        if target is not None:
            self._dial(target[0], target[1], kind)
        return target is not None

    def outbound_groups(self) -> set[bytes]:
        """Netgroups of manual, full-relay and block-relay outbound peers (feelers don't count)."""
        ips = [p.ip for p in self.node.outbound_peers() if p.kind != "feeler"]
        ips += [ip for (ip, _), k in self.pending.items() if k != "feeler"]
        return {self.netgroups.group(ip) for ip in ips}

    def select_target(self, kind: str, now: float) -> tuple[str, int] | None:
        groups = self.outbound_groups()
        for tries in range(1, SELECT_TRIES + 1):
            addr = None
            if kind == "feeler":
                addr = self.addrman.select_tried_collision() or self.addrman.select(new_only=True)
            else:
                addr = self.addrman.select()
            if addr is None:
                return None
            if not self._dialable(addr.ip, addr.port):
                continue
            if not self.node.sandbox.allows(addr.ip):  # stored, never dialled (testbed adaptation 6)
                self.counters["sandbox_skipped"] += 1
                continue
            if kind != "feeler" and self.cm.netgroup_diversity and self.netgroups.group(addr.ip) in groups:
                continue
            info = self.addrman.find(addr.ip, addr.port)
            if info is not None and tries < RECENT_TRY_UNTIL and now - info.last_try < self.recent_try:
                continue
            if addr.services and tries < SERVICES_UNTIL and \
                    (addr.services & (NODE_NETWORK | NODE_WITNESS)) != (NODE_NETWORK | NODE_WITNESS):
                continue
            return addr.ip, addr.port
        return None

    def _dialable(self, ip: str, port: int) -> bool:
        return ((ip, port) not in self.pending and not self.node.connected_to(ip)
                and not self.banman.is_banned(ip) and not self.banman.is_discouraged(ip)
                and not (ip == self.node.config.bind and port == self.node.port))

    def _dial(self, ip: str, port: int, kind: str) -> None:
        # Core counts a failure only once the node has >= 2 outbound groups (it is not offline).
        count_failure = len(self.outbound_groups()) >= 2
        self.addrman.attempt(ip, port, count_failure=count_failure)
        self.pending[(ip, port)] = kind
        self.counters["dials"] += 1
        if kind == "feeler":
            self.counters["feelers"] += 1
        task = self.node.loop.create_task(self._dial_task(ip, port, kind))
        self._dials.add(task)
        task.add_done_callback(self._dials.discard)

    async def _dial_task(self, ip: str, port: int, kind: str) -> None:
        try:
            await self.node.open_connection(ip, port, kind)
        except (OSError, asyncio.TimeoutError, DialRefused):
            self.counters["dial_failures"] += 1
        finally:
            # The slot is free again, and the loop's next round (every connect_loop, Core's 500 ms)
            # fills it: waking the loop at once made a dial that fails at once (a process out of
            # descriptors, a refused port) a busy loop across every node of the process.
            self.pending.pop((ip, port), None)

    # --- hooks from the node ---------------------------------------------------------------------

    def on_version(self, peer: Peer, listen_port: int = 0) -> None:
        """Core marks an outbound address good once its version arrives (feelers included).
        With `inbound_not_tried` off (0.9.3, before #8594) an inbound peer's address goes into
        addrman and straight to tried as well: the hole Heilman et al. filled tried through.
        `listen_port`: the port its version's addr_from announces when that names the address it
        connected from, else 0. 0.9.3 added only such a peer, at that address: not a client that
        names no address (a crawler, today's Core), whose entry would only stand in for the fixed
        seeds a node with an empty addrman falls back on."""
        if not peer.inbound and peer.kind in AUTOMATIC_KINDS:
            self.addrman.good(peer.ip, peer.port)
        elif peer.inbound and not self.cm.inbound_not_tried and listen_port:
            self.addrman.add([NetAddr(ip=peer.ip, port=listen_port, services=peer.services,
                                      time=int(self.node.clock()))], peer.ip)
            self.addrman.good(peer.ip, listen_port)
        if peer.kind == "feeler":
            self.addrman.resolve_collisions()
        if self.addrman.collisions():
            self.wake()  # a settled loop sleeps until its next feeler: a collision is settled in rounds

    # --- inbound admission and eviction ----------------------------------------------------------

    def admit_inbound(self, ip: str) -> tuple[bool, bool]:
        """(admit, prefer_evict) for a new inbound connection from `ip` (net.cpp AcceptConnection)."""
        if self.banman.is_banned(ip):
            return False, False
        if self.descriptors is not None and not self.descriptors.admits_inbound():
            self.counters["inbound_refused_descriptors"] += 1  # the process's share is spent
            return False, False
        discouraged = self.banman.is_discouraged(ip)
        inbound = self.node.inbound_peers()
        if len(inbound) < self.cfg.max_inbound:
            return True, discouraged
        # Full: a discouraged peer is refused when slots are (nearly) full; otherwise evict one.
        if discouraged:
            self.counters["inbound_refused_full"] += 1
            return False, False
        # A peer already being disconnected is no candidate (Core skips fDisconnect nodes): else a
        # burst of connections in one loop turn "evicts" the same closing peer again and again and
        # every newcomer is admitted past the limit.
        alive = [p for p in inbound if p.disconnect_reason is None]
        victim_id = select_node_to_evict([self._candidate(p) for p in sorted(alive, key=lambda p: p.id)],
                                         protect_by_netgroup=self.cm.inbound_netgroup_eviction)
        if victim_id is None:
            self.counters["inbound_refused_full"] += 1
            return False, False
        self.node.peers[victim_id].disconnect("evicted")
        self.counters["evictions"] += 1
        return True, False

    def _candidate(self, p: Peer) -> EvictionCandidate:
        group = self.netgroups.group(p.ip)
        keyed = int.from_bytes(hashlib.blake2b(group, key=self._eviction_key, digest_size=8).digest(), "big")
        return EvictionCandidate(
            id=p.id, connected=p.connected_time, min_ping=p.min_ping if p.min_ping is not None else float("inf"),
            last_block_time=p.last_block_time, last_tx_time=p.last_tx_time,
            relevant_services=(p.services & (NODE_NETWORK | NODE_WITNESS)) == (NODE_NETWORK | NODE_WITNESS),
            relay_txs=p.relay, bloom_filter=False, keyed_netgroup=keyed,
            prefer_evict=p.prefer_evict,
            # testbed adaptation 1: loopback is the testnet's network, not "local"
            is_local=not self.cfg.all_routable and p.ip.startswith("127."), network="ipv4")

    # --- punishment ------------------------------------------------------------------------------

    def punish(self, peer: Peer, action: Action, reason: str) -> None:
        if action is Action.BAN:
            self.banman.ban(peer.ip, reason, first_misbehaviour=peer.first_misbehaviour)
        elif action is Action.DISCOURAGE:
            self.banman.discourage(peer.ip)
        # Core's Ban() drops every link to the address; Discourage() only this peer's
        for p in list(self.node.peers.values()):
            if p is peer or (action is Action.BAN and p.ip == peer.ip):
                p.disconnect(f"misbehaviour: {reason}")

    def peer_ready(self, peer: Peer) -> None:
        """A handshake completed. The first time every full-relay and block-relay slot holds a
        ready peer is kept (`slots_filled_at`): how long this node took to join the network, read
        once at the end instead of sampled (bench/bench_deploy.py)."""
        if self.slots_filled_at is not None or peer.inbound or peer.kind not in ("outbound-full-relay", "block-relay"):
            return
        if all(sum(p.verack_received for p in self.node.outbound_peers(kind)) >= want
               for kind, want in (("outbound-full-relay", self.cfg.outbound_full_relay),
                                  ("block-relay", self.cfg.block_relay))):
            self.slots_filled_at = time.time()

    def status(self) -> dict[str, Any]:
        n_new, n_tried = self.addrman.counts()
        return {"addrman": {"new": n_new, "tried": n_tried}, "anchors_pending": len(self.anchors),
                "pending_dials": len(self.pending), "slots_filled_at": self.slots_filled_at, **self.counters}


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
