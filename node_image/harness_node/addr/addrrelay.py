"""Addr relay policy (protocol.md §2.3): what to accept, forward, answer and advertise. No I/O.

The node owns the timers and sockets; this module decides. Two countermeasure switches live here:
`rate_limit` (Core 22.0's token bucket) and `getaddr_cache` (Core's 21 h cached getaddr reply).
"""

from __future__ import annotations

import hashlib
import random
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..wire.codec import NetAddr
from ..wire.messages import MAX_ADDR_TO_SEND

MAX_ADDR_PROCESSING_TOKEN_BUCKET = 1000  # net_processing.cpp: bucket cap (and +1000 after our getaddr)
ADDR_FORWARD_MAX = 10  # net_processing.cpp: only messages of <= 10 addrs are forwarded
ADDR_FORWARD_PEERS = 2  # RelayAddress: each fresh address goes to 2 peers
ADDR_FRESH_SECONDS = 600  # forwarded only if nTime within the last 10 min
ADDR_FUTURE_SLACK = 600  # nTime more than 10 min ahead is replaced
ADDR_DEFAULT_AGE = 5 * 86400  # implausible nTime -> now - 5 days
GETADDR_MAX_PCT = 23  # net.h MAX_PCT_ADDR_TO_SEND
KNOWN_ADDR_FILTER = 5000  # net_processing.cpp m_addr_known rolling bloom of 5000 entries
RELAY_EPOCH = 86400  # RelayAddress: target choice is stable for 24 h


class KnownAddrs:
    """Core's m_addr_known: the addresses a peer is known to have (sent to it or received from it).

    Core keeps them in a CRollingBloomFilter of 5000 entries, which remembers at least the last 5000
    insertions and up to 1.5 times as many, in generations of half that size. The same generations
    here, each a sorted array of a 32-bit key per ip:port: 4 bytes an entry, where an ordered dict of
    ip:port tuples took ~200 and a set of ints ~100 (20 peers a node, 10,000 nodes: issue 17's
    memory budget). Core's filter is built for 1 false positive in 1,000 lookups; with at most 7,500
    keys of 32 bits a lookup here is wrong at most 7,500 / 2^32 ≈ 1 in 570,000 times, and a wrong
    answer has Core's consequence (the address is not sent to that peer)."""

    __slots__ = ("_generation", "_gens")

    def __init__(self, capacity: int = KNOWN_ADDR_FILTER) -> None:
        self._generation = (capacity + 1) // 2
        self._gens: list[array[int]] = [array("I")]  # newest last; at most 3 (1.5 x capacity remembered)

    @staticmethod
    def _key(addr: NetAddr) -> int:
        return hash((addr.ip, addr.port)) & 0xFFFFFFFF  # this process's hash: the filter never leaves it

    @staticmethod
    def _find(gen: array[int], key: int) -> int:
        """Index of `key` in `gen`, or -1-(where it would go)."""
        i = bisect_left(gen, key)
        return i if i < len(gen) and gen[i] == key else -1 - i

    def add(self, addr: NetAddr) -> None:
        self.add_all((addr,))

    def add_all(self, addrs: Iterable[NetAddr]) -> None:
        """add() each, in order. A whole addr message or getaddr reply at once (~25 addresses,
        every one a new key while a network forms): two calls fewer an address than add()."""
        gens, generation, key_of = self._gens, self._generation, self._key
        current = gens[-1]
        for addr in addrs:
            key = key_of(addr)
            i = bisect_left(current, key)
            if i < len(current) and current[i] == key:
                continue
            current.insert(i, key)  # also when an older generation has it: it is recent again
            if len(current) >= generation:
                current = array("I")
                gens.append(current)
                if len(gens) > 3:
                    del gens[0]

    def __contains__(self, addr: NetAddr) -> bool:
        key = self._key(addr)
        return any(self._find(g, key) >= 0 for g in self._gens)

    def discard(self, addr: NetAddr) -> None:
        key = self._key(addr)
        for g in self._gens:
            i = self._find(g, key)
            if i >= 0:
                del g[i]

    def __len__(self) -> int:
        return sum(map(len, self._gens))


@dataclass(slots=True)  # no instance dict: one per connection end
class PeerAddrState:
    """Per-connection addr relay state."""

    inbound: bool
    relay_enabled: bool  # False for block-relay-only; inbound peers enable it by sending addr/getaddr
    tokens: float = 1.0  # token bucket starts at 1
    last_refill: float = 0.0
    getaddr_answered: bool = False
    sent_getaddr: bool = False
    known: KnownAddrs = field(default_factory=KnownAddrs)
    pending: list[NetAddr] = field(default_factory=list)
    rate_limited: int = 0  # addresses dropped by the token bucket

    def remember_all(self, addrs: Iterable[NetAddr]) -> None:
        self.known.add_all(addrs)

    def knows(self, addr: NetAddr) -> bool:
        return addr in self.known


@dataclass
class AddrVerdict:
    accepted: list[NetAddr]  # to add to addrman (with its 2 h penalty unless self-announced)
    forward: list[NetAddr]  # fresh addresses to forward to 2 peers each
    rate_limited: int


class AddrRelay:
    def __init__(self, key: bytes, rng: random.Random, clock: Callable[[], float], token_rate: float,
                 cache_seconds: float, cache_jitter: float, *, rate_limit: bool = True,
                 getaddr_cache: bool = True, is_routable: Callable[[str], bool] = lambda ip: True,
                 time_scale: float = 1.0) -> None:
        self.key = key
        self.scale = time_scale  # windows below are Core's seconds times the node's time_scale
        self.rng = rng
        self.clock = clock
        self.token_rate = token_rate  # per second (already scaled by time_scale)
        self.cache_seconds = cache_seconds
        self.cache_jitter = cache_jitter
        self.rate_limit = rate_limit
        self.getaddr_cache = getaddr_cache
        self.is_routable = is_routable
        self._cache: list[NetAddr] = []
        self._cache_expiry = 0.0

    def new_peer(self, inbound: bool, block_relay_only: bool) -> PeerAddrState:
        # No addr relay with block-relay-only peers; inbound peers only once they ask or send.
        return PeerAddrState(inbound=inbound, relay_enabled=not inbound and not block_relay_only,
                             last_refill=self.clock())

    def we_sent_getaddr(self, state: PeerAddrState) -> None:
        state.sent_getaddr = True
        state.tokens += MAX_ADDR_PROCESSING_TOKEN_BUCKET

    def receive(self, state: PeerAddrState, addrs: Sequence[NetAddr]) -> AddrVerdict:
        """Process an addr/addrv2 message (its size was already checked by the peer layer)."""
        now = self.clock()
        if state.inbound:
            state.relay_enabled = True
        if self.rate_limit:
            state.tokens = min(state.tokens + (now - state.last_refill) * self.token_rate,
                               MAX_ADDR_PROCESSING_TOKEN_BUCKET)
        state.last_refill = now
        accepted, dropped = [], 0
        for a in addrs:
            if self.rate_limit:
                if state.tokens < 1:
                    dropped += 1
                    continue
                state.tokens -= 1
            if a.time <= 100_000_000 or a.time > now + ADDR_FUTURE_SLACK * self.scale:
                a = NetAddr(a.ip, a.port, a.services, int(now - ADDR_DEFAULT_AGE * self.scale))
            accepted.append(a)
        state.remember_all(accepted)
        state.rate_limited += dropped
        forward: list[NetAddr] = []
        if len(addrs) <= ADDR_FORWARD_MAX and not state.sent_getaddr:
            forward = [a for a in accepted
                       if a.time > now - ADDR_FRESH_SECONDS * self.scale and self.is_routable(a.ip)]
        # Core's fGetAddr: a reply to our getaddr is not forwarded; a short message ends the reply.
        if len(addrs) < MAX_ADDR_TO_SEND:
            state.sent_getaddr = False
        return AddrVerdict(accepted, forward, dropped)

    def forward_targets(self, addr: NetAddr, candidates: Sequence[int]) -> list[int]:
        """The 2 peers (ids) an address goes to: stable for 24 h, like Core's SipHash choice."""
        epoch = int(self.clock() // (RELAY_EPOCH * self.scale))
        def rank(pid: int) -> bytes:
            return hashlib.sha256(self.key + f"{addr.ip}:{addr.port}:{epoch}:{pid}".encode()).digest()
        return sorted(candidates, key=rank)[:ADDR_FORWARD_PEERS]

    def answer_getaddr(self, state: PeerAddrState, fresh: Callable[[], list[NetAddr]]) -> list[NetAddr] | None:
        """The reply to a getaddr: inbound peers only, once per connection; None = ignore it."""
        if not state.inbound or state.getaddr_answered:
            return None
        state.getaddr_answered = True
        state.relay_enabled = True
        if not self.getaddr_cache:
            return fresh()
        now = self.clock()
        if now >= self._cache_expiry:
            self._cache = fresh()
            self._cache_expiry = now + self.cache_seconds + self.rng.uniform(0, self.cache_jitter)
        return list(self._cache)

    def queue(self, state: PeerAddrState, addr: NetAddr) -> None:
        """Queue an address for this peer's next exp(30 s) flush; random replacement when full."""
        if not state.relay_enabled or state.knows(addr) or addr in state.pending:
            return
        if len(state.pending) >= MAX_ADDR_TO_SEND:
            state.pending[self.rng.randrange(len(state.pending))] = addr
        else:
            state.pending.append(addr)

    def take_pending(self, state: PeerAddrState) -> list[NetAddr]:
        out = [a for a in state.pending if not state.knows(a)]
        state.pending = []
        state.remember_all(out)
        return out
