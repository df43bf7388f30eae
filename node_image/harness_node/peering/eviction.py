"""Inbound eviction: which inbound peer to drop when every inbound slot is taken.

A pure port of Bitcoin Core's ``SelectNodeToEvict`` (``src/node/eviction.cpp``, master 2024–25;
protocol.md §2.1 "Inbound eviction"). The node builds one :class:`EvictionCandidate` per connection
and calls :func:`select_node_to_evict`; nothing here does I/O or keeps state.

How it works: each protection step sorts the remaining candidates so that the most deserving sit
at the end, then removes (protects) up to *k* of the last ones. Whoever survives every step is
evictable; among them the youngest member of the netgroup with the most connections goes.

Determinism: Core sorts with ``std::sort`` (unstable, so ties fall in an unspecified order). We
use Python's stable sort, so ties keep the order of the input list; pass candidates in connection
id order (Core keeps them in a ``std::map`` keyed by id) and the same input always gives the same
answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

# How many peers each step protects (eviction.cpp SelectNodeToEvict).
PROTECT_BY_NETGROUP = 4  # "Deterministically select 4 peers to protect by netgroup"
PROTECT_BY_MIN_PING = 8  # "Protect the 8 nodes with the lowest minimum ping time"
PROTECT_BY_NOVEL_TX = 4  # "Protect 4 nodes that most recently sent us novel transactions"
PROTECT_BLOCK_RELAY_ONLY = 8  # "Protect up to 8 non-tx-relay peers that have sent us novel blocks"
PROTECT_BY_NOVEL_BLOCK = 4  # "Protect 4 nodes that most recently sent us novel blocks"
# ProtectEvictionCandidatesByRatio: half of the rest by uptime, and up to half of that half
# (a quarter of the rest) reserved for disadvantaged networks.

# Network names, as the node reports them in EvictionCandidate.network.
NET_ONION = "onion"
NET_I2P = "i2p"
NET_CJDNS = "cjdns"


@dataclass(slots=True)
class EvictionCandidate:
    """One connection as eviction sees it (Core's NodeEvictionCandidate).

    Times are seconds on any one clock (larger = more recent); ``min_ping`` is in seconds and is
    ``math.inf`` for a peer that never answered a ping (Core: microseconds::max()). A field left
    at 0 (never relayed a block/tx) makes the peer more evictable, as in Core.
    """

    id: Any
    connected: float
    min_ping: float
    last_block_time: float
    last_tx_time: float
    relevant_services: bool  # offers NODE_NETWORK (| NODE_WITNESS): could serve us blocks
    relay_txs: bool  # fRelay in its version, i.e. not a block-relay-only peer
    bloom_filter: bool  # it loaded a BIP37 filter
    keyed_netgroup: int  # netgroup hashed with a per-node secret key (CNetGroupManager + SipHash)
    prefer_evict: bool  # discouraged address, accepted while slots were free
    is_local: bool  # localhost connection (e.g. a local Tor proxy)
    network: str  # "ipv4", "ipv6", "onion", "i2p", "cjdns"
    noban: bool = False
    outbound: bool = False


def _protect_last(
    candidates: list[EvictionCandidate],
    key: Callable[[EvictionCandidate], Any],
    k: int,
    protectable: Callable[[EvictionCandidate], bool] | None = None,
) -> list[EvictionCandidate]:
    """Core's EraseLastKElements: sort ascending by `key`, then drop those of the last `k` that
    are `protectable` (all of them when no predicate is given)."""
    ordered = sorted(candidates, key=key)
    k = min(k, len(ordered))
    if k == 0:
        return ordered
    head, tail = ordered[:-k], ordered[-k:]
    if protectable is None:
        return head
    return head + [c for c in tail if not protectable(c)]


def _protect_by_ratio(candidates: list[EvictionCandidate]) -> list[EvictionCandidate]:
    """Core's ProtectEvictionCandidatesByRatio, in full (not simplified).

    Protect half of the candidates by uptime, but first reserve up to half of those spots (a
    quarter of the candidates) for peers on disadvantaged networks (CJDNS, I2P, localhost, onion),
    which lose out on ping. Networks with fewer candidates get the first pick of unused spots.
    The result is left sorted youngest first, which the final step relies on.
    """
    total_protect = len(candidates) // 2
    max_by_network = total_protect // 2

    # (is_local, network, count); Core's array order breaks count ties.
    networks: list[list[Any]] = [[False, NET_CJDNS, 0], [False, NET_I2P, 0], [True, None, 0], [False, NET_ONION, 0]]

    def member(n: list[Any]) -> Callable[[EvictionCandidate], bool]:
        if n[0]:
            return lambda c: c.is_local
        return lambda c, net=n[1]: c.network == net

    for n in networks:
        is_member = member(n)
        n[2] = sum(1 for c in candidates if is_member(c))
    networks.sort(key=lambda n: n[2])  # stable, as Core's std::stable_sort

    protected = 0
    while protected < max_by_network:
        live = sum(1 for n in networks if n[2])
        if live == 0:
            break
        per_network = max((max_by_network - protected) // live, 1)
        progressed = False
        for n in networks:
            if n[2] == 0:
                continue
            is_member = member(n)
            # CompareNodeNetworkTime: non-members first, then members; each by uptime, youngest first.
            if n[0]:
                key = lambda c: (c.is_local, -c.connected)  # noqa: E731
            else:
                key = lambda c, net=n[1]: (c.network == net, -c.connected)  # noqa: E731
            before = len(candidates)
            candidates = _protect_last(candidates, key, per_network, is_member)
            delta = before - len(candidates)
            if delta:
                progressed = True
                protected += delta
                if protected >= max_by_network:
                    break
                n[2] -= delta
        if not progressed:
            break

    # ReverseCompareNodeTimeConnected: youngest first, so the longest-connected are protected.
    return _protect_last(candidates, lambda c: -c.connected, total_protect - protected)


def select_node_to_evict(
    candidates: Iterable[EvictionCandidate], *, protect_by_netgroup: bool = True
) -> Hashable | None:
    """The id of the inbound peer to evict, or None when every candidate is protected.

    ``protect_by_netgroup=False`` switches off step 3 (the "diversify inbound" countermeasure),
    so a scenario can measure what it buys; everything else stays as in Core.
    """
    # 1-2. ProtectNoBanConnections, ProtectOutboundConnections: never evicted.
    remaining = [c for c in candidates if not c.noban and not c.outbound]

    # 3. 4 peers by keyed netgroup: the key is secret, so an attacker cannot tell which netgroups
    #    win (CompareNetGroupKeyed: highest keys protected).
    if protect_by_netgroup:
        remaining = _protect_last(remaining, lambda c: c.keyed_netgroup, PROTECT_BY_NETGROUP)
    # 4. 8 lowest minimum ping (ReverseCompareNodeMinPingTime): needs physical proximity to fake.
    remaining = _protect_last(remaining, lambda c: -c.min_ping, PROTECT_BY_MIN_PING)
    # 5. 4 most recent novel txs (CompareNodeTXTime); ties: tx-relaying peers, then peers without
    #    a bloom filter, then the longest connected are protected first.
    remaining = _protect_last(
        remaining,
        lambda c: (c.last_tx_time, c.relay_txs, not c.bloom_filter, -c.connected),
        PROTECT_BY_NOVEL_TX,
    )
    # 6. Up to 8 block-relay-only peers with the most recent blocks (CompareNodeBlockRelayOnlyTime):
    #    tx-relaying peers sort first, so the last 8 are block-relay-only ones where there are any;
    #    of those, only peers offering relevant services are protected.
    remaining = _protect_last(
        remaining,
        lambda c: (not c.relay_txs, c.last_block_time, c.relevant_services, -c.connected),
        PROTECT_BLOCK_RELAY_ONLY,
        lambda c: not c.relay_txs and c.relevant_services,
    )
    # 7. 4 most recent novel blocks (CompareNodeBlockTime); ties: relevant services, then uptime.
    remaining = _protect_last(
        remaining,
        lambda c: (c.last_block_time, c.relevant_services, -c.connected),
        PROTECT_BY_NOVEL_BLOCK,
    )
    # 8. Half of the rest by uptime, a quarter reserved for disadvantaged networks.
    remaining = _protect_by_ratio(remaining)
    if not remaining:
        return None

    # 9. If any survivor is preferred for eviction (discouraged), consider only those: a peer that
    #    earned protection above keeps it even when discouraged.
    if any(c.prefer_evict for c in remaining):
        remaining = [c for c in remaining if c.prefer_evict]

    # 10. The netgroup with the most connections loses its youngest member; between equally large
    #     groups, the one whose youngest member connected most recently. `remaining` is sorted
    #     youngest first (step 8), so each group's first member is its youngest.
    groups: dict[int, list[EvictionCandidate]] = {}
    best_group = remaining[0].keyed_netgroup
    best_size = 0
    best_time = 0.0
    for c in remaining:
        group = groups.setdefault(c.keyed_netgroup, [])
        group.append(c)
        youngest = group[0].connected
        if len(group) > best_size or (len(group) == best_size and youngest > best_time):
            best_group, best_size, best_time = c.keyed_netgroup, len(group), youngest
    return groups[best_group][0].id
