"""The Dandelion++ relay policy on real loopback sockets (relay/dandelion.py, protocol.md §5):
stem paths follow the epoch's relays, the embargo timer fluffs a stem tx that a relay swallows, a
stem tx is neither announced nor served before it is fluffed, and a network mixing Dandelion and
other nodes delivers every tx to every node."""

from __future__ import annotations

import asyncio
import random

import pytest

from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.wire.messages import CInv, MSG_TX, msg_dandeliontx, msg_getdata
from harness_node.wire.synthetic import make_tx

from conftest import next_ip, wait_until

TIME_SCALE = 0.02  # diffusion means 100 ms / 40 ms


def stem_counts(lt, nodes):
    """Stem txs each node received and fluffed by its coin (q = 1: every stem tx it got)."""
    return lt.eval(lambda: [n.dandelion.fluffs["coin"] for n in nodes])


def wait_new_stem(lt, relays, before, what):
    """The index of the one relay whose count grew by exactly one since `before`."""
    def grown():
        now = stem_counts(lt, relays)
        return now if sum(now) > sum(before) else None
    wait_until(grown, timeout=10, what=what)
    lt.run(asyncio.sleep(0.2))  # let a duplicate, if any, arrive too
    now = stem_counts(lt, relays)
    assert sum(now) == sum(before) + 1, f"{what}: one stem tx arrived more than once: {before} -> {now}"
    return next(i for i, (a, b) in enumerate(zip(before, now)) if b > a), now


def star(lt, make_node, seed, epoch):
    """Three Dandelion relay candidates that fluff whatever reaches them (q = 1), so each one's coin
    count is exactly the stem txs it received, and a stem node `a` dialling all three that never
    fluffs by coin (q = 0) and picks two of them per `epoch` seconds."""
    relays = [make_node(relay_policy="dandelion", time_scale=TIME_SCALE, dandelion={"fluff_probability": 1.0})
              for _ in range(3)]
    a = make_node(relay_policy="dandelion", time_scale=TIME_SCALE, seed=seed,
                  dandelion={"fluff_probability": 0.0, "stem_relays": 2},
                  timers={"dandelion_epoch": epoch, "dandelion_embargo": 60.0},
                  connect=[r.address for r in relays])
    lt.wait(lambda: sum(p.ready for p in a.outbound_peers()) == 3, what="a's three outbound peers")
    return relays, a


def test_stem_paths_follow_the_epochs_relays(lt, make_node):
    relays, a = star(lt, make_node, seed=5, epoch=2.0)

    # own transactions: always the epoch's one fixed relay, which is one of the epoch's two relays
    seen_epochs: dict[int, set[str]] = {}
    counts = stem_counts(lt, relays)
    for k in range(12):
        tx, epoch, own, chosen = lt.eval(lambda: (a.inject_tx(), a.dandelion.epoch,
                                                  a.dandelion.own_relay.address, list(a.dandelion.relays)))
        got, counts = wait_new_stem(lt, relays, counts, f"own tx {k}")
        assert relays[got].address == own
        assert len(chosen) == 2 and own in [p.address for p in chosen]
        seen_epochs.setdefault(epoch, set()).add(own)
        assert lt.eval(lambda: all(tx.txid not in r.dandelion.stempool and tx.txid in r.mempool for r in relays[got:got + 1]))
        lt.run(asyncio.sleep(0.3))  # spread the txs over several 2 s epochs
    assert len(seen_epochs) >= 2, f"the 2 s epoch never rolled over: {seen_epochs}"
    assert all(len(owns) == 1 for owns in seen_epochs.values()), f"more than one own relay in an epoch: {seen_epochs}"

    assert lt.eval(lambda: a.dandelion.fluffs["coin"]) == 0


def test_each_sending_peer_maps_to_one_relay_of_the_epoch(lt, make_node, test_peers):
    relays, a = star(lt, make_node, seed=9, epoch=3600.0)
    counts = stem_counts(lt, relays)
    used: dict[int, set[str]] = {}
    for j in range(4):
        peer = test_peers(a)
        peer.handshake()
        for k in range(3):
            peer.send(msg_dandeliontx(make_tx()))
            got, counts = wait_new_stem(lt, relays, counts, f"peer {j} tx {k}")
            used.setdefault(j, set()).add(relays[got].address)
    epoch, chosen, routes = lt.eval(lambda: (a.dandelion.epoch, {p.address for p in a.dandelion.relays},
                                             set(a.dandelion.routes.values())))
    assert epoch == 1 and len(chosen) == 2
    assert all(len(u) == 1 for u in used.values()), f"a peer's stem txs took several relays: {used}"
    assert set().union(*used.values()) <= chosen, f"a stem tx left through a non-relay: {used} vs {chosen}"
    assert {p.address for p in routes} == set().union(*used.values())
    assert lt.eval(lambda: a.dandelion.fluffs["coin"]) == 0


def test_embargo_timer_fluffs_a_stem_tx_a_relay_drops(lt, make_node, test_peers):
    sink = make_node(relay_policy="dandelion", time_scale=TIME_SCALE)
    plain = make_node(relay_policy="flood", time_scale=TIME_SCALE)  # no Dandelion: never a stem relay
    a = make_node(relay_policy="dandelion", time_scale=TIME_SCALE, seed=3,
                  dandelion={"fluff_probability": 0.0, "stem_relays": 1},
                  timers={"dandelion_embargo": 1.0, "dandelion_embargo_mean": 0.2},
                  connect=[sink.address, plain.address])
    lt.wait(lambda: sum(p.ready for p in a.outbound_peers()) == 2, what="a's two outbound peers")
    watcher = test_peers(a)
    watcher.handshake()
    lt.eval(sink.pause)  # the stem relay stops reading: it swallows the stem tx
    tx = lt.eval(a.inject_tx)
    assert lt.eval(lambda: [p.address for p in a.dandelion.relays]) == [sink.address]

    # before the embargo: not in a's mempool, not announced, and getdata is answered notfound
    lt.run(asyncio.sleep(0.5))
    assert lt.eval(lambda: tx.txid not in a.mempool and tx.txid in a.dandelion.stempool)
    assert lt.eval(lambda: tx.txid not in plain.mempool)
    assert not [m for c, m in watcher.inbox if c == "inv"]
    watcher.send(msg_getdata([CInv(MSG_TX, tx.txid)]))
    assert watcher.expect("notfound").inv[0].hash == tx.txid

    # the embargo (1 s + Exp(0.2 s)) fires: a fluffs it, the plain node and the watcher get it
    lt.wait(lambda: tx.txid in plain.mempool, timeout=10, what="the embargo fluff reaching the plain node")
    assert lt.eval(lambda: a.dandelion.fluffs["embargo"]) == 1
    assert lt.eval(lambda: tx.txid not in a.dandelion.stempool)
    first_seen = lt.eval(lambda: plain.mempool.record(tx.txid).first_seen_ns)
    assert (first_seen - tx_origin_ns(tx)) / 1e9 >= 1.0, "fluffed before the embargo's 1 s base"
    assert watcher.expect("inv", timeout=10).inv[0].hash == tx.txid
    assert lt.eval(lambda: plain.stats.msgs[("in", "dandeliontx")]) == 0
    lt.eval(sink.resume)


def test_automatically_dialled_full_relay_peers_are_stem_relays(lt, make_node):
    """Peers the connection manager dials from the address table (kind outbound-full-relay, as in
    every network `harness run` builds) carry stems; block-relay-only peers never do."""
    import time

    from harness_node.wire.codec import NetAddr

    relays = [make_node(bind=f"127.{190 + i}.1.1", relay_policy="dandelion", time_scale=TIME_SCALE,
                        dandelion={"fluff_probability": 1.0}) for i in range(3)]
    a = make_node(bind="127.194.1.1", relay_policy="dandelion", time_scale=TIME_SCALE,
                  dandelion={"fluff_probability": 0.0, "stem_relays": 2},
                  peering={"outbound_full_relay": 2, "block_relay": 1}, timers={"connect_loop": 0.01,
                                                                                "dandelion_embargo": 60.0})
    lt.eval(lambda: a.connman.addrman.add([NetAddr(r.config.bind, r.port, 9, int(time.time())) for r in relays],
                                          source_ip="127.99.0.1"))
    lt.wait(lambda: sorted(p.kind for p in a.outbound_peers() if p.ready) == ["block-relay", "outbound-full-relay",
                                                                              "outbound-full-relay"],
            what="two automatic full-relay peers and one block-relay-only peer")
    counts = stem_counts(lt, relays)
    lt.eval(a.inject_tx)
    got, _ = wait_new_stem(lt, relays, counts, "the own tx's stem")
    kinds = lt.eval(lambda: {p.ip: p.kind for p in a.outbound_peers()})
    assert kinds[relays[got].config.bind] == "outbound-full-relay"
    assert lt.eval(lambda: a.dandelion.fluffs["no-relay"]) == 0 and lt.eval(lambda: a.dandelion.stems) == 1


def test_a_stem_that_comes_back_is_fluffed_at_once(lt, make_node):
    # a ring a -> b -> c -> a of Dandelion nodes that never fluff by coin, embargo one minute away:
    # the stem goes round and the node it returns to fluffs it (cause "loop"), long before any timer
    ring = [make_node(relay_policy="dandelion", time_scale=TIME_SCALE, dandelion={"fluff_probability": 0.0},
                      timers={"dandelion_embargo": 60.0}) for _ in range(3)]
    for i, n in enumerate(ring):
        nxt = ring[(i + 1) % 3]
        lt.eval(lambda: n.add_manual(nxt.config.bind, nxt.port))
    lt.wait(lambda: all(sum(p.ready for p in n.outbound_peers()) == 1 for n in ring), what="the ring up")
    tx = lt.eval(ring[0].inject_tx)
    lt.wait(lambda: all(tx.txid in n.mempool for n in ring), timeout=10, what="the looped tx everywhere")
    assert lt.eval(lambda: ring[0].dandelion.fluffs["loop"]) == 1
    assert lt.eval(lambda: sum(n.dandelion.fluffs["embargo"] + n.dandelion.fluffs["coin"] for n in ring)) == 0
    assert lt.eval(lambda: [n.dandelion.stems for n in ring]) == [1, 1, 1]


def tx_origin_ns(tx) -> int:
    from harness_node.wire.synthetic import origin_of
    return origin_of(tx)[1]


@pytest.mark.parametrize("config, problem", [
    ({"fluff_probability": 1.5}, "dandelion.fluff_probability"),
    ({"fluff_probability": "x"}, "dandelion.fluff_probability"),
    ({"stem_relays": 3}, "dandelion.stem_relays"),
    ({"stem_relay": 2}, "unknown field"),
])
def test_dandelion_parameters_are_validated(config, problem):
    with pytest.raises(ValueError, match=problem):
        NodeConfig(relay_policy="dandelion", dandelion=config)


N_MIXED = 16


@pytest.mark.slow
def test_a_mixed_network_delivers_every_tx_to_every_node(lt):
    rng = random.Random(11)
    ips = [next_ip() for _ in range(N_MIXED)]
    policies = ["dandelion" if i % 2 == 0 else ("diffusion" if i % 4 == 1 else "flood") for i in range(N_MIXED)]
    linked: set[frozenset[int]] = set()
    connect: dict[int, list[int]] = {}
    for i in range(N_MIXED):
        choices = [j for j in range(N_MIXED) if j != i and frozenset((i, j)) not in linked]
        connect[i] = rng.sample(choices, 4)
        linked.update(frozenset((i, j)) for j in connect[i])
    configs = [NodeConfig(name=f"m{i}", bind=ips[i], port=18444, relay_policy=policies[i], time_scale=TIME_SCALE,
                          seed=100 + i, connect=[f"{ips[j]}:18444" for j in connect[i]]) for i in range(N_MIXED)]
    host = Host(configs)
    lt.run(host.start())
    try:
        nodes = list(host.nodes.values())
        lt.wait(lambda: all(sum(p.ready for p in n.outbound_peers()) == 4 for n in nodes), timeout=20,
                what="every node at its 4 outbound peers")
        txs = []
        for k in range(2 * N_MIXED):
            txs.append(lt.eval(nodes[k % N_MIXED].inject_tx))
        lt.wait(lambda: all(tx.txid in n.mempool for tx in txs for n in nodes), timeout=60,
                what="every tx at every node")
        dandelion = [n for n in nodes if n.dandelion is not None]
        others = [n for n in nodes if n.dandelion is None]
        assert lt.eval(lambda: sum(n.dandelion.stems for n in dandelion)) >= N_MIXED  # stems really ran
        # a non-Dandelion node is never a stem relay
        assert lt.eval(lambda: sum(n.stats.msgs[("in", "dandeliontx")] for n in others)) == 0
    finally:
        lt.run(host.stop())
