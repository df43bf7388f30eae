"""What a bitcoind member did to its peers (harness_node/bitcoind/conduct.py), from RPC answers and
debug-log lines in the shapes Bitcoin SV 1.0.13 gives them (copied from a real run's getpeerinfo,
listbanned and bitcoind.log). The real binary behind them is exercised end to end by
tests/harness/test_mixed_bitcoind_run.py; here the bookkeeping is checked case by case."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from harness_node.bitcoind.conduct import Conduct, ConductCollector, LogTail

MEMPOOL = {"size": 3, "bytes": 675, "usage": 4000}
SPAM = "127.100.0.2"


def peer(pid: int, addr: str, banscore: int = 0, inbound: bool = True) -> dict:
    return {"id": pid, "addr": addr, "inbound": inbound, "banscore": banscore}


def line(pid: int, before: int, after: int, reason: str = "missing-version", addr: str = f"{SPAM}:59559") -> str:
    return (f"2026-12-03 08:05:55 [msghand] Misbehaving: {addr} peer={pid} ({before} -> {after}) reason: {reason}"
            + (" BAN THRESHOLD EXCEEDED" if after >= 100 else ""))


def test_log_lines_give_exact_scores_and_a_scored_peer_that_leaves_unbanned_is_a_disconnect():
    c = Conduct()
    honest = peer(1, "127.2.0.1:18444", inbound=False)
    c.update([honest, peer(9, f"{SPAM}:59559", 3)], [], MEMPOOL, 101, [line(9, 0, 1), line(9, 1, 2), line(9, 2, 3)], now=1.0)
    # a burst the polls never see in banscore: 97 more, then bitcoind drops the peer ("not banning local peer")
    c.update([honest], [], MEMPOOL, 101, [line(9, i, i + 1) for i in range(3, 100)], now=2.0)
    assert all(e["action"] == "none" for e in c.log)  # judged one poll later, once its log lines are read
    c.update([honest], [], MEMPOOL, 101, ["2026-12-03 08:05:55 [net] disconnecting peer=9"], now=3.0)
    scored = [e for e in c.log if e["action"] == "none"]
    assert len(scored) == 100 and sum(e["points"] for e in scored) == 100 and scored[-1]["score"] == 100
    assert {e["address"] for e in c.log} == {SPAM} and {e["reason"] for e in scored} == {"missing-version"}
    (left,) = [e for e in c.log if e["action"] != "none"]
    assert (left["action"], left["score"], left["time"]) == ("disconnect", 100, 2.0)


def test_a_peer_in_listbanned_when_it_leaves_is_a_ban_and_counts_in_the_metrics():
    c = Conduct()
    c.update([peer(4, f"{SPAM}:1000", inbound=True)], [], MEMPOOL, 5, [line(4, 0, 100, "oversized-inv")], now=1.0)
    ban = [{"address": f"{SPAM}/32", "banned_until": 9, "ban_created": 1, "ban_reason": "node misbehaving"}]
    c.update([], ban, MEMPOOL, 6, [], now=2.0)
    c.update([], ban, MEMPOOL, 6, [], now=3.0)
    assert [e["action"] for e in c.log] == ["none", "ban"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConductCollector("bitcoind-0", c))
    text = generate_latest(registry).decode()
    for sample in ('harness_bitcoind_banned_addresses{node="bitcoind-0"} 1.0',
                   'harness_bitcoind_misbehaving_peers_left_total{action="ban",node="bitcoind-0"} 1.0',
                   'harness_bitcoind_chain_height{node="bitcoind-0"} 6.0',
                   'harness_bitcoind_mempool_bytes{node="bitcoind-0"} 675.0',
                   'harness_bitcoind_peers{direction="inbound",node="bitcoind-0"} 0.0'):
        assert sample in text, sample


def test_without_log_lines_banscore_rises_are_the_scores_and_unscored_peers_leave_silently():
    c = Conduct()
    c.update([peer(1, "127.2.0.1:18444", 0), peer(2, f"{SPAM}:7", 20)], [], MEMPOOL, 1, now=1.0)
    c.update([peer(1, "127.2.0.1:18444", 0), peer(2, f"{SPAM}:7", 60)], [], MEMPOOL, 1, now=2.0)
    assert [(e["points"], e["score"]) for e in c.log] == [(20, 20), (40, 60)] and c.max_score() == 60
    c.update([], [], MEMPOOL, 1, now=3.0)  # both leave: only the scored one is an entry
    c.update([], [], MEMPOOL, 1, now=4.0)
    assert [e["action"] for e in c.log][-1] == "disconnect" and len(c.log) == 3


def test_a_scored_peer_that_closed_the_socket_itself_is_no_action_of_bitcoind():
    # the oversized-inv spammer of a real run: charged twice before verack, it closed after its observe window
    c = Conduct()
    c.update([peer(8, "127.100.0.1:52063", 2)], [], MEMPOOL, 37, [line(8, 0, 1, "missing-verack", "127.100.0.1:52063"),
             line(8, 1, 2, "missing-verack", "127.100.0.1:52063")], now=1.0)
    c.update([], [], MEMPOOL, 37, [], now=2.0)  # gone; the log line comes with the next read
    c.update([], [], MEMPOOL, 37, ["2026-12-03 08:05:58 [net] stream socket gracefully closed by peer=8",
                                   "2026-12-03 08:05:58 [net] disconnecting peer=8"], now=3.0)
    assert [e["action"] for e in c.log] == ["none", "none"] and c.left["closed-by-peer"] == 1


def test_log_tail_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "bitcoind.log"
    tail = LogTail(path)
    assert tail.lines() == []  # not created yet
    path.write_bytes(b"one\ntw")
    assert tail.lines() == ["one"]
    with path.open("ab") as f:
        f.write(b"o\nthree\n")
    assert tail.lines() == ["two", "three"] and tail.lines() == []
