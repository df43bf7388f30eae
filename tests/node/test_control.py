"""The HTTP control API: one Application serving several nodes, auth, validation, metrics."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from harness_node.wire.codec import NetAddr, hash_to_hex
from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.wire.synthetic import make_tx

from conftest import TestPeer, next_ip

TOKEN = "s3cret"


def call(addr: tuple[str, int], method: str, path: str, body: Any = None, token: str | None = TOKEN,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://{addr[0]}:{addr[1]}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    return status, (json.loads(text) if text.startswith(("{", "[")) else text)


@pytest.fixture
def host(lt):
    # seeded: the addrman key (so which addresses share a table slot) is fixed, not drawn per run
    configs = [NodeConfig(name=f"c{i}", bind=next_ip(), port=0, control_port=0, control_token=TOKEN, seed=i + 1)
               for i in range(2)]
    h = Host(configs)
    lt.run(h.start())
    yield h
    lt.run(h.stop())


def test_one_application_routes_each_request_to_the_node_it_arrived_at(host):
    for name, node in host.nodes.items():
        status, body = call(node.control_address, "GET", "/status")
        assert status == 200 and body["id"] == name and body["address"] == node.address
        assert body["height"] == 0 and len(body["tip"]) == 64


@pytest.mark.slow
def test_status_lists_peers_with_their_details(lt, host):
    a, b = host.nodes.values()
    status, _ = call(b.control_address, "POST", "/peers", {"address": a.address})
    assert status == 202
    lt.wait(lambda: any(p.ready for p in a.peers.values()), what="b connected to a")
    _, body = call(b.control_address, "GET", "/status")
    (peer,) = body["peers"]
    assert peer["address"] == a.address and peer["direction"] == "outbound"
    assert peer["user_agent"].startswith("/harness-node:") and peer["services"] == 9
    assert peer["misbehaviour_score"] == 0 and "connected_time" in peer and "ping_s" in peer
    # the brief form `harness status` polls: counts by direction instead of the list
    _, brief = call(b.control_address, "GET", "/status?peers=counts")
    _, brief_a = call(a.control_address, "GET", "/status?peers=counts")
    assert "peers" not in brief and brief["peer_counts"] == {"inbound": 0, "outbound": 1}
    assert brief_a["peer_counts"] == {"inbound": 1, "outbound": 0} and brief["height"] == body["height"]
    # one request for the whole host process (`harness status` at 10,000 nodes): every node, by name
    _, both = call(a.control_address, "GET", "/host/status")
    assert {n: s["peer_counts"] for n, s in both["nodes"].items()} == \
           {b.name: brief["peer_counts"], a.name: brief_a["peer_counts"]}, both
    status, err = call(b.control_address, "GET", "/status?peers=some")
    assert status == 400 and "peers must be list or counts" in err["error"]
    status, _ = call(b.control_address, "DELETE", f"/peers/{a.address}")
    assert status == 200
    lt.wait(lambda: not b.peers, what="peer removed")
    assert call(b.control_address, "DELETE", f"/peers/{a.address}")[0] == 404


def test_txs_and_blocks_can_be_injected_and_queried(lt, host):
    node = next(iter(host.nodes.values()))
    addr = node.control_address
    status, body = call(addr, "POST", "/tx", {"synthetic": True})
    assert status == 200 and body["accepted"]
    txid = body["txid"]
    raw_tx = make_tx()
    status, body = call(addr, "POST", "/tx", {"raw": raw_tx.raw.hex()})
    assert status == 200 and body["txid"] == hash_to_hex(raw_tx.txid)
    _, pool = call(addr, "GET", "/mempool")
    assert pool["size"] == 2 and txid in pool["txids"]
    status, info = call(addr, "GET", f"/tx/{txid}")
    assert status == 200 and info["from_peer"] is None and info["in_mempool"] and info["harness_id"]
    status, blk = call(addr, "POST", "/block", {})
    assert status == 200 and blk["height"] == 1
    _, pool = call(addr, "GET", "/mempool")
    assert pool["size"] == 0
    assert call(addr, "GET", f"/tx/{txid}")[1]["in_mempool"] is False
    assert call(addr, "GET", "/tx/" + "00" * 32)[0] == 404
    raw_block = lt.eval(lambda: node.chain.tip.raw)
    assert call(addr, "POST", "/block", {"raw": raw_block.hex()})[1]["accepted"] is False  # known


def test_mutating_calls_need_the_token(host):
    addr = next(iter(host.nodes.values())).control_address
    for method, path in (("POST", "/tx"), ("POST", "/block"), ("POST", "/peers"), ("DELETE", "/bans"),
                         ("DELETE", "/peers/127.0.0.1:1")):
        assert call(addr, method, path, {}, token=None)[0] == 401
        assert call(addr, method, path, {}, token="wrong")[0] == 401
    assert call(addr, "GET", "/status", token=None)[0] == 200


@pytest.mark.parametrize("path,body,raw", [
    ("/tx", None, b"{not json"),
    ("/tx", [1, 2], None),
    ("/tx", {}, None),
    ("/tx", {"raw": "zz"}, None),
    ("/tx", {"raw": "0100"}, None),
    ("/block", {"raw": "00" * 10}, None),
    ("/block", {"bogus": 1}, None),
    ("/peers", {"address": "not-an-ip:1"}, None),
    ("/peers", {}, None),
])
def test_bad_input_is_a_400_with_a_message(host, path, body, raw):
    addr = next(iter(host.nodes.values())).control_address
    status, answer = call(addr, "POST", path, body, raw=raw)
    assert status == 400 and answer["error"]


def test_a_peer_outside_the_allowlist_is_refused(host):
    node = next(iter(host.nodes.values()))
    status, answer = call(node.control_address, "POST", "/peers", {"address": "10.1.2.3:18444"})
    assert status == 403 and "allowlist" in answer["error"]
    assert node.stats.sandbox_refused == 1


def test_open_connection_refuses_and_counts_a_dial_outside_the_allowlist(lt, host):
    from harness_node.net.sandbox import SandboxError

    node = next(iter(host.nodes.values()))
    with pytest.raises(SandboxError, match="allowlist"):
        lt.run(node.open_connection("192.0.2.1", 18444, kind="outbound-full-relay"))
    assert node.stats.sandbox_refused == 1 and node.sandbox.refused == 1


def test_bans_are_listed_and_cleared(lt, host):
    node = next(iter(host.nodes.values()))
    lt.eval(lambda: node.ban("127.9.9.9", "test"))
    _, bans = call(node.control_address, "GET", "/bans")
    assert [(b["address"], b["reason"]) for b in bans] == [("127.9.9.9/32", "test")]  # Core lists bans as subnets
    assert call(node.control_address, "DELETE", "/bans")[0] == 200
    assert call(node.control_address, "GET", "/bans")[1] == []


def test_a_ban_can_be_set_by_hand_like_setban(lt, host):
    node = next(iter(host.nodes.values()))
    status, _ = call(node.control_address, "POST", "/bans", {"address": "127.8.0.0/16", "duration": 60})
    assert status == 200 and lt.eval(lambda: node.is_banned("127.8.3.4"))
    assert call(node.control_address, "POST", "/bans", {"address": "not-an-ip"})[0] == 400
    assert call(node.control_address, "POST", "/bans", {"address": "127.1.1.1", "duration": -1})[0] == 400
    assert call(node.control_address, "POST", "/bans", {"address": "127.1.1.1"}, token=None)[0] == 401


def test_addrman_networks_says_how_many_slots_per_table_hold_the_given_hosts(lt, host):
    node = next(iter(host.nodes.values()))
    addrs = [NetAddr(ip, 18444, 1, int(time.time())) for ip in ("127.77.1.1", "127.77.1.2", "127.77.2.1")]
    assert lt.eval(lambda: node.connman.addrman.add(addrs, "127.77.0.1")) == 3
    status, counts = call(node.control_address, "GET", "/addrman?networks=127.77.1.1/32,127.77.1.2/32,127.9.9.9/32")
    assert status == 200 and counts["new"] == {"slots": 3, "matching": 2} and counts["tried"] == {"slots": 0, "matching": 0}
    assert call(node.control_address, "GET", "/addrman?networks=127.77.1.x")[0] == 400


def test_the_workers_loop_lag_is_exported_once_by_its_first_node(lt, host):
    first, second = sorted(host.nodes)
    lt.wait(lambda: host.loop_lag.count >= 2, what="two lag probes")
    lag = [line for line in call(host.nodes[first].control_address, "GET", "/metrics")[1].splitlines()
           if line.startswith("harness_node_event_loop_lag_seconds_count")]
    assert len(lag) == 1 and f'worker="{first}"' in lag[0] and float(lag[0].split()[-1]) >= 2
    assert "event_loop_lag" not in call(host.nodes[second].control_address, "GET", "/metrics")[1]


def test_metrics_are_prometheus_text_with_the_node_prefix(lt, host):
    node = next(iter(host.nodes.values()))
    peer = TestPeer(node)
    try:
        peer.handshake()
        peer.send_raw(b"\0" * 24)  # wrong magic
        peer.wait_closed()
    finally:
        peer.close()
    status, text = call(node.control_address, "GET", "/metrics")
    assert status == 200
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    n = node.name
    assert samples[("harness_node_messages_total", (("command", "version"), ("direction", "in"), ("node", n)))] == 1
    assert samples[("harness_node_protocol_errors_total", (("kind", "bad-magic"), ("node", n)))] == 1
    assert ("harness_node_tx_propagation_delay_seconds_bucket", (("le", "+Inf"), ("node", n))) in samples
    assert samples[("harness_node_peers", (("direction", "inbound"), ("node", n)))] == 0


# --- configuration and the console script ---------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("port", 70000), ("magic", "xyz"), ("relay_policy", "gossip"), ("connect", ["nowhere"]),
    ("allowlist", ["not-a-net"]), ("misbehaviour_policy", "shame"), ("timers", {"no_such_timer": 1}),
    ("time_scale", 0), ("link", {"loss": 1.5}), ("bind", "localhost"),
])
def test_a_bad_config_value_is_refused_naming_its_field(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0] if field != "link" else "link.loss"):
        NodeConfig.from_dict({field: value})


def test_config_round_trips_through_a_dict_and_refuses_unknown_fields():
    cfg = NodeConfig(name="x", connect=["127.0.0.2:18444"], link={"delay_ms": 5, "jitter_ms": 1}, extra={"k": 1})
    assert NodeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="node config: unknown field.*nmae"):
        NodeConfig.from_dict({"nmae": "typo"})


@pytest.mark.slow
def test_harness_node_host_serves_nodes_and_exits_cleanly_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    ips = [next_ip(), next_ip()]
    cfg = {"defaults": {"port": 18444, "control_port": 18445},
           "nodes": [{"name": "h0", "bind": ips[0]}, {"name": "h1", "bind": ips[1], "connect": [f"{ips[0]}:18444"]}]}
    path = tmp_path / "host.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "harness_node.cli", "host", "--config", str(path)],
                            stderr=subprocess.PIPE)
    try:
        def connected() -> bool:
            try:
                return call((ips[1], 18445), "GET", "/status")[1]["peers"][0]["handshake_done"]
            except (OSError, IndexError, KeyError):
                return False
        from conftest import wait_until
        wait_until(connected, timeout=20, what="h1 connected to h0 in the host process")
        assert call((ips[0], 18445), "GET", "/status")[1]["id"] == "h0"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_restart_starts_the_node_again_in_place_keeping_or_wiping_its_data(lt, tmp_path):
    """POST /restart (what the k8s backend uses: a packed pod cannot restart for one node)."""
    configs = [NodeConfig(name=f"r{i}", bind=next_ip(), port=0, control_port=0, control_token=TOKEN,
                          datadir=str(tmp_path / f"r{i}")) for i in range(2)]
    h = Host(configs)
    lt.run(h.start())
    try:
        old, other = h.nodes["r0"], h.nodes["r1"]
        addr = old.control_address
        assert call(addr, "POST", "/restart", {"wipe_datadir": "yes"})[0] == 400
        assert call(addr, "POST", "/restart", {}, token=None)[0] == 401
        status, body = call(addr, "POST", "/restart", {})
        assert status == 202 and body == {"status": "restarting", "wipe_datadir": False}
        lt.wait(lambda: h.nodes["r0"] is not old and h.nodes["r0"].running, timeout=10, what="a fresh r0")
        assert not old.running and h.nodes["r1"] is other and other.running  # the host's other node untouched
        assert call(addr, "GET", "/status")[1]["id"] == "r0"  # same control site
        saved = sorted(p.name for p in (tmp_path / "r0").iterdir())
        assert saved  # its tables were saved on stop and kept
        fresh = h.nodes["r0"]
        (tmp_path / "r0" / "marker").write_text("from before")
        assert call(addr, "POST", "/restart", {"wipe_datadir": True})[0] == 202
        lt.wait(lambda: h.nodes["r0"] is not fresh and h.nodes["r0"].running, timeout=10, what="a wiped r0")
        assert not (tmp_path / "r0" / "marker").exists()
    finally:
        lt.run(h.stop())


def test_a_host_answer_lets_the_loop_turn_between_slices_of_nodes(lt, monkeypatch):
    """GET /host/... answers for every node of the process (800 at 10,000 nodes): each time building
    it has taken HOST_SLICE_SECONDS the loop turns, so the nodes' own messages are not held for the
    whole answer. Here a slice of no time (a turn between any two nodes), and a task that counts the
    loop's turns while the answer is built."""
    import asyncio

    from harness_node.api import control

    monkeypatch.setattr(control, "HOST_SLICE_SECONDS", 0.0)
    h = Host(NodeConfig(name=f"s{i}", bind=next_ip(), port=0, control_port=0, seed=i + 1) for i in range(3))
    lt.run(h.start())
    turns, seen = [0], []
    try:
        for nd in h.nodes.values():
            nd.status = lambda peer_list=True, real=nd.status: (seen.append(turns[0]), real(peer_list))[1]

        async def count_turns() -> None:
            while True:
                await asyncio.sleep(0)  # one turn of the loop, counted
                turns[0] += 1

        task = lt.eval(lambda: asyncio.get_running_loop().create_task(count_turns()))
        status, body = call(next(iter(h.nodes.values())).control_address, "GET", "/host/status?peers=list")
        lt.eval(task.cancel)
    finally:
        lt.run(h.stop())
    assert status == 200 and sorted(body["nodes"]) == sorted(h.nodes)
    assert all("peers" in s for s in body["nodes"].values())
    assert len(seen) == 3 and seen[0] < seen[1] < seen[2], seen  # all equal if built in one piece
