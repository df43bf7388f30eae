"""One relay policy against one spy, in one process on real loopback sockets (issue 11's
comparison, "three runs in one test" until the attacker runtime has local-backend placement).

Honest nodes run in a node `Host`; the spy is the attacker runtime's `spy` kind with several
identities. Every honest node dials `OUTBOUND` peers drawn uniformly from all other nodes, spy
identities included (so a spy identity is an honest node's outbound peer as often as any node: the
spy's share of nodes p is also its share of stem relays). One more identity, the supernode, dials
every honest node and listens to nobody: no honest node dials it. (When spy identity 0 was both,
the ~7 % of honest nodes that drew it as an outbound peer raced its inbound link to them; under load
some never completed that dial and the graph never formed: "7 of 8 peers", the old flake of
full-suite runs.) Each honest node injects `txs_per_node` transactions; the ground truth is who
injected what; the spy's views are merged over its identities (earliest report per announcer).

Why the Dandelion epoch is short here (`EPOCH`): Dandelion++ sends all of a node's own transactions
through one relay per epoch, so within one epoch a run of 100 nodes is 100 draws of "is my relay a
spy?", not one draw per transaction: recall's standard deviation is then sqrt(p(1-p)/100) ≈ 0.03,
and one run in six landed at 0.16 against p = 0.099. With a 1 s epoch and each node's transactions
`SPACING` × 100 apart, every transaction of a node takes a fresh relay draw (docs/results.md#privacy).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from harness.analysis.figures.propagation import item_propagation, kind_propagation
from harness.analysis.model import ItemObservation
from harness.analysis.privacy import PolicyRun, evaluate
from harness_node.attack.config import AttackConfig
from harness_node.attack.kinds import load_kinds
from harness_node.attack.runtime import AttackRuntime
from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.wire.codec import hash_to_hex
from harness_node.wire.synthetic import origin_of

from tests.node.conftest import LoopThread, next_ip, wait_until

OUTBOUND = 8
PORT = 18444
EPOCH = 1.0  # wall seconds per Dandelion epoch (see above)
# Embargo: 8 s + Exp(2 s) wall, not the scaled 1 s + Exp(2 s). All 100 nodes share one event loop;
# on a machine loaded to 100+ runnable tasks it lags seconds, a stem's hops take that long, and the
# sender's own embargo timer (the first one started) fired before the stem ended: the sender fluffed
# its own transaction and the spy saw plain diffusion from it (recall 0.185 against p = 0.099 in one
# such run). Dandelion++'s analysis assumes the embargo outlasts the stem; 8 s keeps that true here.
EMBARGO, EMBARGO_MEAN = 8.0, 2.0
# Deadlines are for a machine loaded to 100+ runnable tasks (the graph once took over 120 s to form
# there); on a quiet machine each wait ends in seconds.
DEADLINE = 600.0
SPACING = 0.02  # seconds between injections: 100 nodes round-robin -> >= 2 s (2 epochs) per node
load_kinds()


def _graph(n_honest: int, n_total: int, rng: random.Random) -> dict[int, list[int]]:
    """Honest node i -> the nodes it dials (indices into honest + spies); no pair linked twice."""
    linked: set[frozenset[int]] = set()
    out: dict[int, list[int]] = {}
    for i in rng.sample(range(n_honest), n_honest):
        choices = [j for j in range(n_total) if j != i and frozenset((i, j)) not in linked]
        out[i] = rng.sample(choices, min(OUTBOUND, len(choices)))
        linked.update(frozenset((i, j)) for j in out[i])
    return out


def run_policy(lt: LoopThread, policy: str, seed: int, honest: int = 100, spies: int = 11,
               txs_per_node: int = 4, time_scale: float = 0.1) -> PolicyRun:
    rng = random.Random(seed)
    ips = [next_ip() for _ in range(honest + spies + 1)]  # the last one: the supernode
    names = [f"h{i}" for i in range(honest)]
    graph = _graph(honest, honest + spies, rng)
    targets = [f"{ips[i]}:{PORT}" for i in range(honest)]
    attack = AttackConfig.from_dict({"time_scale": time_scale, "attackers": [
        {"name": f"spy-{k}", "kind": "spy", "address": ips[honest + k], "port": PORT, "targets": targets,
         "target_names": names, "params": {"connections": 0, "listen": True}} for k in range(spies)]
        + [{"name": "supernode", "kind": "spy", "address": ips[-1], "port": PORT, "targets": targets,
            "target_names": names, "params": {"connections": 1, "listen": False}}]})
    runtime = AttackRuntime(attack)
    configs = [NodeConfig(name=names[i], bind=ips[i], port=PORT, relay_policy=policy, time_scale=time_scale,
                          seed=seed * 1000 + i, timers={"dandelion_epoch": EPOCH, "dandelion_embargo": EMBARGO,
                                                       "dandelion_embargo_mean": EMBARGO_MEAN}, connect=[f"{ips[j]}:{PORT}" for j in graph[i]])
               for i in range(honest)]
    host = Host(configs)
    lt.run(runtime.start())
    try:
        wait_until(lambda: all(runtime.attackers[f"spy-{k}"].server is not None for k in range(spies)),
                   timeout=DEADLINE, what="spies listening")
        lt.run(host.start(), timeout=DEADLINE)
        try:
            return _measure(lt, host, runtime, policy, seed, honest, spies, txs_per_node, graph, names)
        finally:
            lt.run(host.stop(), timeout=DEADLINE)
    finally:
        lt.run(runtime.stop(), timeout=DEADLINE)


def _measure(lt: LoopThread, host: Host, runtime: AttackRuntime, policy: str, seed: int, honest: int, spies: int,
             txs_per_node: int, graph: dict[int, list[int]], names: list[str]) -> PolicyRun:
    nodes = [host.nodes[n] for n in names]

    def short() -> list[str]:
        """Nodes not yet at their planned outbound peers, with what they have (the failure message)."""
        return [f"{n.name}: {sorted((p.ip, p.kind, p.ready) for p in n.outbound_peers())} of {len(graph[i])}"
                for i, n in enumerate(nodes) if sum(p.ready for p in n.outbound_peers()) < len(graph[i])]
    try:
        lt.wait(lambda: not short(), timeout=DEADLINE, what="every honest node at its outbound peers")
    except AssertionError as e:
        missing = lt.eval(short)
        raise AssertionError(f"{e}: {len(missing)} nodes short, e.g. {missing[:3]}") from None
    supernode = runtime.attackers["supernode"]
    wait_until(lambda: sum(p.handshake_done for p in supernode.peers if p.target) >= honest, timeout=DEADLINE,
               what="the supernode linked to every honest node")
    truth: dict[str, str] = {}
    txs = []
    for k in range(txs_per_node * honest):
        origin = nodes[k % honest]
        tx = lt.eval(origin.inject_tx)
        truth[hash_to_hex(tx.txid)] = origin.name
        txs.append((tx, origin.name))
        lt.run(asyncio.sleep(SPACING))
    lt.wait(lambda: all(tx.txid in n.mempool for tx, _ in txs for n in nodes), timeout=DEADLINE,
            what="every tx at every honest node")
    lt.run(asyncio.sleep(30 * host.nodes[names[0]].timers.inbound_inv_mean / 5))  # trailing announcements
    views: dict[str, dict[str, float]] = {}
    for attacker in runtime.attackers.values():
        for txid, view in lt.eval(lambda: {t: dict(v) for t, v in attacker.views.items()}).items():
            merged = views.setdefault(txid, {})
            for who, t in view.items():
                merged[who] = min(t, merged.get(who, t))
    items = []
    for tx, origin in txs:
        seen = lt.eval(lambda: {n.name: n.mempool.record(tx.txid).first_seen_ns / 1e9 for n in nodes})
        items.append(ItemObservation("tx", hash_to_hex(tx.txid), origin_of(tx)[1] / 1e9, origin, seen, honest))
    edges = [(names[i], names[j]) for i, js in graph.items() for j in js if j < honest]
    scores = evaluate(views, truth, names, edges)
    propagation = kind_propagation("tx", [item_propagation(o) for o in items])
    return PolicyRun(policy, seed, honest, spies, scores, propagation)


def describe(run: PolicyRun) -> dict[str, Any]:
    return {"policy": run.relay_policy, "seed": run.seed, "p": round(run.spy_share, 3),
            **{f"{k}_{m}": round(getattr(s, m), 3) for k, s in run.scores.items() for m in ("precision", "recall")},
            "p50": run.propagation.p50.median, "p90": run.propagation.p90.median, "p100": run.propagation.p100.median}
