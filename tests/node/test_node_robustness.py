"""The node's periodic task and state files under failure (issue 9 item 8): an exception in one
round of housekeeping, a corrupt banlist.json, a ban storm."""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.peering.connman import BANLIST_FLUSH_DELAY, BANLIST_FILE
from harness_node.wire.messages import msg_pong

from conftest import next_ip

FAST = {"ping_interval": 0.3, "ping_timeout": 5.0}


def test_one_failing_housekeeping_round_is_counted_and_the_task_goes_on(lt, make_node, test_peers):
    node = make_node(timers=FAST)
    calls = {"n": 0}
    real_tick = node.relay.tick

    def failing_once(now: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure")
        real_tick(now)

    lt.eval(lambda: setattr(node.relay, "tick", failing_once))
    lt.wait(lambda: node.stats.housekeeping_errors == 1, what="the failure to be counted")
    peer = test_peers(node)
    peer.handshake()
    # the task survived: it keeps pinging the peer (ping_interval 0.3 s; the first ping comes with
    # the handshake, the next ones from the periodic task once the previous one is answered)
    for _ in range(3):
        peer.send(msg_pong(peer.expect("ping", timeout=3.0).nonce))
    assert calls["n"] > 2
    assert lt.eval(lambda: node.stats.housekeeping_errors) == 1


def test_a_corrupt_ban_list_is_set_aside_and_the_node_starts(lt, make_node, test_peers, tmp_path):
    (tmp_path / BANLIST_FILE).write_text("{not json")
    node = make_node(datadir=str(tmp_path))
    assert (tmp_path / "banlist.corrupt").read_text() == "{not json"
    assert lt.eval(node.list_bans) == []
    test_peers(node).handshake()  # it serves peers
    lt.eval(lambda: node.ban("127.3.3.3", "manual"))
    lt.wait(lambda: (tmp_path / BANLIST_FILE).exists(), timeout=BANLIST_FLUSH_DELAY + 5, what="a new ban list")


def test_a_storm_of_a_thousand_bans_writes_the_list_a_few_times_and_keeps_them_all(lt, make_node, tmp_path):
    node = make_node(datadir=str(tmp_path))
    banman = node.connman.banman
    ips = [f"10.{i // 250}.{i % 250}.1" for i in range(1000)]
    started = time.monotonic()

    def storm() -> None:
        for ip in ips:
            node.ban(ip, "storm")

    lt.eval(storm)
    loop_time = time.monotonic() - started
    lt.wait(lambda: not node.connman._bans_dirty and node.connman._ban_flush is None,
            timeout=BANLIST_FLUSH_DELAY * 3 + 10, what="the batched write")
    assert lt.eval(lambda: banman.writes) <= 2, "a ban storm must not rewrite the list per ban"
    on_disk = json.loads((tmp_path / BANLIST_FILE).read_text())
    assert {b["address"] for b in on_disk["banned"]} == {f"{ip}/32" for ip in ips}
    assert loop_time < 30  # sanity only: the loop was never blocked on 1,000 fsyncs of a growing file


def test_bans_made_just_before_stop_are_on_disk(lt, make_node, tmp_path):
    node = make_node(datadir=str(tmp_path))
    lt.eval(lambda: node.ban("10.9.9.9", "late"))
    lt.run(node.stop())
    on_disk = json.loads((tmp_path / BANLIST_FILE).read_text())
    assert [b["address"] for b in on_disk["banned"]] == ["10.9.9.9/32"]


def test_a_failing_stop_still_frees_the_address_and_a_host_reports_it(lt, test_peers):
    """A node whose shutdown fails half-way (here: saving its tables) must not keep its listener or
    its links: a later run on the same loopback address would be refused as "in use". Its host stops
    every other node and then raises the failure instead of swallowing it."""
    host = Host([NodeConfig(name="a", bind=next_ip(), port=0), NodeConfig(name="b", bind=next_ip(), port=0)])
    lt.run(host.start())
    a, b = host.nodes["a"], host.nodes["b"]
    peer = test_peers(a)
    peer.handshake()

    async def broken() -> None:
        raise RuntimeError("disk full")

    a.connman.stop = broken
    with pytest.raises(RuntimeError, match="disk full"):
        lt.run(host.stop())
    assert not b.running and lt.eval(lambda: not a.peers)
    peer.wait_closed(5)
    for node in (a, b):  # both listeners are gone: the addresses bind again (past TIME_WAIT, as a listener does)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((node.config.bind, node.port))
