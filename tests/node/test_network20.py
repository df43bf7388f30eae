"""Twenty nodes in one host process on loopback, connected in a random graph: every node reaches its
outbound target, and an injected tx reaches all of them under flood and under Core's diffusion."""

from __future__ import annotations

import random
import statistics

import pytest

from harness_node.config import NodeConfig
from harness_node.host import Host

from conftest import next_ip

N_NODES = 20
MAX_OUTBOUND = 8
# diffusion means: inbound 5 s -> 500 ms, outbound 2 s -> 200 ms. Long enough that the event loop's
# lateness on a loaded 2-core CI machine (tens of ms) is small next to the timer it delays.
TIME_SCALE = 0.1
TXS = 8

pytestmark = pytest.mark.slow


def random_graph(n: int, k: int, rng: random.Random) -> dict[int, list[int]]:
    """Each node dials up to k others; no pair is linked twice (Core refuses a second link to an IP)."""
    linked: set[frozenset[int]] = set()
    out: dict[int, list[int]] = {}
    for i in rng.sample(range(n), n):
        candidates = [j for j in range(n) if j != i and frozenset((i, j)) not in linked]
        out[i] = rng.sample(candidates, min(k, len(candidates)))
        linked.update(frozenset((i, j)) for j in out[i])
    return out


def build_host(policy: str, seed: int) -> tuple[Host, dict[int, list[int]], list[str]]:
    rng = random.Random(seed)
    ips = [next_ip() for _ in range(N_NODES)]
    graph = random_graph(N_NODES, MAX_OUTBOUND, rng)
    configs = [NodeConfig(name=f"n{i}", bind=ips[i], port=18444, relay_policy=policy, time_scale=TIME_SCALE,
                          seed=seed + i, connect=[f"{ips[j]}:18444" for j in graph[i]]) for i in range(N_NODES)]
    return Host(configs), graph, ips


def hop_delays(host: Host, graph: dict[int, list[int]], ips: list[str], txid: bytes) -> list[tuple[str, float]]:
    """(link direction seen from the sender, seconds) for every node that got the tx from a peer."""
    by_ip = {ip: i for i, ip in enumerate(ips)}
    nodes = list(host.nodes.values())
    out = []
    for r, node in enumerate(nodes):
        rec = node.mempool.record(txid)
        if rec.from_peer is None:
            continue
        s = by_ip[rec.from_peer.rsplit(":", 1)[0]]
        sent = nodes[s].mempool.record(txid).first_seen_ns
        direction = "outbound" if r in graph[s] else "inbound"  # the sender dialled the receiver
        out.append((direction, (rec.first_seen_ns - sent) / 1e9))
    return out


@pytest.mark.parametrize("policy", ["flood", "diffusion"])
def test_an_injected_tx_reaches_all_20_nodes(lt, policy):
    host, graph, ips = build_host(policy, seed=7)
    lt.run(host.start())
    try:
        nodes = list(host.nodes.values())
        lt.wait(lambda: all(sum(p.ready for p in n.outbound_peers()) == len(graph[i]) for i, n in enumerate(nodes)),
                timeout=20, what="every node at its outbound target")
        assert sum(len(v) for v in graph.values()) > N_NODES * 6  # a dense graph, most nodes at 8
        hops: list[tuple[str, float]] = []
        lag = nodes[0].lag.histogram  # one loop for the whole host
        lag_before = (lag.sum, lag.count)
        for k in range(TXS):
            origin = nodes[k % N_NODES]
            tx = lt.eval(origin.inject_tx)
            lt.wait(lambda: all(tx.txid in n.mempool for n in nodes), timeout=20, what=f"tx {k} everywhere")
            hops += lt.eval(lambda: hop_delays(host, graph, ips, tx.txid))
        assert len(hops) == TXS * (N_NODES - 1)
        by_dir = {d: [s for dd, s in hops if dd == d] for d in ("inbound", "outbound")}
        if policy == "flood":
            late = lt.eval(lambda: (lag.sum - lag_before[0]) / max(1, lag.count - lag_before[1]))
            # loopback, no artificial delay: only the machine's own lateness adds to a hop
            assert statistics.mean(s for _, s in hops) < 0.05 + late, late
        else:
            timers = nodes[0].timers
            # Long draws are still pending when the tx is everywhere: let every queue drain, or
            # the sample would be censored towards short waits.
            lt.wait(lambda: not any(n.relay.queued(p) for n in nodes for p in n.peers.values()), what="queues drained")
            # Every timer fires as late as the loop is busy: the mean lateness of the loop's own probe
            # timers over the same minutes is what the machine, not the timer, added to each wait.
            late = lt.eval(lambda: (lag.sum - lag_before[0]) / max(1, lag.count - lag_before[1]))
            for direction, mean in (("outbound", timers.outbound_inv_mean), ("inbound", timers.inbound_inv_mean)):
                # The queue wait of every announcement is one draw of the Poisson timer: exponential
                # with the configured mean (hundreds of samples; bounds are generous on purpose).
                count = sum(n.stats.inv_wait[direction].count for n in nodes)
                waited = sum(n.stats.inv_wait[direction].sum for n in nodes) / count
                assert count > 100 and 0.6 * mean < waited < 1.5 * mean + late, (direction, waited, late, mean, count)
                # A receiver keeps the first of several competing announcements, so the hops it
                # observes are shorter than the timer mean, yet far from flood's sub-millisecond.
                observed = statistics.mean(by_dir[direction])
                assert 0.02 * mean < observed < 1.5 * mean + late, (direction, observed, late, mean)
    finally:
        lt.run(host.stop())
