"""Block relay, the half of Relay (relay.py) for blocks: never delayed, ``headers`` to peers that sent
``sendheaders`` (at most 8 new blocks, and only if the peer has the first one's parent, as far as
we know: Core's PeerHasHeader), otherwise ``inv``; headers-first download with one request per
block in flight (blockflight.py); storing, and announcing the new best chain.
"""

from __future__ import annotations

import time
from typing import Any

from ..chain.chain import BlockInvalid
from ..net.peer import Peer
from ..wire.codec import sha256d
from ..wire.messages import MAX_LOCATOR_SZ, MSG_BLOCK, CInv, msg_getdata, msg_getheaders, msg_headers, msg_inv
from ..wire.primitives import Block, BlockHeader
from ..wire.synthetic import origin_of
from .blockflight import BlocksInFlight, next_announcer

MAX_GETDATA_BATCH = 1000  # we send getdata in batches of <= 1000 (protocol.md §4)
MAX_BLOCKS_TO_ANNOUNCE = 8  # net_processing.cpp: more than 8 new blocks -> inv instead of headers
MAX_UNCONNECTING_HEADERS = 10  # net_processing.cpp: every 10th unconnecting headers message scores
MAX_BLOCK_SEEN = 10_000  # testbed: first-sight records kept for the control API (oldest forgotten)
MAX_HEADERS_PENDING = 10_000  # testbed: announced blocks asked for, remembered like Core's header index
MAX_PEER_BLOCKS_ASKED = 2_000  # testbed: a peer's unanswered block requests remembered (one headers batch)
ONE_HEADER_SIZE = 1 + 80 + 1  # a headers message of one header: CompactSize 1, the header, its tx count 0


class BlockRelay:
    """Relay's block methods. They read what Relay builds (and its `state`, `knows`, `mark_known`)."""

    node: Any  # relay.RelayHost
    # Blocks whose header connected and which we asked for: Core keeps such headers in its block
    # index, so the next header in a burst (a bitcoind mining 101 blocks) connects to one whose
    # block is still in flight; without this every such header counted as unconnecting and
    # honest relays were banned (insertion-ordered dict: the oldest is forgotten first).
    headers_pending: dict[bytes, None]
    blocks_in_flight: BlocksInFlight  # one request a block

    def accept_block(self, block: Block, from_peer: Peer | None) -> bool:
        """Store a block (raises BlockInvalid); announce every block it connects. False if known."""
        node = self.node
        result = node.chain.add(block)
        if result.dropped:  # over the chain's byte budget for orphans or blocks off the best chain
            node.stats.protocol_errors["block-not-stored"] += 1
            return False
        if result.duplicate:
            return False
        node.stats.blocks_received += 1
        now_ns = time.time_ns()
        if from_peer is not None:
            from_peer.last_block_time = time.time()
            origin = origin_of(block)
            if origin is not None:
                node.stats.block_delay.observe(max(0.0, (now_ns - origin[1]) / 1e9))
        node.block_seen.setdefault(block.hash, (now_ns, from_peer.address if from_peer else None))
        if len(node.block_seen) > MAX_BLOCK_SEEN:
            del node.block_seen[next(iter(node.block_seen))]  # insertion order: the oldest
        if result.orphan and from_peer is not None:
            from_peer.send(msg_getheaders(locator=node.chain.locator()))  # fill the gap
        for b in result.connected:
            for tx in b.txs:
                node.mempool.remove(tx.txid)
        best = [b for b in result.connected if node.chain.on_best_chain(b.hash)]
        if best:  # Core announces its new best chain, never a side branch
            self.announce_blocks(best, from_peer)
        return True

    # --- what a peer is known to have: Core's PeerHasHeader (net_processing.cpp) --------------------

    def update_block_availability(self, st: Any, h: bytes) -> None:
        """The peer announced block `h` (inv, headers): Core's UpdateBlockAvailability. Its best
        known block moves to `h` if we hold `h` and it is at least as high (regtest blocks are all
        worth the same work); a block we lack yet is kept aside until we hold it."""
        heights = self.node.chain.heights
        height = heights.get(h)
        if height is None:
            st.last_unknown_block = h
        elif st.best_known_block is None or height >= heights[st.best_known_block]:
            st.best_known_block = h

    def peer_has_block(self, st: Any, h: bytes) -> bool:
        """Whether the peer has stored block `h`'s header, as far as we know: `h` is an ancestor of
        (or is) the best block it announced to us, or the best header we sent it. Core's
        PeerHasHeader, after ProcessBlockAvailability promotes a block it announced before we held it."""
        chain = self.node.chain
        if st.last_unknown_block is not None and chain.has(st.last_unknown_block):
            unknown, st.last_unknown_block = st.last_unknown_block, None
            self.update_block_availability(st, unknown)
        return ((st.best_known_block is not None and chain.is_ancestor(h, st.best_known_block))
                or (st.best_header_sent is not None and chain.is_ancestor(h, st.best_header_sent)))

    def _headers_connect(self, st: Any, new: list[Block]) -> bool:
        """Whether `headers` announcing `new` would connect at the peer (Core's SendMessages): the
        blocks follow one another, and the peer has the first one's parent. Otherwise Core falls
        back to `inv` and the peer's `getheaders` fills the gap. Without this check a light node
        sent a bitcoind headers it could not connect while two bitcoinds mined in turn, and was
        banned for `too-many-unconnected-headers` (docs/bitcoind.md). Testbed: every peer of the
        network has its genesis block, which Core would learn from a getheaders first."""
        if any(b.header.prev != a.hash for a, b in zip(new, new[1:])):
            return False
        first = new[0].header.prev
        return first == self.node.chain.genesis.hash or self.peer_has_block(st, first)

    def announce_blocks(self, blocks: list[Block], from_peer: Peer | None) -> None:
        # one payload per distinct announcement, built once: a new block goes the same way to each
        # of ~20 peers, which need not each serialise it again (as accept_tx's one-entry invs)
        payloads: dict[tuple[bool, tuple[bytes, ...]], tuple[str, bytes]] = {}
        for peer in self.node.peers.values():
            if peer is from_peer or not peer.ready:
                continue
            st = self.state(peer)
            new = [b for b in blocks if not self.knows(peer, b.hash) and not self.peer_has_block(st, b.hash)]
            if not new:
                continue
            hashes = tuple(b.hash for b in new)
            self.mark_known(peer, *hashes)
            as_headers = (peer.prefers_headers and len(new) <= MAX_BLOCKS_TO_ANNOUNCE
                          and self._headers_connect(st, new))
            if as_headers:
                st.best_header_sent = hashes[-1]
            message = payloads.get((as_headers, hashes))
            if message is None:
                message = payloads[(as_headers, hashes)] = \
                    ("headers", msg_headers([b.header for b in new]).serialize()) if as_headers \
                    else ("inv", msg_inv([CInv(MSG_BLOCK, h) for h in hashes]).serialize())
            peer.send_payload(*message)

    def _ask_blocks(self, peer: Peer, hashes: list[bytes]) -> None:
        """getdata for the blocks we lack and have not already asked this peer for. Without the
        second condition every headers answer to our gap-filling getheaders (sent for each block
        that arrives out of order) re-asked for every block still in flight: a light node asked a
        bitcoind for each block of a 101-block burst ~15 times (seen in its capture). Core keeps
        one request per block (mapBlocksInFlight); asking each announcer once is the testbed's
        simpler rule, and never the same peer twice. A block another live peer is being asked for
        is not asked again (blockflight.py, Core's one request per block in flight)."""
        chain, asked, now = self.node.chain, self.state(peer).blocks_asked, self.node.loop.time()
        want = [CInv(MSG_BLOCK, h) for h in hashes if h not in asked and not chain.has(h) and not chain.is_orphan(h)
                and self.blocks_in_flight.claim(h, peer, now)]
        for inv in want:
            asked[inv.hash] = None
        while len(asked) > MAX_PEER_BLOCKS_ASKED:
            del asked[next(iter(asked))]
        for i in range(0, len(want), MAX_GETDATA_BATCH):
            peer.send(msg_getdata(want[i:i + MAX_GETDATA_BATCH]))

    def _reask_block(self, h: bytes, failed: Peer) -> None:
        """The request for block `h` to `failed` failed: ask another peer that announced it."""
        self.blocks_in_flight.done(h)
        if self.node.chain.has(h) or self.node.chain.is_orphan(h):
            return
        nxt = next_announcer(h, self.node.peers.values(), self.knows,
                             lambda p, x: x in self.state(p).blocks_asked, failed)
        if nxt is not None:
            self.state(nxt).blocks_asked.pop(h, None)  # (an expired request to it is asked again)
            self._ask_blocks(nxt, [h])

    def on_block(self, peer: Peer, block: Block) -> None:
        self.state(peer).blocks_asked.pop(block.hash, None)
        self.blocks_in_flight.done(block.hash)
        self.mark_known(peer, block.hash)
        try:
            self.accept_block(block, peer)
        except BlockInvalid as e:
            peer.misbehaving(e.reason)

    def on_one_header(self, peer: Peer, payload: bytes) -> bool:
        """A `headers` of one header for a block we hold, read from its 82 bytes: what each of a
        node's ~20 peers sends it for every new block, all but the first few after the block came.
        on_headers' steps for that case (the peer knows the block; a held block's parent is held, so
        the header connects; nothing to ask) without decoding a message. False for any other
        payload, a block we lack included: the caller decodes it for on_headers."""
        if len(payload) != ONE_HEADER_SIZE or payload[0] != 1 or payload[81] != 0:
            return False
        h = sha256d(payload[1:81])
        if not self.node.chain.has(h):
            return False
        self.mark_known(peer, h)
        st = self.state(peer)
        st.unconnecting_headers = 0
        self.update_block_availability(st, h)
        return True

    def on_headers(self, peer: Peer, headers: list[BlockHeader]) -> None:
        if not headers:
            return
        for prev, h in zip(headers, headers[1:]):
            if h.prev != prev.hash:
                peer.misbehaving("headers-non-continuous")
                return
        chain = self.node.chain
        self.mark_known(peer, *(h.hash for h in headers))
        st = self.state(peer)
        self.update_block_availability(st, headers[-1].hash)  # connecting or not, as Core
        prev = headers[0].prev
        if not chain.has(prev) and not chain.is_orphan(prev) and prev not in self.headers_pending:
            peer.send(msg_getheaders(locator=chain.locator()))  # unconnecting: ask for the gap
            st.unconnecting_headers += 1
            if st.unconnecting_headers % MAX_UNCONNECTING_HEADERS == 0:
                peer.misbehaving("headers-unconnecting")
            return
        st.unconnecting_headers = 0
        want = [h.hash for h in headers if not chain.has(h.hash) and not chain.is_orphan(h.hash)]
        for h in want:
            self.headers_pending[h] = None
        while len(self.headers_pending) > MAX_HEADERS_PENDING:
            del self.headers_pending[next(iter(self.headers_pending))]
        self._ask_blocks(peer, want)
        if len(headers) == 2000:  # a full batch: there may be more
            peer.send(msg_getheaders(locator=[headers[-1].hash] + chain.locator()))

    def on_getheaders(self, peer: Peer, locator: list[bytes], stop: bytes) -> None:
        if len(locator) > MAX_LOCATOR_SZ:
            peer.misbehaving("locator-too-large")  # disconnect-only (misbehaviour.DISCONNECT_ONLY)
            return
        chain = self.node.chain
        headers = chain.headers_after(locator, stop)
        self.mark_known(peer, *(h.hash for h in headers))
        # the last header sent, or our tip when there was none to send (the peer has it): Core's
        # pindexBestHeaderSent after a getheaders
        if headers or locator:  # (no locator and an unknown stop: nothing sent, nothing learnt)
            self.state(peer).best_header_sent = headers[-1].hash if headers else chain.tip.hash
        peer.send(msg_headers(headers))

    def peer_ready(self, peer: Peer) -> None:
        """After the handshake: catch up with a peer whose chain is longer than ours."""
        if peer.start_height > self.node.chain.height:
            peer.send(msg_getheaders(locator=self.node.chain.locator()))
