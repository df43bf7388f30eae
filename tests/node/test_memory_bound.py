"""Memory bounded by bytes (issue 9 item 2), over real sockets.

The per-peer caps and byte budgets are checked on an in-process node; the RSS bound on a separate
node process (its own /proc/<pid>/status), flooded by 50 peers with maximum-size standard
transactions and fork blocks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness_node.chain.chain import MB
from harness_node.net.client import ClientPeer
from harness_node.relay.relay import MAX_PEER_TX_ANNOUNCEMENTS, MAX_PEER_TX_REQUEST_IN_FLIGHT, NO_HASHES
from harness_node.wire.messages import MSG_TX, CInv, msg_block, msg_inv, msg_tx
from harness_node.wire.synthetic import make_block, make_tx

from conftest import REGTEST_MAGIC, next_ip, peer_from, wait_until

MAX_STANDARD_SIZE = 99_000  # a non-witness tx of 99 kB weighs 396,000 <= 400,000: standard


def _asked_of_the_first(make_node, test_peers):
    """A node with two peers; the first announced a tx hash and was asked for it."""
    node = make_node()
    first, second = test_peers(node), test_peers(node)
    first.handshake()
    second.handshake()
    h = os.urandom(32)
    first.send(msg_inv([CInv(MSG_TX, h)]))
    first.expect("getdata")
    return node, first, second, h


def test_one_inv_repeating_a_hash_adds_one_announcer(lt, make_node, test_peers):
    node, first, second, h = _asked_of_the_first(make_node, test_peers)
    second.send(msg_inv([CInv(MSG_TX, h)] * 50_000))
    second.ping_roundtrip()
    second_id = peer_from(lt, node, second.ip).id
    assert lt.eval(lambda: list(node.relay.announcers[h])) == [second_id]
    # each announcement counted once against its peer's cap, the asked one's repeat included
    first.send(msg_inv([CInv(MSG_TX, h)] * 3))
    first.ping_roundtrip()
    counts = lt.eval(lambda: {p.ip: node.relay.state(p).announcements for p in node.peers.values()})
    assert counts == {first.ip: 1, second.ip: 1}


def test_an_expired_request_frees_its_peer_when_another_announcer_is_asked(lt, make_node, test_peers):
    """A request that timed out before tick() retried it: the next announcer is asked at once, and
    the peer that never answered holds neither the request slot nor the announcement any more."""
    node, slow, quick, h = _asked_of_the_first(make_node, test_peers)
    ours_slow, ours_quick = peer_from(lt, node, slow.ip), peer_from(lt, node, quick.ip)
    lt.eval(lambda: node.relay.in_flight.__setitem__(h, (ours_slow, 0.0)))  # its deadline has passed
    quick.send(msg_inv([CInv(MSG_TX, h)]))
    assert quick.expect("getdata").inv == [CInv(MSG_TX, h)]
    assert lt.eval(lambda: node.relay.in_flight[h][0]) is ours_quick
    st_slow, st_quick = lt.eval(lambda: (node.relay.state(ours_slow), node.relay.state(ours_quick)))
    assert lt.eval(lambda: (st_slow.announcements, st_slow.requested)) == (0, NO_HASHES)
    assert lt.eval(lambda: (st_quick.announcements, set(st_quick.requested))) == (1, {h})


def test_a_peer_gets_at_most_100_requests_in_flight_and_5000_announcements_tracked(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    hashes = [os.urandom(32) for _ in range(MAX_PEER_TX_ANNOUNCEMENTS + 1000)]
    peer.send(msg_inv([CInv(MSG_TX, h) for h in hashes]))
    asked = peer.expect("getdata")
    peer.ping_roundtrip()
    assert len(asked.inv) == MAX_PEER_TX_REQUEST_IN_FLIGHT
    assert not any(name == "getdata" for name, _ in peer.inbox)
    ours = peer_from(lt, node, peer.ip)
    st = lt.eval(lambda: node.relay.state(ours))
    assert lt.eval(lambda: (st.announcements, len(st.requested))) == (MAX_PEER_TX_ANNOUNCEMENTS,
                                                                      MAX_PEER_TX_REQUEST_IN_FLIGHT)
    # what the count stands for: the hashes asked of it and those it waits for in announcers
    assert lt.eval(lambda: sum(ours.id in w for w in node.relay.announcers.values())) == \
        MAX_PEER_TX_ANNOUNCEMENTS - MAX_PEER_TX_REQUEST_IN_FLIGHT
    # answering a request frees a slot: the next waiting announcement is asked for
    lt.eval(lambda: node.relay._forget(asked.inv[0].hash))  # as if its tx had arrived
    nxt = peer.expect("getdata", timeout=5)
    assert len(nxt.inv) == 1 and nxt.inv[0].hash in set(hashes[MAX_PEER_TX_REQUEST_IN_FLIGHT:MAX_PEER_TX_ANNOUNCEMENTS])


def test_a_delivered_tx_leaves_no_tracking_set_behind(lt, make_node, test_peers):
    # between bursts a peer holds the shared empty set, not a 216-byte empty set of its own
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    tx = make_tx()
    peer.send(msg_inv([CInv(MSG_TX, tx.txid)]))
    peer.expect("getdata")
    ours = peer_from(lt, node, peer.ip)
    st = lt.eval(lambda: node.relay.state(ours))
    assert lt.eval(lambda: (st.announcements, set(st.requested))) == (1, {tx.txid})
    peer.send(msg_tx(tx))
    peer.ping_roundtrip()
    assert lt.eval(lambda: tx.txid in node.mempool)
    assert lt.eval(lambda: (st.announcements, st.requested)) == (0, NO_HASHES)
    assert lt.eval(lambda: st.requested is NO_HASHES)


def test_the_mempool_is_bounded_in_megabytes(lt, make_node, test_peers):
    node = make_node(max_mempool_mb=1)
    peer = test_peers(node)
    peer.handshake()
    for _ in range(15):
        peer.send(msg_tx(make_tx(size=MAX_STANDARD_SIZE)))
    peer.ping_roundtrip()
    assert lt.eval(lambda: node.stats.txs_received) == 15
    assert lt.eval(lambda: node.mempool.bytes) <= 1 * MB
    assert lt.eval(lambda: len(node.mempool)) == 1 * MB // MAX_STANDARD_SIZE


def test_fork_blocks_are_stored_within_a_budget_and_never_announced(lt, make_node, test_peers):
    node = make_node(max_stale_blocks_mb=1)
    lt.eval(node.mine_block)  # tip at height 1: siblings of it are off the best chain
    attacker, watcher = test_peers(node), test_peers(node)
    attacker.handshake()
    watcher.handshake()
    genesis = lt.eval(lambda: node.chain.main[0])
    forks = [make_block(genesis, 1, txs=[make_tx(size=MAX_STANDARD_SIZE) for _ in range(2)]) for _ in range(12)]
    for b in forks:
        attacker.send(msg_block(b))
    attacker.ping_roundtrip()
    assert lt.eval(lambda: node.chain.stale_bytes) <= 1 * MB
    stored = lt.eval(lambda: sum(node.chain.has(b.hash) for b in forks))
    assert 0 < stored < len(forks)
    assert lt.eval(lambda: node.stats.protocol_errors["block-not-stored"]) == len(forks) - stored
    watcher.ping_roundtrip()
    assert not any(name in ("inv", "headers") for name, _ in watcher.inbox), "a side-branch block was announced"


def test_orphan_blocks_are_bounded_in_megabytes(lt, make_node, test_peers):
    node = make_node(max_orphan_blocks_mb=1)
    peer = test_peers(node)
    peer.handshake()
    for _ in range(12):
        peer.send(msg_block(make_block(os.urandom(32), 5, txs=[make_tx(size=MAX_STANDARD_SIZE)])))
    peer.ping_roundtrip()
    assert 0 < lt.eval(lambda: node.chain.orphan_bytes) <= 1 * MB


# --- RSS of a separate node process ---------------------------------------------------------------

PEERS = 50
TXS_PER_PEER = 20
FORKS_PER_PEER = 4
MEMPOOL_MB, ORPHAN_MB, STALE_MB = 20, 8, 8
# Stated bound: an idle node process is ~40 MB; the budgets above add 36 MB of payload (Python keeps
# each tx's bytes once more in its outputs and frames pass through buffers), plus 50 connections'
# read buffers. Without the byte bounds the same load stores ~100 MB of transactions and ~80 MB of
# forks, well above it.
RSS_BOUND_MB = 150


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


GENESIS = bytes.fromhex("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")[::-1]  # regtest


async def _flood(host: str, port: int) -> None:
    async def one() -> None:
        peer = ClientPeer(REGTEST_MAGIC)
        await peer.connect(host, port, 10, local_ip=next_ip())
        await peer.handshake(10)
        for _ in range(TXS_PER_PEER):
            peer.send(msg_tx(make_tx(size=MAX_STANDARD_SIZE)))
            await peer.drain()
        for k in range(FORKS_PER_PEER):
            # a fork off genesis (stale once the node's tip is higher) and a parentless one
            prev = GENESIS if k % 2 == 0 else os.urandom(32)
            peer.send(msg_block(make_block(prev, 1, txs=[make_tx(size=MAX_STANDARD_SIZE) for _ in range(4)])))
            await peer.drain()
        await peer.sync_with_ping(60)
        await peer.close()

    await asyncio.gather(*(one() for _ in range(PEERS)))


@pytest.mark.slow
def test_fifty_peers_flooding_max_size_txs_and_forks_leave_the_node_under_the_rss_bound(tmp_path):
    ip = next_ip()
    with socket.socket() as s:  # a free port for the victim (it does not report the one it took)
        s.bind((ip, 0))
        port = s.getsockname()[1]
    config = {"name": "victim", "bind": ip, "port": port, "max_mempool_mb": MEMPOOL_MB,
              "max_orphan_blocks_mb": ORPHAN_MB, "max_stale_blocks_mb": STALE_MB,
              "peering": {"max_connections": PEERS + 20}}
    path = tmp_path / "victim.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "harness_node.cli", "run", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex((ip, port)) == 0
        wait_until(listening, timeout=30, what="the victim node to listen")
        # mine one block first so that forks off genesis are off its best chain
        asyncio.run(_mine_one(ip, port))
        idle = rss_mb(proc.pid, "VmRSS")
        asyncio.run(_flood(ip, port))
        peak = rss_mb(proc.pid)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        print(f"victim RSS: idle {idle:.0f} MB, peak under load {peak:.0f} MB (bound {RSS_BOUND_MB} MB)")
        assert peak < RSS_BOUND_MB
    finally:
        proc.terminate()
        proc.wait(15)


async def _mine_one(ip: str, port: int) -> None:
    peer = ClientPeer(REGTEST_MAGIC)
    await peer.connect(ip, port, 10, local_ip=next_ip())
    await peer.handshake(10)
    b1 = make_block(GENESIS, 1)
    peer.send(msg_block(b1))
    peer.send(msg_block(make_block(b1.hash, 2, b1.header.time)))
    await peer.sync_with_ping(10)
    await peer.close()
