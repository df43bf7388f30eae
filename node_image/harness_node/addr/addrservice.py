"""Addr gossip on live peers: getaddr on outbound links, answering getaddr, forwarding fresh
addresses, the per-peer exp(30 s) send timer and self-advertisement. Decisions are addrrelay.py's;
this module owns the timers and sends the messages.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .addrrelay import AddrRelay, PeerAddrState
from ..wire.codec import NetAddr
from ..wire.messages import MAX_ADDR_TO_SEND, msg_addr, msg_getaddr

if TYPE_CHECKING:
    from ..peering.connman import ConnMan
    from ..node import Node
    from ..net.peer import Peer

GETADDR_KINDS = ("outbound-full-relay", "manual", "addr-fetch")  # Core: outbound, not block-relay-only


class AddrService:
    def __init__(self, node: "Node", connman: "ConnMan") -> None:
        self.node = node
        self.connman = connman
        cm = connman.cm
        t = node.timers
        self.scale = node.config.time_scale
        self.relay = AddrRelay(node.rng.randbytes(32), node.rng, time.time, t.addr_token_rate,
                               t.getaddr_cache, t.getaddr_cache_jitter, rate_limit=cm.addr_rate_limit,
                               getaddr_cache=cm.getaddr_cache, is_routable=connman.netgroups.is_routable,
                               time_scale=self.scale)
        self.states: dict[int, PeerAddrState] = {}
        self.next_send: dict[int, float] = {}
        self.next_self_advertise = 0.0
        self.received = 0
        self.rate_limited = 0

    def _exp(self, mean: float) -> float:
        return self.node.rng.expovariate(1 / mean) if mean > 0 else 0.0

    def self_address(self) -> NetAddr:
        return NetAddr(self.node.config.bind, self.node.port, self.node.config.services, int(time.time()))

    def peer_ready(self, peer: "Peer") -> None:
        state = self.relay.new_peer(peer.inbound, block_relay_only=peer.kind == "block-relay")
        self.states[peer.id] = state
        now = time.time()
        self.next_send[peer.id] = now + self._exp(self.node.timers.addr_send_mean)
        if self.next_self_advertise == 0.0:
            self.next_self_advertise = now + self._exp(self.node.timers.self_advertise_mean)
        if peer.inbound or peer.kind not in GETADDR_KINDS:
            return
        if self.node.config.listen and self.connman.cfg.self_advertise and peer.kind != "addr-fetch":
            peer.send(msg_addr([self.self_address()]))  # Core advertises itself to new outbound peers
        peer.send(msg_getaddr())
        self.relay.we_sent_getaddr(state)

    def peer_gone(self, peer: "Peer") -> None:
        self.states.pop(peer.id, None)
        self.next_send.pop(peer.id, None)

    def on_addr(self, peer: "Peer", addrs: list[NetAddr]) -> None:
        state = self.states.get(peer.id)
        if state is None:
            return
        verdict = self.relay.receive(state, addrs)
        self.received += len(addrs)
        self.rate_limited += verdict.rate_limited
        own = [a for a in verdict.accepted if (a.ip, a.port) == (peer.ip, peer.port)]
        others = [a for a in verdict.accepted if (a.ip, a.port) != (peer.ip, peer.port)]
        addrman = self.connman.addrman
        if own:
            addrman.add(own, source_ip=peer.ip)  # a self-announcement gets no time penalty
        if others:
            addrman.add(others, source_ip=peer.ip, time_penalty=addrman.windows.time_penalty)
        if own or others:
            self.connman.wake()
        if verdict.forward:
            candidates = [pid for pid, s in self.states.items() if pid != peer.id and s.relay_enabled]
            for a in verdict.forward:
                for pid in self.relay.forward_targets(a, candidates):
                    self.relay.queue(self.states[pid], a)
        if peer.kind == "addr-fetch":
            peer.disconnect("addr-fetch done")

    def on_getaddr(self, peer: "Peer") -> None:
        state = self.states.get(peer.id)
        if state is None:
            return
        banman = self.connman.banman

        def fresh() -> list[NetAddr]:
            return [a for a in self.connman.addrman.get_addr(MAX_ADDR_TO_SEND)
                    if not banman.is_banned(a.ip) and not banman.is_discouraged(a.ip)]

        reply = self.relay.answer_getaddr(state, fresh)
        if reply:
            for a in reply:
                state.remember(a)
            peer.send(msg_addr(reply[:MAX_ADDR_TO_SEND]))

    def tick(self) -> None:
        """Flush due per-peer queues; advertise ourselves every exp(24 h) (both scaled)."""
        now = time.time()
        t = self.node.timers
        if self.next_self_advertise and now >= self.next_self_advertise and self.connman.cfg.self_advertise \
                and self.node.config.listen:
            self.next_self_advertise = now + self._exp(t.self_advertise_mean)
            me = self.self_address()
            for state in self.states.values():
                state.known.pop((me.ip, me.port), None)  # Core clears the peer's filter for this
                self.relay.queue(state, me)
        for pid, due in list(self.next_send.items()):
            if now < due:
                continue
            self.next_send[pid] = now + self._exp(t.addr_send_mean)
            peer = self.node.peers.get(pid)
            state = self.states.get(pid)
            if peer is None or state is None:
                continue
            batch = self.relay.take_pending(state)
            if batch:
                peer.send(msg_addr(batch))
