"""Inventory relay: inv/getdata/tx, notfound, Core's serve-after-announce rule, blocks, diffusion."""

from __future__ import annotations

import statistics
import time

import pytest

from harness_node.wire.messages import (
    MSG_BLOCK,
    MSG_TX,
    CInv,
    msg_block,
    msg_getdata,
    msg_getheaders,
    msg_headers,
    msg_inv,
    msg_tx,
)
from harness_node.wire.primitives import Block, BlockHeader, Tx
from harness_node.wire.synthetic import make_block, make_tx, origin_of

from conftest import peer_from


def test_a_new_tx_is_announced_served_by_getdata_and_unknown_ones_get_notfound(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    tx = lt.eval(node.inject_tx)
    inv = peer.expect("inv")
    assert [(i.type, i.hash) for i in inv.inv] == [(MSG_TX, tx.txid)]
    unknown = CInv(MSG_TX, b"\x42" * 32)
    peer.send(msg_getdata([CInv(MSG_TX, tx.txid), unknown]))
    assert peer.expect("tx").tx.raw == tx.raw
    assert peer.expect("notfound").inv == [unknown]


def test_a_tx_is_served_only_to_peers_it_was_announced_to(lt, make_node, test_peers):
    node = make_node()
    tx = lt.eval(node.inject_tx)  # announced to nobody: no peers yet
    late = test_peers(node)
    late.handshake()
    late.send(msg_getdata([CInv(MSG_TX, tx.txid)]))
    assert late.expect("notfound").inv == [CInv(MSG_TX, tx.txid)]


def test_an_announced_tx_is_fetched_stored_with_its_origin_and_relayed(lt, make_node, test_peers):
    node = make_node()
    sender, watcher = test_peers(node), test_peers(node)
    sender.handshake()
    watcher.handshake(wtxidrelay=True)
    tx = make_tx()
    sender.send(msg_inv([CInv(MSG_TX, tx.txid)]))
    getdata = sender.expect("getdata")
    assert getdata.inv == [CInv(MSG_TX, tx.txid)]
    sender.send(msg_tx(tx))
    announced = watcher.expect("inv")
    assert announced.inv[0].type == 5 and announced.inv[0].hash == tx.wtxid  # MSG_WTX to a wtxidrelay peer
    rec = lt.eval(lambda: node.mempool.record(tx.txid))
    assert rec.from_peer.startswith(sender.ip + ":")
    assert (rec.harness_id, rec.origin_ns) == origin_of(tx)
    assert 0 <= rec.delay_s < 5
    assert node.stats.tx_delay.count == 1
    assert peer_from(lt, node, sender.ip).last_tx_time > 0
    sender.ping_roundtrip()
    assert not any(n == "inv" for n, _ in sender.inbox)  # never announced back to its sender


def test_a_tx_with_no_outputs_is_scored_10(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    raw = bytes.fromhex("02000000" "01" + "11" * 32 + "00000000" "00" "ffffffff" "00" "00000000")
    peer.send(msg_tx(Tx.from_bytes(raw)))
    peer.ping_roundtrip()
    assert peer_from(lt, node, peer.ip).score == 10


@pytest.mark.slow
def test_blocks_propagate_along_a_line_and_link_to_one_tip(lt, make_node):
    a = make_node()
    b = make_node(connect=[f"{a.config.bind}:{a.port}"])
    c = make_node(connect=[f"{b.config.bind}:{b.port}"])
    lt.wait(lambda: sum(p.ready for n in (a, b, c) for p in n.peers.values()) == 4, what="line connected")
    tx = lt.eval(c.inject_tx)
    lt.wait(lambda: tx.txid in a.mempool, what="tx at a")
    blocks = [lt.eval(a.mine_block) for _ in range(3)]
    lt.wait(lambda: c.chain.height == 3, what="c at height 3")
    assert lt.eval(lambda: c.chain.main[1:]) == [blk.hash for blk in blocks]
    assert tx.txid in [t.txid for t in blocks[0].txs]
    lt.wait(lambda: len(c.mempool) == 0, what="mined tx left c's mempool")
    assert c.stats.block_delay.count == 3


def test_an_orphan_block_waits_for_its_parent(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    genesis = node.chain.genesis
    b1 = make_block(genesis.hash, 1, genesis.header.time)
    b2 = make_block(b1.hash, 2, b1.header.time)
    peer.send(msg_block(b2))
    peer.expect("getheaders")  # the node asks for the gap
    assert lt.eval(lambda: (node.chain.height, node.chain.orphan_count)) == (0, 1)
    peer.send(msg_block(b1))
    peer.ping_roundtrip()
    assert lt.eval(lambda: (node.chain.height, node.chain.tip.hash)) == (2, b2.hash)


def test_getheaders_is_answered_from_the_locator_and_headers_announcements_fetch_blocks(lt, make_node, test_peers):
    node = make_node()
    mined = [lt.eval(node.mine_block) for _ in range(3)]
    peer = test_peers(node)
    peer.handshake()
    peer.send(msg_getheaders(locator=[mined[0].hash]))
    assert [h.hash for h in peer.expect("headers").headers] == [b.hash for b in mined[1:]]
    nxt = make_block(mined[-1].hash, 4, mined[-1].header.time)
    peer.send(msg_headers([nxt.header]))
    assert peer.expect("getdata").inv == [CInv(MSG_BLOCK, nxt.hash)]
    peer.send(msg_block(nxt))
    peer.ping_roundtrip()
    assert node.chain.height == 4


def test_a_bad_pow_block_is_scored_50(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    g = node.chain.genesis
    good = make_block(g.hash, 1, g.header.time)
    h = good.header
    bad = Block(BlockHeader(h.version, h.prev, h.merkle_root, h.time, 0x03000001, h.nonce), good.txs)  # target 1
    peer.send(msg_block(bad))
    peer.ping_roundtrip()
    assert peer_from(lt, node, peer.ip).score == 50
    assert node.chain.height == 0


def test_diffusion_delays_inbound_announcements_by_the_shared_poisson_timer(lt, make_node, test_peers):
    mean = 0.05
    node = make_node(relay_policy="diffusion", timers={"inbound_inv_mean": mean})
    peer = test_peers(node)
    peer.handshake()
    delays = []
    for _ in range(40):
        t0 = time.monotonic()
        tx = lt.eval(node.inject_tx)
        peer.expect("inv", where=lambda m: m.inv[0].hash == tx.txid)
        delays.append(time.monotonic() - t0)
    # exponential with mean 50 ms: the sample mean of 40 has a 16 % standard error
    assert 0.4 * mean < statistics.mean(delays) < 2.0 * mean, delays


def test_link_emulation_delays_outgoing_messages_in_order(lt, make_node, test_peers):
    node = make_node(link={"delay_ms": 40, "jitter_ms": 30, "distribution": "uniform"})
    peer = test_peers(node)
    peer.handshake()
    t0 = time.monotonic()
    peer.ping_roundtrip()
    assert time.monotonic() - t0 >= 0.01  # every outgoing message waits delay +- jitter (>= 10 ms)
    txs = [lt.eval(node.inject_tx) for _ in range(20)]
    got = [peer.expect("inv").inv[0].hash for _ in txs]
    assert got == [t.txid for t in txs]  # jittered delays never reorder one link


def test_link_loss_drops_the_configured_fraction():
    import asyncio
    import random as _random

    from harness_node.config import LinkModel
    from harness_node.net.linkem import FixedLink, LinkEmulator

    loop = asyncio.new_event_loop()
    try:
        em = LinkEmulator(FixedLink(LinkModel(loss=0.3)), _random.Random(1), loop)
        sent: list[bytes] = []
        for i in range(2000):
            em.send(bytes([i % 256]), sent.append)
        assert 0.25 < em.dropped / 2000 < 0.35 and len(sent) == 2000 - em.dropped
    finally:
        loop.close()
