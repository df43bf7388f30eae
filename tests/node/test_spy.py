"""The spy attacker kind (harness_node/attack/spy.py) against real nodes on loopback: it times every
node's announcements without relaying anything, first-spy finds the sources of flooded txs, and a
listening spy that advertises Dandelion is picked as a stem relay, records the stem and drops it
(the sender's embargo timer fluffs it)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from harness.analysis.privacy import evaluate
from harness_node.attack.base import ATTACKS
from harness_node.attack.config import AttackConfig, AttackConfigError
from harness_node.attack.kinds import load_kinds
from harness_node.attack.runtime import AttackRuntime
from harness_node.wire.codec import hash_to_hex

from conftest import next_ip, wait_until

load_kinds()
TIME_SCALE = 0.02


def spy_config(address: str, targets: list[str], names: list[str], control_port: int | None = None,
               **params: Any) -> AttackConfig:
    spec = {"name": "spy", "kind": "spy", "address": address, "port": 18444, "targets": targets,
            "target_names": names, "params": params}
    if control_port is not None:
        spec["control_port"] = control_port
    return AttackConfig.from_dict({"time_scale": TIME_SCALE, "attackers": [spec]})


def control_get(lt: Any, runtime: AttackRuntime, path: str) -> dict[str, Any]:
    """GET `path` on the identity's real control API (the harness's collector reads views so)."""
    import json
    import urllib.request

    from harness_node.attack.control import IDENTITIES

    ip, port = lt.eval(lambda: next(iter(runtime.control.app[IDENTITIES])))
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def sent_commands(attacker: Any) -> set[str]:
    return {s.labels["command"] for m in attacker.metrics.registry.collect() for s in m.samples
            if m.name == "harness_attacker_messages_sent" and s.value > 0}


def test_spy_params_are_validated():
    for params, field in (({"connections": 99}, "connections"), ({"listen": "yes"}, "listen"),
                          ({"bogus": 1}, "unknown field")):
        with pytest.raises(AttackConfigError, match=field):
            AttackRuntime(spy_config("127.0.0.1", [], [], **params))


def test_spy_times_every_node_and_first_spy_finds_flooded_sources(lt, make_node):
    rng = random.Random(2)
    nodes = [make_node(relay_policy="flood", time_scale=TIME_SCALE) for _ in range(8)]
    for i, n in enumerate(nodes):  # a ring plus a chord each: every node dials two others
        for j in {(i + 1) % 8, (i + rng.randrange(2, 7)) % 8} - {i}:
            lt.eval(lambda: n.add_manual(nodes[j].config.bind, nodes[j].port))
    lt.wait(lambda: all(len(n.outbound_peers()) >= 1 for n in nodes), what="the honest graph up")
    targets = [f"{n.config.bind}:{n.port}" for n in nodes]
    runtime = AttackRuntime(spy_config(next_ip(), targets, [n.name for n in nodes], control_port=0, connections=2,
                                       listen=False))
    lt.run(runtime.start())
    try:
        spy = runtime.attackers["spy"]
        wait_until(lambda: sum(p.handshake_done for p in spy.peers) == 16, what="two spy links per node")
        truth = {}
        for k in range(16):
            origin = nodes[k % 8]
            tx = lt.eval(origin.inject_tx)
            truth[hash_to_hex(tx.txid)] = origin.name
            lt.wait(lambda: all(tx.txid in n.mempool for n in nodes), what=f"tx {k} everywhere")
        wait_until(lambda: all(len(spy.views.get(t, {})) == 8 for t in truth), what="every node announced every tx")
        edges = lt.eval(lambda: [(n.name, next(m.name for m in nodes if m.config.bind == p.ip))
                                 for n in nodes for p in n.outbound_peers()])
        scores = evaluate(spy.views, truth, [n.name for n in nodes], edges)
        # flooding announces at once: the source is first (loopback jitter may swap a rare pair)
        assert scores["first-spy"].recall >= 0.8, scores["first-spy"].to_dict()
        assert scores["first-spy"].precision >= 0.7
        assert not sent_commands(spy) & {"inv", "tx", "getdata", "dandeliontx", "headers"}, sent_commands(spy)
        assert spy.detail()["announcements"] == 8 * 16
        # over the control API: counts on /status (polled every few seconds), the views on /data only
        status = control_get(lt, runtime, "/status")
        assert status["detail"]["transactions"] == 16 and "views" not in status["detail"]
        full = control_get(lt, runtime, "/data")
        assert full["views"] == lt.eval(lambda: {t: dict(v) for t, v in spy.views.items()})
        # ?since=: only the announcements heard since (the controller's live reads merge these)
        assert control_get(lt, runtime, f"/data?since={full['now']!r}")["views"] == {}
        tx = lt.eval(nodes[0].inject_tx)
        wait_until(lambda: len(spy.views.get(hash_to_hex(tx.txid), {})) == 8, what="the new tx announced by all")
        newer = control_get(lt, runtime, f"/data?since={full['now']!r}")
        assert list(newer["views"]) == [hash_to_hex(tx.txid)] and len(newer["views"][hash_to_hex(tx.txid)]) == 8
        assert newer["now"] >= full["now"]
        with pytest.raises(Exception, match="400"):
            control_get(lt, runtime, "/data?since=yesterday")
    finally:
        lt.run(runtime.stop())


def test_a_listening_spy_is_a_stem_relay_that_records_and_drops(lt, make_node):
    spy_ip = next_ip()
    plain = make_node(relay_policy="flood", time_scale=TIME_SCALE)
    runtime = AttackRuntime(spy_config(spy_ip, [f"{plain.config.bind}:{plain.port}"], [plain.name],
                                       connections=1, listen=True))
    lt.run(runtime.start())
    try:
        spy = runtime.attackers["spy"]
        wait_until(lambda: spy.server is not None, what="the spy listening")
        a = make_node(name="victim", relay_policy="dandelion", time_scale=TIME_SCALE,
                      dandelion={"fluff_probability": 0.0, "stem_relays": 1},
                      timers={"dandelion_embargo": 0.5, "dandelion_embargo_mean": 0.1},
                      connect=[f"{spy_ip}:18444", f"{plain.config.bind}:{plain.port}"])
        lt.wait(lambda: sum(p.ready for p in a.outbound_peers()) == 2, what="the victim's two outbound peers")
        tx = lt.eval(a.inject_tx)
        key = hash_to_hex(tx.txid)
        wait_until(lambda: key in spy.views, what="the stem tx at the spy")
        assert list(spy.views[key]) == [a.config.bind] and spy.stems == 1  # named by its sender's address
        lt.wait(lambda: tx.txid in plain.mempool, timeout=10, what="the embargo fluff")
        assert lt.eval(lambda: a.dandelion.fluffs["embargo"]) == 1
        assert "dandeliontx" not in sent_commands(spy) and "tx" not in sent_commands(spy)
    finally:
        lt.run(runtime.stop())
