"""Peers that stop reading (issue 9 item 1): such a peer must not keep its slot, its socket or the
megabytes queued for it. Real sockets on loopback; the stalled peer offers a tiny TCP window and
never reads."""

from __future__ import annotations

from pathlib import Path

from harness_node.net.connection import CLOSE_GRACE, MAX_SEND_BUFFER
from harness_node.peering.peerconfig import PeerConfig
from harness_node.wire.messages import MSG_BLOCK, CInv, msg_getdata
from harness_node.wire.synthetic import make_block, make_tx

from tests.node.conftest import disconnect_reasons

TINY_RCVBUF = 4096
BLOCK_TX_SIZE = 99_000


def one_inbound_slot() -> PeerConfig:
    # 8 + 2 + 1 outbound slots, so exactly one inbound slot
    return PeerConfig(max_connections=12, seeders=[], fixed_seeds=[])


def big_block(lt, node, txs: int = 36):
    tip = lt.eval(lambda: node.chain.tip)
    block = make_block(tip.hash, 1, tip.header.time, [make_tx(size=BLOCK_TX_SIZE) for _ in range(txs)])
    lt.eval(lambda: node.submit_block(block))
    return block


def test_a_peer_that_stops_reading_and_asks_for_a_big_block_is_gone_and_its_slot_reused(lt, make_node, test_peers):
    node = make_node(peering=one_inbound_slot())
    block = big_block(lt, node)
    assert len(block.raw) > 3_500_000
    stalled = test_peers(node, rcvbuf=TINY_RCVBUF)
    stalled.handshake()
    conn = lt.eval(lambda: next(iter(node.peers.values())).conn)
    stalled.stop_reading()
    # six copies in one getdata (the node stops reading a peer whose send buffer is over 1 MB, so
    # later getdata messages would wait in its socket): 21 MB for a peer that reads nothing
    stalled.send(msg_getdata([CInv(MSG_BLOCK, block.hash)] * 6))
    for _ in range(3):
        stalled.send(msg_getdata([CInv(MSG_BLOCK, block.hash)]))
    lt.wait(lambda: not node.peers, timeout=5 + CLOSE_GRACE, what="the stalled peer to be dropped")
    assert "send-buffer-full" in disconnect_reasons(lt, node)
    # the node queued no more than its cap plus the message that crossed it (beyond what the
    # kernel's send buffer took), and holds none of it now
    kernel_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    assert lt.eval(lambda: conn.bytes_out) <= MAX_SEND_BUFFER + len(block.raw) + 24 + kernel_max
    assert lt.eval(lambda: conn.transport.get_write_buffer_size()) == 0
    newcomer = test_peers(node)
    newcomer.handshake()
    assert lt.eval(lambda: len(node.inbound_peers())) == 1


def test_a_closing_peer_holds_no_inbound_slot(lt, make_node, test_peers):
    """An evicted/banned/disconnected peer that does not read lingers at most CLOSE_GRACE, and while
    it lingers it is not counted: the next inbound peer is admitted."""
    node = make_node(peering=one_inbound_slot())
    block = big_block(lt, node, txs=12)  # ~1.2 MB: over the pause mark, under the hard cap
    stalled = test_peers(node, rcvbuf=TINY_RCVBUF)
    stalled.handshake()
    stalled.stop_reading()
    stalled.send(msg_getdata([CInv(MSG_BLOCK, block.hash)] * 3))
    peer = lt.wait(lambda: next((p for p in node.peers.values()
                                 if p.conn.transport.get_write_buffer_size() > 0), None),
                   what="data queued for the stalled peer")
    lt.eval(lambda: peer.disconnect("test: disconnect"))
    newcomer = test_peers(node)
    newcomer.handshake()  # admitted while the stalled peer may still be flushing
    lt.wait(lambda: peer.id not in node.peers, timeout=CLOSE_GRACE + 3, what="the stalled peer's socket to be aborted")
    assert "test: disconnect" in disconnect_reasons(lt, node)
