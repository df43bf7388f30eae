"""Addr gossip on live peers: getaddr on outbound links, answering getaddr, forwarding fresh
addresses, the per-peer exp(30 s) send timer and self-advertisement. Decisions are addrrelay.py's;
this module owns the timers and sends the messages.

A peer's send timer runs only while something is queued for it. Core reschedules every peer's
exp(30 s) timer whenever it passes, queue or no queue; an exponential wait is memoryless, so a timer
started when the first address is queued sends it after the same exp(30 s) wait, and an idle
peer costs nothing (docs/benchmarks.md, issue 17, twenty-sixth round).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from heapq import heapify, heappop, heappush
from typing import Protocol

from ..net.peer import Peer
from ..timing import Timers
from ..wire.codec import NetAddr
from ..wire.messages import MAX_ADDR_TO_SEND, msg_addr, msg_getaddr
from .addrman import AddrMan
from .addrrelay import AddrRelay, PeerAddrState
from .netgroup import NetGroups

GETADDR_KINDS = ("outbound-full-relay", "manual", "addr-fetch")  # Core: outbound, not block-relay-only


class AddrHost(Protocol):
    """What the addr service reads from its owner (node.py builds it and is one)."""

    rng: random.Random
    timers: Timers
    peers: Mapping[int, Peer]

    def self_address(self) -> NetAddr: ...


class AddrService:
    def __init__(self, node: AddrHost, addrman: AddrMan, netgroups: NetGroups, *, time_scale: float,
                 advertise: bool, rate_limit: bool, getaddr_cache: bool,
                 wake: Callable[[], None], refused: Callable[[str], bool],
                 in_initial_download: Callable[[], bool] = lambda: False) -> None:
        """`advertise`: announce our own address (listening and self-advertisement on);
        `in_initial_download`: Core's IBD test, which holds announcements back (the node passes a
        constant False unless the scenario asks for Core's rule, protocol.md §2.3); `wake`:
        tell the connection manager new addresses arrived; `refused(ip)`: banned or discouraged
        (never handed out in a getaddr answer)."""
        self.node = node
        self.addrman = addrman
        self.advertise = advertise
        self.in_initial_download = in_initial_download
        self.wake = wake
        self.refused = refused
        t = node.timers
        self.scale = time_scale
        self.relay = AddrRelay(node.rng.randbytes(32), node.rng, time.time, t.addr_token_rate,
                               t.getaddr_cache, t.getaddr_cache_jitter, rate_limit=rate_limit,
                               getaddr_cache=getaddr_cache, is_routable=netgroups.is_routable,
                               time_scale=self.scale)
        self.states: dict[int, PeerAddrState] = {}
        self._send_due: list[tuple[float, int]] = []  # heap: (next addr send, peer id), see tick()
        self._armed: set[int] = set()  # peers with a send time in the heap (something queued)
        self.next_self_advertise = 0.0
        self.received = 0
        self.rate_limited = 0

    def _exp(self, mean: float) -> float:
        return self.node.rng.expovariate(1 / mean) if mean > 0 else 0.0

    def peer_ready(self, peer: Peer) -> None:
        state = self.relay.new_peer(peer.inbound, block_relay_only=peer.kind == "block-relay")
        self.states[peer.id] = state
        now = time.time()
        if self.next_self_advertise == 0.0:
            self.next_self_advertise = now + self._exp(self.node.timers.self_advertise_mean)
        if peer.inbound or peer.kind not in GETADDR_KINDS:
            return
        if peer.kind != "addr-fetch" and self.may_advertise():
            peer.send(msg_addr([self.node.self_address()]))  # Core advertises itself to new outbound peers
        peer.send(msg_getaddr())
        self.relay.we_sent_getaddr(state)

    def may_advertise(self) -> bool:
        """Core announces its address only out of initial block download (net_processing.cpp)."""
        return self.advertise and not self.in_initial_download()

    def peer_gone(self, peer: Peer) -> None:
        self.states.pop(peer.id, None)
        self._armed.discard(peer.id)
        # its heap entry stays until due; churning peers must not grow the heap without bound
        if len(self._send_due) > 2 * len(self.states) + 32:
            self._send_due = [e for e in self._send_due if e[1] in self._armed]
            heapify(self._send_due)

    def on_addr(self, peer: Peer, addrs: list[NetAddr]) -> None:
        state = self.states.get(peer.id)
        if state is None:
            return
        verdict = self.relay.receive(state, addrs)
        self.received += len(addrs)
        self.rate_limited += verdict.rate_limited
        own = [a for a in verdict.accepted if (a.ip, a.port) == (peer.ip, peer.port)]
        others = [a for a in verdict.accepted if (a.ip, a.port) != (peer.ip, peer.port)]
        addrman = self.addrman
        if own:
            addrman.add(own, source_ip=peer.ip)  # a self-announcement gets no time penalty
        if others:
            addrman.add(others, source_ip=peer.ip, time_penalty=addrman.windows.time_penalty)
        if own or others:
            self.wake()
        if verdict.forward:
            candidates = [pid for pid, s in self.states.items() if pid != peer.id and s.relay_enabled]
            for a in verdict.forward:
                for pid in self.relay.forward_targets(a, candidates):
                    self.queue(pid, self.states[pid], a)
        if peer.kind == "addr-fetch":
            peer.disconnect("addr-fetch done")

    def on_getaddr(self, peer: Peer) -> None:
        state = self.states.get(peer.id)
        if state is None:
            return
        def fresh() -> list[NetAddr]:
            return [a for a in self.addrman.get_addr(MAX_ADDR_TO_SEND) if not self.refused(a.ip)]

        reply = self.relay.answer_getaddr(state, fresh)
        if reply:
            state.remember_all(reply)
            peer.send(msg_addr(reply[:MAX_ADDR_TO_SEND]))

    def tick(self) -> None:
        """Flush due per-peer queues; advertise ourselves every exp(24 h) (both scaled)."""
        now = time.time()
        t = self.node.timers
        if self.next_self_advertise and now >= self.next_self_advertise and self.advertise:
            self.next_self_advertise = now + self._exp(t.self_advertise_mean)
            # in IBD a round is skipped, not postponed: when one block ends every node's IBD at
            # once, they do not all announce together (a deviation, protocol.md §2.3)
            if self.may_advertise():
                me = self.node.self_address()
                for pid, state in self.states.items():
                    state.known.discard(me)  # Core clears the peer's filter for this
                    self.queue(pid, state, me)
        # Each armed peer's next send (Core's exp(30 s) per peer) waits in a heap: a tick looks at
        # the earliest only, where walking a 20-peer node's timers every second was a quarter of
        # what 10,000 formed nodes spent idle (py-spy; docs/benchmarks.md, fourteenth round)
        heap = self._send_due
        if not heap or heap[0][0] > now:
            return
        due = []
        while heap and heap[0][0] <= now:
            due.append(heappop(heap)[1])
        for pid in due:
            state = self.states.get(pid)
            if state is None:
                continue  # gone: its entry ends here
            self._armed.discard(pid)  # what is queued after this send arms a new timer
            peer = self.node.peers.get(pid)
            if peer is None:
                continue
            batch = self.relay.take_pending(state)
            if batch:
                peer.send(msg_addr(batch))

    def queue(self, pid: int, state: PeerAddrState, addr: NetAddr) -> None:
        """Queue `addr` for peer `pid` (if addrrelay.py says so), and start the peer's send timer
        if this is the first address of its next batch."""
        self.relay.queue(state, addr)
        if state.pending and pid not in self._armed:
            self._armed.add(pid)
            heappush(self._send_due, (time.time() + self._exp(self.node.timers.addr_send_mean), pid))
