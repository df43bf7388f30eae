"""The host process collects cyclic garbage in batches (procutil.tune_gc, issue 17): with CPython's
default young threshold of 700 allocations, forming a network spent a third of its CPU in the
collector. Checked here on a real loopback network: the entry points install the thresholds, the
same formation runs far fewer collections, and cyclic garbage (closed connections) is still freed."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Iterator

import pytest

from harness_node import host as host_mod
from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.procutil import GC_THRESHOLDS, new_event_loop, tune_gc

from conftest import next_ip

N_NODES = 48
OUTBOUND = 6


@pytest.fixture
def gc_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def form_network(seed: int) -> tuple[list[int], int]:
    """Young/middle/full collections while N_NODES form a random graph and then shut down, and how
    many nodes ended with OUTBOUND peers (so a network that did not form cannot pass for one)."""
    rng = random.Random(seed)
    ips = [next_ip() for _ in range(N_NODES)]
    configs = [NodeConfig(name=f"g{i}", bind=ips[i], port=18444, seed=seed + i,
                          connect=[f"{ips[j]}:18444" for j in rng.sample([k for k in range(N_NODES) if k != i], OUTBOUND)])
               for i in range(N_NODES)]
    counts = [0, 0, 0]

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            counts[info["generation"]] += 1

    async def run() -> int:
        host = Host(configs)
        await host.start()
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                formed = sum(len([p for p in n.outbound_peers() if p.verack_received]) >= OUTBOUND
                             for n in host.nodes.values())
                if formed == N_NODES:
                    break
            return formed
        finally:
            await host.stop()

    loop = new_event_loop()
    gc.collect()
    gc.callbacks.append(count)
    try:
        formed = loop.run_until_complete(run())
    finally:
        gc.callbacks.remove(count)
        loop.close()
    return counts, formed


def test_host_entry_point_installs_the_thresholds(monkeypatch: pytest.MonkeyPatch, gc_thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    seen = []

    async def serve(configs, node_factory=None) -> None:  # the real run_host around a stand-in server
        seen.append(gc.get_threshold())

    monkeypatch.setattr(host_mod, "serve", serve)
    host_mod.run_host([])
    assert seen == [GC_THRESHOLDS]


def test_forming_a_network_runs_far_fewer_collections(gc_thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    default, formed_default = form_network(seed=1)
    tune_gc()
    tuned, formed_tuned = form_network(seed=1)
    assert formed_default == formed_tuned == N_NODES
    assert default[0] >= 10, default  # the default collector does run during a formation...
    print("collections (young, middle, full): default", default, "tuned", tuned)
    assert tuned[0] * 5 <= default[0], (default, tuned)  # ...and the tuned one several times less


def test_cyclic_garbage_is_still_collected(gc_thresholds: None) -> None:
    """A closed connection leaves cycles (protocol <-> transport <-> peer); they must still go."""
    tune_gc()
    gc.collect()

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    before = sum(isinstance(o, Cycle) for o in gc.get_objects())
    for _ in range(GC_THRESHOLDS[0] * 3):
        Cycle()  # each is garbage at once, only the collector can free it
    left = sum(isinstance(o, Cycle) for o in gc.get_objects())
    assert before == 0
    assert left < GC_THRESHOLDS[0] * 2, left  # young collections ran and freed the older batches
