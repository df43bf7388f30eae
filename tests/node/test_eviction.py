"""Inbound eviction follows Bitcoin Core's SelectNodeToEvict (protocol.md §2.1 "Inbound eviction").

Most tests build a crowd of "filler" peers that soak up the fixed protections, then one or a few
young peers whose fate depends on the rule under test. Every filler has its own netgroup, so
when no rule intervenes the youngest unprotected peer is the victim.
"""

from __future__ import annotations

import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from harness_node.peering.eviction import EvictionCandidate, select_node_to_evict

NOW = 10_000.0


def peer(id: int, **kw) -> EvictionCandidate:
    """An unremarkable inbound peer: never pinged, relayed nothing, own netgroup (key = 1000 + id)."""
    fields = dict(
        id=id,
        connected=float(id),
        min_ping=math.inf,
        last_block_time=0.0,
        last_tx_time=0.0,
        relevant_services=True,
        relay_txs=True,
        bloom_filter=False,
        keyed_netgroup=1000 + id,
        prefer_evict=False,
        is_local=False,
        network="ipv4",
    )
    fields.update(kw)
    return EvictionCandidate(**fields)


def fillers(n: int = 40) -> list[EvictionCandidate]:
    """Old peers (connected at t=0..n-1) with high netgroup keys and 0.2 s pings: they take the
    netgroup, ping, tx and block protections and the older half of the uptime protection."""
    return [peer(i, min_ping=0.2, keyed_netgroup=10_000 + i) for i in range(n)]


def young(id: int, **kw) -> EvictionCandidate:
    """A recently connected peer with a low netgroup key (never netgroup-protected)."""
    kw.setdefault("connected", NOW + id)
    kw.setdefault("keyed_netgroup", id)
    return peer(id, **kw)


# -- trivial cases ------------------------------------------------------------------------------


def test_no_candidates_means_nobody_to_evict():
    assert select_node_to_evict([]) is None


def test_noban_and_outbound_peers_are_never_evicted():
    only_protected = [peer(1, noban=True), peer(2, outbound=True)]
    assert select_node_to_evict(only_protected) is None
    crowd = fillers() + [young(100, noban=True), young(101, outbound=True), young(99)]
    assert select_node_to_evict(crowd) == 99


def test_a_few_inbound_peers_are_all_protected():
    # 4 netgroup + 8 ping + 4 tx + 4 block protections cover 20 peers outright.
    assert select_node_to_evict(fillers(20)) is None


def test_the_youngest_unprotected_peer_goes_when_every_netgroup_has_one_peer():
    crowd = fillers() + [young(100), young(101), young(102)]
    assert select_node_to_evict(crowd) == 102


# -- netgroup ------------------------------------------------------------------------------------


def test_the_youngest_peer_of_the_netgroup_with_the_most_connections_is_evicted():
    crowd = fillers() + [
        young(100, keyed_netgroup=7),
        young(101, keyed_netgroup=7),
        young(102, keyed_netgroup=7),
        young(103, keyed_netgroup=8),
        young(104, keyed_netgroup=8),  # youngest overall, but its group is smaller
    ]
    assert select_node_to_evict(crowd) == 102


def test_between_equally_large_netgroups_the_one_with_the_youngest_connection_loses():
    crowd = fillers() + [
        young(100, keyed_netgroup=7),
        young(103, keyed_netgroup=7),
        young(101, keyed_netgroup=8),
        young(104, keyed_netgroup=8),
    ]
    assert select_node_to_evict(crowd) == 104
    crowd = fillers() + [
        young(100, keyed_netgroup=7),
        young(104, keyed_netgroup=7),
        young(101, keyed_netgroup=8),
        young(103, keyed_netgroup=8),
    ]
    assert select_node_to_evict(crowd) == 104


def test_the_four_highest_keyed_netgroups_are_protected():
    # Five young peers carry the five highest keys: four are protected, the lowest key is not.
    crowd = fillers() + [young(100 + i, keyed_netgroup=99_000 + i) for i in range(5)]
    victim = select_node_to_evict(crowd)
    assert victim == 100
    # With the youngest of them on the lowest key, it is the one left exposed.
    crowd = fillers() + [young(100 + i, keyed_netgroup=99_000 - i) for i in range(5)]
    assert select_node_to_evict(crowd) == 104


def test_without_netgroup_protection_a_peer_in_a_protected_netgroup_can_be_evicted():
    crowd = fillers() + [young(100), young(101, keyed_netgroup=99_999)]
    assert select_node_to_evict(crowd) == 100  # 101 holds the top key: protected
    assert select_node_to_evict(crowd, protect_by_netgroup=False) == 101


# -- ping, txs, blocks -------------------------------------------------------------------------


def test_the_eight_lowest_ping_peers_are_protected_and_the_ninth_is_not():
    fast = [young(100 + k, min_ping=0.01 * (k + 1)) for k in range(9)]  # youngest is the slowest
    assert select_node_to_evict(fillers() + fast) == 108
    fast[-1].min_ping = 0.001  # now the youngest is the fastest: the next youngest goes
    assert select_node_to_evict(fillers() + fast) == 107


def test_a_never_pinged_peer_is_not_protected_by_ping():
    crowd = fillers() + [young(100, min_ping=0.001), young(101)]
    assert select_node_to_evict(crowd) == 101
    crowd = fillers() + [young(100), young(101, min_ping=0.001)]
    assert select_node_to_evict(crowd) == 100


def test_the_four_peers_with_the_most_recent_novel_txs_are_protected():
    relayers = [young(100 + k, last_tx_time=NOW - k) for k in range(5)]  # youngest: oldest tx
    assert select_node_to_evict(fillers() + relayers) == 104
    relayers[-1].last_tx_time = NOW + 1
    assert select_node_to_evict(fillers() + relayers) == 103


def test_block_relay_only_peers_with_recent_blocks_are_protected_up_to_eight():
    # 13 block-relay-only peers that sent blocks (the younger, the more recent its block): 8 are
    # protected as block-relay-only, 4 more as the most recent block senders, and the one with the
    # oldest block is evicted although 12 younger peers are there.
    brp = [young(100 + k, relay_txs=False, last_block_time=NOW + k) for k in range(13)]
    assert select_node_to_evict(fillers() + brp) == 100


def test_a_block_relay_only_peer_without_relevant_services_is_not_protected_as_such():
    def crowd(services: bool) -> list[EvictionCandidate]:
        # 4 relaying peers with newer blocks take the novel-block protection first.
        newer = [young(100 + k, last_block_time=NOW + 10 + k) for k in range(4)]
        target = young(120, relay_txs=False, relevant_services=services, last_block_time=NOW)
        return fillers() + newer + [young(110), target]

    assert select_node_to_evict(crowd(services=True)) == 110
    assert select_node_to_evict(crowd(services=False)) == 120


def test_the_four_peers_with_the_most_recent_novel_blocks_are_protected():
    miners = [young(100 + k, last_block_time=NOW - k) for k in range(5)]
    assert select_node_to_evict(fillers() + miners) == 104
    miners[-1].last_block_time = NOW + 1
    assert select_node_to_evict(fillers() + miners) == 103


# -- uptime and network reservation -----------------------------------------------------------


def _soak(start: int) -> list[EvictionCandidate]:
    """12 young peers that take the netgroup (4), tx (4) and block (4) protections, and 8 with the
    best pings, so that the peers under test only meet the uptime rule."""
    soak = [young(start + k, keyed_netgroup=99_000 + k) for k in range(4)]
    soak += [young(start + 4 + k, last_tx_time=NOW) for k in range(4)]
    soak += [young(start + 8 + k, last_block_time=NOW) for k in range(4)]
    soak += [young(start + 12 + k, min_ping=0.001) for k in range(8)]
    return soak


def test_a_discouraged_peer_is_evicted_first_unless_it_is_among_the_longest_connected_half():
    ordinary = [peer(i) for i in range(10)]  # connected at t=0..9
    # After the fixed protections 10 peers remain; the 5 connected longest are protected.
    late = [p if p.id != 7 else peer(7, prefer_evict=True) for p in ordinary]
    assert select_node_to_evict(late + _soak(500)) == 7
    early = [p if p.id != 2 else peer(2, prefer_evict=True) for p in ordinary]
    assert select_node_to_evict(early + _soak(500)) == 9  # peer 2 protected by uptime


def test_a_discouraged_peer_that_earned_protection_keeps_it():
    crowd = fillers() + [young(100, prefer_evict=True, min_ping=0.001), young(101)]
    assert select_node_to_evict(crowd) == 101


def test_among_several_discouraged_peers_the_netgroup_rule_decides():
    crowd = fillers() + [young(100, prefer_evict=True), young(101, prefer_evict=True), young(102)]
    assert select_node_to_evict(crowd) == 101


def test_a_young_onion_peer_is_kept_by_the_disadvantaged_network_reservation():
    ordinary = [peer(i) for i in range(9)]
    onion = peer(20, network="onion")  # the youngest of the rest
    assert select_node_to_evict(ordinary + [onion] + _soak(500)) == 8
    clearnet = peer(20)
    assert select_node_to_evict(ordinary + [clearnet] + _soak(500)) == 20


def test_localhost_i2p_and_cjdns_peers_share_the_reservation():
    # 12 peers remain: 6 protected, of which up to 3 reserved. Three young disadvantaged peers
    # (one each) take the reserved spots; the youngest clearnet peer is the victim.
    ordinary = [peer(i) for i in range(9)]
    special = [peer(20, is_local=True), peer(21, network="i2p"), peer(22, network="cjdns")]
    assert select_node_to_evict(ordinary + special + _soak(500)) == 8


def test_the_reservation_is_capped_at_a_quarter_of_the_rest():
    # 12 remain, 3 reserved spots; four young onion peers: the three longest-connected of them
    # are reserved, the fourth (the youngest peer) competes on uptime and loses. Without the cap
    # all four would be kept and clearnet peer 7 would go.
    ordinary = [peer(i) for i in range(8)]
    onions = [peer(20 + k, network="onion") for k in range(4)]
    assert select_node_to_evict(ordinary + onions + _soak(500)) == 23


# -- properties ---------------------------------------------------------------------------------

candidate_strategy = st.builds(
    EvictionCandidate,
    id=st.integers(0, 10_000),
    connected=st.floats(0, 1e6, allow_nan=False),
    min_ping=st.one_of(st.just(math.inf), st.floats(0, 10, allow_nan=False)),
    last_block_time=st.floats(0, 1e6, allow_nan=False),
    last_tx_time=st.floats(0, 1e6, allow_nan=False),
    relevant_services=st.booleans(),
    relay_txs=st.booleans(),
    bloom_filter=st.booleans(),
    keyed_netgroup=st.integers(0, 20),
    prefer_evict=st.booleans(),
    is_local=st.booleans(),
    network=st.sampled_from(["ipv4", "ipv6", "onion", "i2p", "cjdns"]),
    noban=st.booleans(),
    outbound=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(candidate_strategy, max_size=60, unique_by=lambda c: c.id), st.booleans())
def test_the_victim_is_always_an_ordinary_inbound_peer_and_exists_beyond_the_fixed_protections(
    candidates, by_netgroup
):
    victim = select_node_to_evict(candidates, protect_by_netgroup=by_netgroup)
    evictable = [c for c in candidates if not c.noban and not c.outbound]
    fixed = (4 if by_netgroup else 0) + 8 + 4 + 8 + 4  # at most this many protected before uptime
    if victim is None:
        assert len(evictable) <= fixed
    else:
        assert victim in {c.id for c in evictable}
    if len(evictable) > fixed:
        assert victim is not None
    assert select_node_to_evict(list(candidates), protect_by_netgroup=by_netgroup) == victim


def test_a_full_house_of_114_inbound_peers_is_decided_in_milliseconds():
    crowd = [
        peer(i, connected=float(i), min_ping=0.01 * (i % 17), last_tx_time=float(i % 13),
             last_block_time=float(i % 7), relay_txs=i % 5 != 0, keyed_netgroup=i % 23,
             network="onion" if i % 11 == 0 else "ipv4", prefer_evict=i % 19 == 0)
        for i in range(114)
    ]
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        victim = select_node_to_evict(crowd)
    per_call = (time.perf_counter() - start) / rounds
    assert victim is not None
    assert per_call < 0.005, f"{per_call * 1e3:.2f} ms per eviction decision"
