"""The collector asks each host process once per call for all its nodes (GET /host/status, /host/bans,
/host/items), against two real hosts of three light nodes each on loopback, their real control
sites and the controller's real HTTP client: a poll costs a few requests, not three per node (at
10,000 nodes, 30,000 a poll took ~0.6 of this machine's 2 cores), and says what asking each node
alone says."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from harness.backends.client import ControlAPIError
from harness.backends.endpoint import Endpoint
from harness.controller.collector import Collector
from harness.plan.planner import plan
from harness.scenario import parse_scenario
from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.wire.codec import hash_to_hex
from tests.harness.counting_client import CountingClient
from tests.loopback import next_ip
from tests.node.conftest import LoopThread

SCENARIO = """\
name: host-polling
duration: 30s
network: {nodes: 6}
"""
PER_NODE = {"/status", "/bans", "/items"}


def test_a_poll_asks_each_host_once_per_call_and_matches_asking_each_node() -> None:
    view = plan(parse_scenario(SCENARIO))
    peers = {n.name: n for n in view.peers()}
    names = view.names("honest")
    lt = LoopThread()
    # each node on its planned address (the collector maps peers by it), ports chosen by the kernel
    hosts = [Host(NodeConfig(name=n, bind=peers[n].address, port=0, control_port=0, seed=i + 1)
                  for i, n in enumerate(names[k * 3:(k + 1) * 3])) for k in range(2)]
    try:
        for h in hosts:
            lt.run(h.start())
        nodes = {n: nd for h in hosts for n, nd in h.nodes.items()}
        endpoints = {n: Endpoint(n, nd.config.bind, nd.port, f"http://{nd.control_address[0]}:{nd.control_address[1]}")
                     for n, nd in nodes.items()}

        async def link() -> None:  # a chain across both hosts, an item of each kind, a ban
            for a, b in zip(names, names[1:]):
                await nodes[b].open_connection(nodes[a].config.bind, nodes[a].port, "manual")
        lt.run(link())
        lt.wait(lambda: all(any(p.ready for p in nd.peers.values()) for nd in nodes.values()), what="the chain")
        tx = lt.eval(lambda: nodes["node-0"].inject_tx().txid)
        blk = lt.eval(lambda: nodes["node-5"].mine_block().hash)
        lt.eval(lambda: nodes["node-4"].ban("127.250.0.9", "manual"))
        # settled before anyone asks: the answers alone and the host's must see the same thing
        lt.wait(lambda: all(nd.mempool.record(tx) and blk in nd.block_seen for nd in nodes.values()),
                what="both items everywhere")
        txid, block = hash_to_hex(tx), hash_to_hex(blk)
        journal = [{"kind": "tx", "item_id": txid, "origin": "node-0", "origin_time": time.time()},
                   {"kind": "block", "item_id": block, "origin": "node-5", "origin_time": time.time()}]
        keys = [(i["kind"], i["item_id"]) for i in journal]
        eps = list(endpoints.values())

        async def poll() -> tuple[Any, ...]:
            async with CountingClient(None) as client:
                alone = (await client.gather(eps, client.status), await client.gather(eps, client.bans),
                         await client.gather(eps, lambda ep: client.items(ep, keys)))
                client.paths.clear()
                collector = Collector(view, client, endpoints, time.time())
                obs = await collector.observe(journal)
                paths, full = dict(client.paths), dict(collector._status)
                await collector.poll(peer_lists=False)  # the live loop's: counts, no lists to decode
                brief = dict(collector._status), collector.graph()
                return alone, paths, (collector, full), obs, await client.bans_of(eps), await client.items_of(eps, keys), brief

        (statuses, bans, items), paths, (collector, full), obs, host_bans, host_items, (brief, live_graph) = asyncio.run(poll())
    finally:
        for h in hosts:
            lt.run(h.stop())
        lt.close()
    assert not any(isinstance(x, ControlAPIError) for d in (statuses, bans, items) for x in d.values())
    # the cost: a round of at most 4 picks per call covers both hosts; nothing asked node by node
    assert not PER_NODE & set(paths), paths
    assert all(paths[f"/host/{p}"] <= 4 for p in ("status", "bans", "items")), paths
    # what it learnt is what each node says alone
    assert host_bans == bans and bans["node-4"] and not bans["node-0"]
    assert host_items == items and all(items[n][("tx", txid)] for n in names)
    for n in names:
        assert sorted(p["address"] for p in full[n]["peers"]) == \
               sorted(p["address"] for p in statuses[n]["peers"]), n
    assert sorted((e.a, e.b, e.direction) for e in obs.graph.edges) == sorted(
        (n, collector._role_of_ip(p["address"])[0], p["direction"]) for n in names for p in statuses[n]["peers"])
    assert len(obs.graph.edges) == 2 * (len(names) - 1)
    tx_seen = next(i for i in obs.items if i.item_id == txid).first_seen
    assert tx_seen == {n: items[n][("tx", txid)]["first_seen"] for n in names}
    # a live poll with nothing that reads peer lists (no victims, no spy) asks for counts only
    assert sorted(brief) == names and live_graph.edges == []
    for n in names:
        assert "peers" not in brief[n] and sum(brief[n]["peer_counts"].values()) == len(statuses[n]["peers"]), n


@contextlib.contextmanager
def two_hosts(prefix: str) -> Iterator[tuple[list[Host], list[Endpoint]]]:
    """Two real host processes' worth of nodes (three each, one loop) and their endpoints."""
    lt = LoopThread()
    hosts = [Host(NodeConfig(name=f"{prefix}{k}n{i}", bind=next_ip(), port=0, control_port=0, seed=3 * k + i + 1)
                  for i in range(3)) for k in range(2)]
    try:
        for h in hosts:
            lt.run(h.start())
        yield hosts, [Endpoint(n, nd.config.bind, nd.port, f"http://{nd.control_address[0]}:{nd.control_address[1]}")
                      for h in hosts for n, nd in h.nodes.items()]
    finally:
        for h in hosts:
            lt.run(h.stop())
        lt.close()


def test_once_a_client_knows_the_hosts_it_asks_each_exactly_once_in_one_round() -> None:
    """After one call has learnt which host process answers for which node, the next call (any
    /host/ route) asks one endpoint of each host, all in its first round: 2 requests for 2 hosts,
    where random picks need up to a few rounds (at 10,000 nodes in 13 workers a round waits for its
    slowest host, seconds while the graph forms)."""
    with two_hosts("k") as (hosts, eps):

        async def calls() -> list[tuple[dict[str, int], Any]]:
            out = []
            async with CountingClient(None) as client:
                for call in (client.statuses, client.statuses, client.bans_of):
                    client.paths.clear()
                    got = await call(eps)
                    out.append((dict(client.paths), got))
            return out

        (_, first), (paths, second), (ban_paths, bans) = asyncio.run(calls())
    names = sorted(ep.name for ep in eps)
    assert sorted(first) == sorted(second) == sorted(bans) == names
    assert not any(isinstance(x, ControlAPIError) for d in (first, second, bans) for x in d.values())
    assert paths == {"/host/status": 2} and ban_paths == {"/host/bans": 2}, (paths, ban_paths)


def test_a_client_told_the_host_groups_asks_each_host_once_from_its_first_call() -> None:
    """`ControlClient.place` with the backend's `host_groups`: the very first call is one request a
    host (the first sample of 10,000 forming nodes took 43 s to find 13 workers by random picks).
    A wrong grouping (all six under one host) still answers every node, right."""
    with two_hosts("g") as (hosts, eps):

        async def first_call(groups: list[list[str]]) -> tuple[dict[str, int], Any]:
            async with CountingClient(None) as client:
                client.place(groups)
                got = await client.statuses(eps)
                return dict(client.paths), got

        paths, got = asyncio.run(first_call([list(h.nodes) for h in hosts]))
        _, wrong = asyncio.run(first_call([[ep.name for ep in eps]]))
    assert paths == {"/host/status": 2}, paths
    for answers in (got, wrong):
        assert sorted(answers) == sorted(ep.name for ep in eps)
        assert all(not isinstance(s, ControlAPIError) and s["id"] == n for n, s in answers.items()), answers
