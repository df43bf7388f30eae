"""Inventory relay: inv -> getdata -> tx/block, per-peer known inventory, and two tx policies.

- ``flood``: announce a new tx to every peer at once.
- ``diffusion``: Core's Poisson trickle (protocol.md §4, master): ONE shared timer for all inbound
  peers (mean ``inbound_inv_mean`` 5 s) and a timer per outbound peer (mean ``outbound_inv_mean``
  2 s); a flush sends at most 35 tx invs + 5 per 1000 queued, never more than 1000.

A tx is served by getdata only if it entered the mempool before the last inv we sent that peer
(Core's mempool-sequence rule); otherwise the answer is ``notfound``. Blocks: blocks.py, the half of
Relay that announces, asks for and stores them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..chain.chain import Chain
from ..chain.mempool import Mempool
from ..chain.txcheck import TxInvalid, check_standard, check_transaction
from ..net.connection import Connection
from ..net.peer import Peer
from ..net.stats import NodeStats
from ..timing import Timers
from ..wire.codec import ONE_ENTRY_SIZE, frame_shared
from ..wire.messages import (
    MSG_BLOCK,
    MSG_TX,
    MSG_WITNESS_FLAG,
    MSG_WTX,
    U32,
    CInv,
    msg_block,
    msg_getdata,
    msg_inv,
    msg_notfound,
    msg_tx,
    one_inv,
)
from ..wire.primitives import Tx
from ..wire.synthetic import origin_of
from .blockflight import BlocksInFlight
from .blocks import MAX_GETDATA_BATCH, MAX_UNCONNECTING_HEADERS, BlockRelay

__all__ = ["MAX_UNCONNECTING_HEADERS", "NO_HASHES", "Relay", "RelayHost"]

INVENTORY_BROADCAST_PER_SECOND = 7  # net_processing.cpp
INVENTORY_BROADCAST_TARGET = 35  # 7/s x 5 s inbound interval
INVENTORY_BROADCAST_MAX = 1000  # net_processing.cpp (master)
MAX_KNOWN_INV = 50_000  # Core's rolling bloom filter size for known inventory
MAX_PEER_TX_ANNOUNCEMENTS = 5000  # txdownloadman.h: announcements tracked per peer; more are ignored
MAX_PEER_TX_REQUEST_IN_FLIGHT = 100  # txdownloadman.h: more wait until earlier requests finish
TX_TYPES = frozenset({MSG_TX, MSG_WTX, MSG_TX | MSG_WITNESS_FLAG})
BLOCK_TYPES = frozenset({MSG_BLOCK, MSG_BLOCK | MSG_WITNESS_FLAG})


NO_HASHES: frozenset[bytes] = frozenset()


def _without(hashes: set[bytes] | frozenset[bytes], h: bytes) -> set[bytes] | frozenset[bytes]:
    """`hashes` less `h`, given back as the shared NO_HASHES once empty."""
    if h in hashes:
        hashes.discard(h)  # type: ignore[union-attr]  (holds h: a set, not NO_HASHES)
    return hashes or NO_HASHES


def _remember(known: set[bytes], hashes: tuple[bytes, ...]) -> None:
    if len(known) >= MAX_KNOWN_INV:  # a rolling filter forgets; a set is cleared
        known.clear()
    known.update(hashes)


def tx_hashes(tx: Tx) -> tuple[bytes, ...]:
    """The hashes a peer may know `tx` by: its txid and wtxid, once when they are one (a tx without
    witness data, as every synthetic one is): each peer's known set then takes one insert a tx."""
    return (tx.txid,) if tx.txid == tx.wtxid else (tx.txid, tx.wtxid)


def _announced(st: PeerRelayState, hashes: tuple[bytes, ...], sequence: int) -> None:
    """Invs for `hashes` go to the peer now: it knows them, and may get any tx the mempool held at
    `sequence` (on_getdata serves none added later: Core's m_last_inv_sequence)."""
    _remember(st.known_inv, hashes)
    st.last_inv_sequence = sequence


def broadcast_max(queued: int) -> int:
    return min(INVENTORY_BROADCAST_MAX, INVENTORY_BROADCAST_TARGET + queued // 1000 * 5)


@dataclass(slots=True)  # no instance dict: one per connection end
class PeerRelayState:
    """What relay remembers about one peer (Core keeps it in net_processing's per-peer Peer/TxRelay)."""

    known_inv: set[bytes] = field(default_factory=set)
    inv_queue: list[tuple[bytes, float]] = field(default_factory=list)  # (txid, queued at loop time)
    last_inv_sequence: int = 0  # mempool sequence at our last inv to this peer (getdata rule)
    inv_timer: Any = None  # the outbound peer's own trickle timer
    # How many of its tx announcements we track (asked of it, or waiting in Relay.announcers): what
    # Core caps at MAX_PEER_TX_ANNOUNCEMENTS. A count, not a set of hashes: whether it announced a
    # hash is read where the hash is tracked (Relay.in_flight, Relay.announcers), so an announcement
    # that arrives while another peer is asked (many of a flood's at 10,000 nodes) builds no set.
    announcements: int = 0
    # The tx hashes we asked it for and await: empty between bursts, when it holds the shared empty
    # NO_HASHES until a hash arrives and again once the last leaves (an empty set is 216 B).
    requested: set[bytes] | frozenset[bytes] = NO_HASHES
    unconnecting_headers: int = 0  # consecutive headers messages that did not connect
    # blocks we asked it for that it has not delivered (insertion-ordered: the oldest forgotten first)
    blocks_asked: dict[bytes, None] = field(default_factory=dict)
    # What Core's PeerHasHeader reads (blocks.py): the best block it announced to us, the last block it
    # announced that we did not hold yet (promoted once we do), the best header we sent it.
    best_known_block: bytes | None = None
    last_unknown_block: bytes | None = None
    best_header_sent: bytes | None = None


class RelayHost(Protocol):
    """What relay reads from its owner (node.py builds it and is one)."""

    loop: Any  # asyncio.AbstractEventLoop
    rng: random.Random
    timers: Timers
    stats: NodeStats
    magic: bytes
    mempool: Mempool
    chain: Chain
    peers: Mapping[int, Peer]
    block_seen: dict[bytes, tuple[int, str | None]]


class Relay(BlockRelay):
    def __init__(self, node: RelayHost, policy: str) -> None:
        self.node = node
        self.policy = policy
        self.peer_state: dict[int, PeerRelayState] = {}  # peer id -> state, dropped in peer_closed
        self.in_flight: dict[bytes, tuple[Peer, float]] = {}  # announced hash -> (asked peer, deadline)
        # other peers that announced it, oldest first; a dict so a repeated announcement is one entry
        self.announcers: dict[bytes, dict[int, Peer]] = {}
        self.headers_pending: dict[bytes, None] = {}  # blocks.py says why
        self.blocks_in_flight = BlocksInFlight(node.timers.block_download_timeout)
        self._inbound_timer = None
        # Peers a new tx is announced to: handshake done, tx relay asked for (the version's relay
        # flag), not block-relay-only. Kept as they come and go, so a tx walks ~16 of a node's peers
        # and tests none of these again; a closing one is still skipped where it is walked. A list,
        # not a dict: ~0.2 kB a node instead of ~0.9, and a peer leaves it once.
        self.tx_peers: list[Peer] = []

    def state(self, peer: Peer) -> PeerRelayState:
        st = self.peer_state.get(peer.id)
        if st is None:
            st = self.peer_state[peer.id] = PeerRelayState()
        return st

    def mark_known(self, peer: Peer, *hashes: bytes) -> None:
        _remember(self.state(peer).known_inv, hashes)

    def knows(self, peer: Peer, h: bytes) -> bool:
        st = self.peer_state.get(peer.id)
        return st is not None and h in st.known_inv

    # --- transactions ------------------------------------------------------------------------------

    def accept_tx(self, tx: Tx, from_peer: Peer | None) -> bool:
        """Store a tx seen for the first time and announce it; False if already known."""
        node = self.node
        hashes = tx_hashes(tx)
        for h in hashes:
            self._forget(h)
        origin = origin_of(tx)
        rec = node.mempool.add(tx, time.time_ns(), from_peer.address if from_peer else None, origin)
        if rec is None:
            return False
        node.stats.txs_received += 1
        if from_peer is not None:
            from_peer.last_tx_time = time.time()
            if rec.delay_s is not None:
                node.stats.tx_delay.observe(max(0.0, rec.delay_s))
        txid, wtxid, flood = tx.txid, tx.wtxid, self.policy == "flood"
        other = wtxid if len(hashes) == 2 else None  # a second hash to test, if it has one
        if flood:
            # the two one-entry invs every peer is sent, payload and frame built once for all of them
            # (what _send_tx_invs builds per peer)
            by_txid, by_wtxid, sequence = one_inv(MSG_TX, txid), one_inv(MSG_WTX, wtxid), node.mempool.sequence
            framed_txid, framed_wtxid = frame_shared(node.magic, "inv", by_txid), frame_shared(node.magic, "inv", by_wtxid)
        states = self.peer_state
        to_wtxid: list[Connection] = []
        to_txid: list[Connection] = []
        for peer in self.tx_peers:
            if peer is from_peer or peer.conn.closing:
                continue
            st = states.get(peer.id)  # knows(txid) or knows(wtxid), one lookup
            if st is None:
                st = self.state(peer)
            elif txid in st.known_inv or (other is not None and other in st.known_inv):
                continue
            if flood:
                _announced(st, hashes, sequence)
                (to_wtxid if peer.wtxid_relay else to_txid).append(peer.conn)
            else:
                st.inv_queue.append((txid, node.loop.time()))
                self._arm(peer)
        if flood:
            Connection.send_frame_to_all(to_wtxid, "inv", by_wtxid, framed_wtxid)
            Connection.send_frame_to_all(to_txid, "inv", by_txid, framed_txid)
        return True

    def _send_tx_invs(self, peer: Peer, txids: list[bytes]) -> None:
        invs, hashes = [], []
        pool = self.node.mempool
        for txid in txids:
            tx = pool.get(txid)
            if tx is None:
                continue
            hashes += (tx.txid, tx.wtxid)
            invs.append(CInv(MSG_WTX, tx.wtxid) if peer.wtxid_relay else CInv(MSG_TX, tx.txid))
        if invs:
            _announced(self.state(peer), tuple(hashes), pool.sequence)
            peer.send(msg_inv(invs))

    def _arm(self, peer: Peer) -> None:
        """Start the Poisson timer that will flush `peer`'s queue (lazily; exp() is memoryless)."""
        node = self.node
        if peer.inbound:
            if self._inbound_timer is None:
                delay = node.rng.expovariate(1.0 / node.timers.inbound_inv_mean)
                self._inbound_timer = node.loop.call_later(delay, self._flush_inbound)
        elif (st := self.state(peer)).inv_timer is None:
            delay = node.rng.expovariate(1.0 / node.timers.outbound_inv_mean)
            st.inv_timer = node.loop.call_later(delay, self._flush_outbound, peer)

    def _flush(self, peer: Peer) -> None:
        st = self.state(peer)
        queue, budget, send = st.inv_queue, broadcast_max(len(st.inv_queue)), []
        # Every consumed entry records its wait (sent or skipped as already known): an unbiased
        # sample of the trickle timer, which a received-from-whom analysis cannot give.
        wait = self.node.stats.inv_wait["inbound" if peer.inbound else "outbound"]
        now = self.node.loop.time()
        i = 0
        while i < len(queue) and len(send) < budget:
            txid, queued_at = queue[i]
            i += 1
            wait.observe(now - queued_at)
            tx = self.node.mempool.get(txid)
            if tx is not None and txid not in st.known_inv and tx.wtxid not in st.known_inv:
                send.append(txid)
        del queue[:i]
        self._send_tx_invs(peer, send)

    def _flush_inbound(self) -> None:
        self._inbound_timer = None
        pending = False
        for peer in list(self.node.peers.values()):
            if peer.inbound and self.queued(peer) and peer.ready:
                self._flush(peer)
                pending = pending or self.queued(peer)
        if pending:
            self._arm(next(p for p in self.node.peers.values() if p.inbound and self.queued(p)))

    def queued(self, peer: Peer) -> bool:
        st = self.peer_state.get(peer.id)
        return st is not None and bool(st.inv_queue)

    def _flush_outbound(self, peer: Peer) -> None:
        st = self.peer_state.get(peer.id)
        if st is None:
            return  # closed meanwhile
        st.inv_timer = None
        if peer.ready:
            self._flush(peer)
            if st.inv_queue:
                self._arm(peer)

    def on_inv(self, peer: Peer, invs: list[CInv]) -> None:
        want: list[CInv] = []
        blocks: list[bytes] = []
        now = self.node.loop.time()
        st = self.state(peer)
        _remember(st.known_inv, tuple(inv.hash for inv in invs))
        for inv in invs:
            if inv.type in TX_TYPES:
                if self._want_tx(peer, st, inv.hash, now):
                    want.append(CInv(MSG_WTX if inv.type == MSG_WTX else MSG_TX, inv.hash))
            elif inv.type in BLOCK_TYPES:
                blocks.append(inv.hash)
                self.update_block_availability(st, inv.hash)
        for i in range(0, len(want), MAX_GETDATA_BATCH):
            peer.send(msg_getdata(want[i:i + MAX_GETDATA_BATCH]))
        if blocks:
            self._ask_blocks(peer, blocks)

    def on_one_inv(self, peer: Peer, payload: bytes) -> bool:
        """A one-entry inv, what flood relay sends every peer for every tx, read from its 37 bytes:
        on_inv's steps without decoding a message or building CInvs (decoding was ~12 % of the CPU of
        a burst at 10,000 nodes, py-spy). False for any other payload: the caller decodes it for on_inv."""
        if len(payload) != ONE_ENTRY_SIZE or payload[0] != 1:
            return False
        inv_type, h = U32.unpack_from(payload, 1)[0], payload[5:]
        st = self.state(peer)
        _remember(st.known_inv, (h,))
        if inv_type in TX_TYPES:
            if self._want_tx(peer, st, h, self.node.loop.time()):
                # the same 37 bytes with the type we ask by (a witness-flagged MSG_TX is asked as MSG_TX)
                peer.send_payload("getdata", payload if inv_type in (MSG_TX, MSG_WTX) else one_inv(MSG_TX, h))
        elif inv_type in BLOCK_TYPES:
            self.update_block_availability(st, h)
            self._ask_blocks(peer, [h])
        return True

    def _want_tx(self, peer: Peer, st: PeerRelayState, h: bytes, now: float) -> bool:
        """`peer` announced tx `h`: track the announcement, and True if we ask `peer` for it now."""
        if self.node.mempool.known(h):
            return False
        asked, waiting = self.in_flight.get(h), self.announcers.get(h)
        if (asked is not None and asked[0] is peer) or (waiting is not None and peer.id in waiting):
            return False  # announced again: tracked already
        if st.announcements >= MAX_PEER_TX_ANNOUNCEMENTS:
            return False  # Core ignores a peer's announcements beyond the cap
        st.announcements += 1
        if (asked is not None and asked[1] > now and asked[0].ready) or \
                len(st.requested) >= MAX_PEER_TX_REQUEST_IN_FLIGHT:
            # someone else was asked, or this peer has too many requests open: it waits
            # as an announcer (tick() asks it once a slot frees)
            if waiting is None:
                waiting = self.announcers[h] = {}
            waiting[peer.id] = peer
            return False
        self._mark_requested(peer, h, now)
        return True

    def _mark_requested(self, peer: Peer, h: bytes, now: float) -> None:
        before = self.in_flight.get(h)
        if before is not None and before[0] is not peer:
            # a request that timed out (tick has not retried it yet) or whose peer is leaving:
            # that peer no longer holds it, and its slot and its count are freed
            self._release(before[0], h)
        self.in_flight[h] = (peer, now + self.node.timers.getdata_tx_interval)
        st = self.state(peer)
        if not st.requested:
            st.requested = set()
        st.requested.add(h)

    def _forget(self, h: bytes) -> None:
        """`h` arrived (or is known): drop its request and every announcer's claim on it."""
        asked = self.in_flight.pop(h, None)
        if asked is not None:
            self._release(asked[0], h)
        for p in self.announcers.pop(h, {}).values():
            self._release(p, h)

    def _release(self, peer: Peer, h: bytes) -> None:
        """`peer`'s announcement of `h` is no longer tracked (every caller takes it from in_flight
        or announcers, where it was counted)."""
        st = self.peer_state.get(peer.id)
        if st is not None:
            st.requested = _without(st.requested, h)
            st.announcements = max(0, st.announcements - 1)

    def on_getdata(self, peer: Peer, invs: list[CInv]) -> None:
        pool, missing = self.node.mempool, []
        for inv in invs:
            if inv.type in TX_TYPES:
                tx = pool.get_by_wtxid(inv.hash) if inv.type == MSG_WTX else pool.get(inv.hash)
                rec = pool.record(tx.txid) if tx is not None else None
                if tx is not None and rec is not None and rec.sequence <= self.state(peer).last_inv_sequence:
                    peer.send(msg_tx(tx))
                else:
                    missing.append(inv)
            elif inv.type in BLOCK_TYPES:
                block = self.node.chain.get(inv.hash)
                if block is not None:
                    peer.send(msg_block(block))
        if missing:
            peer.send(msg_notfound(missing))

    def on_notfound(self, peer: Peer, invs: list[CInv]) -> None:
        for inv in invs:
            blocks = self.state(peer).blocks_asked
            if inv.hash in blocks:  # it may have the block later: ask again then; meanwhile another announcer
                del blocks[inv.hash]
                self._reask_block(inv.hash, peer)
            asked = self.in_flight.get(inv.hash)
            if asked is not None and asked[0] is peer:
                self._retry(inv.hash)

    def _retry(self, h: bytes) -> None:
        """Ask the next live announcer of `h` with a free request slot, or forget it."""
        asked = self.in_flight.pop(h, None)
        if asked is not None:
            self._release(asked[0], h)
        waiting = self.announcers.get(h, {})
        for pid, peer in list(waiting.items()):
            if not peer.ready:
                del waiting[pid]
                self._release(peer, h)
            elif len(self.state(peer).requested) < MAX_PEER_TX_REQUEST_IN_FLIGHT:
                del waiting[pid]
                self._mark_requested(peer, h, self.node.loop.time())
                peer.send(msg_getdata([CInv(MSG_WTX if peer.wtxid_relay else MSG_TX, h)]))
                break
        if not waiting:
            self.announcers.pop(h, None)

    def on_tx(self, peer: Peer, tx: Tx) -> None:
        hashes = tx_hashes(tx)
        self.mark_known(peer, *hashes)
        try:
            check_transaction(tx)
            check_standard(tx)
        except TxInvalid as e:
            for h in hashes:
                self._forget(h)
            peer.misbehaving(e.reason)  # a policy reject scores 0 (protocol.md §3.2)
            return
        self.accept_tx(tx, peer)

    def tick(self, now: float) -> None:
        """Re-request txs whose getdata went unanswered (GETDATA_TX_INTERVAL), and ask announcers
        that waited for a free request slot."""
        if not (self.in_flight or self.announcers or self.blocks_in_flight.asked):
            return  # a formed network's idle ticks: every node, every second
        for h in [h for h, (p, deadline) in self.in_flight.items() if deadline <= now or not p.ready]:
            self._retry(h)
        for h in [h for h in self.announcers if h not in self.in_flight]:
            self._retry(h)
        for h, asked in self.blocks_in_flight.expired(self.node.loop.time()):
            self._reask_block(h, asked)

    def peer_ready(self, peer: Peer) -> None:
        if peer.relay and peer.kind != "block-relay":
            self.tx_peers.append(peer)
        super().peer_ready(peer)

    def peer_closed(self, peer: Peer) -> None:
        if peer in self.tx_peers:
            self.tx_peers.remove(peer)
        st = self.peer_state.pop(peer.id, None)
        if st is not None and st.inv_timer is not None:
            st.inv_timer.cancel()
        for h in [h for h, (p, _) in self.in_flight.items() if p is peer]:
            self._retry(h)
        for h in self.blocks_in_flight.asked_of(peer):
            self._reask_block(h, peer)

    def stop(self) -> None:
        if self._inbound_timer is not None:
            self._inbound_timer.cancel()
            self._inbound_timer = None
