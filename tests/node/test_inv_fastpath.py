"""Flood relay's one-entry invs take a shortcut both ways (issue 17): read straight from their 37
bytes when received (Relay.on_one_inv), built once for every peer when sent (Relay.accept_tx).
Over real sockets, each decision is checked against what the same entry gets on the decoded path
(inside a longer inv) and against the wire format written out with struct here."""

from __future__ import annotations

import os
import struct

import pytest

from harness_node.wire.codec import HEADER_SIZE, ONE_ENTRY_SIZE
from harness_node.wire.messages import (
    MSG_BLOCK, MSG_TX, MSG_WITNESS_FLAG, MSG_WTX, CInv, msg_getdata, msg_inv, msg_verack,
)
from conftest import peer_from


def one_entry(inv_type: int, h: bytes) -> bytes:
    return b"\x01" + struct.pack("<I", inv_type) + h


@pytest.mark.parametrize("inv_type", [MSG_TX, MSG_WTX, MSG_TX | MSG_WITNESS_FLAG])
def test_a_one_entry_inv_is_asked_for_as_the_same_entry_inside_a_longer_one(lt, make_node, test_peers, inv_type):
    node = make_node()
    first, second = test_peers(node), test_peers(node)
    first.handshake(wtxidrelay=inv_type == MSG_WTX)
    second.handshake(wtxidrelay=inv_type == MSG_WTX)
    asked_type = MSG_WTX if inv_type == MSG_WTX else MSG_TX  # a witness-flagged MSG_TX is asked as MSG_TX
    short, long_a, long_b = (os.urandom(32) for _ in range(3))
    first.send_frame("inv", one_entry(inv_type, short))
    assert first.expect("getdata").inv == [CInv(asked_type, short)]
    first.send(msg_inv([CInv(inv_type, long_a), CInv(inv_type, long_b)]))
    assert first.expect("getdata").inv == [CInv(asked_type, long_a), CInv(asked_type, long_b)]
    ours = peer_from(lt, node, first.ip)
    st = lt.eval(lambda: node.relay.state(ours))
    assert lt.eval(lambda: ({short, long_a, long_b} <= st.known_inv, {short, long_a, long_b} <= st.requested))
    assert lt.eval(lambda: node.relay.in_flight[short][0]) is ours
    # the same hash from a second peer while the first is asked: it waits as an announcer
    second.send_frame("inv", one_entry(inv_type, short))
    second.ping_roundtrip()
    assert not any(name == "getdata" for name, _ in second.inbox)
    assert lt.eval(lambda: list(node.relay.announcers[short])) == [peer_from(lt, node, second.ip).id]


def test_a_one_entry_block_inv_asks_for_the_block_once(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    h = os.urandom(32)
    peer.send_frame("inv", one_entry(MSG_BLOCK, h))
    assert peer.expect("getdata").inv == [CInv(MSG_BLOCK, h)]
    peer.send_frame("inv", one_entry(MSG_BLOCK, h))  # announced again: not asked twice (Relay._ask_blocks)
    peer.ping_roundtrip()
    assert not any(name == "getdata" for name, _ in peer.inbox)  # (expect took the first one out)


def test_only_the_one_entry_shape_takes_the_shortcut(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    ours = peer_from(lt, node, peer.ip)
    h = os.urandom(32)
    shapes = {
        "one entry": one_entry(MSG_TX, h),
        "two entries": msg_inv([CInv(MSG_TX, h), CInv(MSG_TX, os.urandom(32))]).serialize(),
        "37 bytes that say 0 entries": b"\x00" + os.urandom(36),
        "one entry cut short": one_entry(MSG_TX, h)[:-1],
    }
    taken = {name: lt.eval(lambda p=payload: node.relay.on_one_inv(ours, p)) for name, payload in shapes.items()}
    assert taken == {"one entry": True, "two entries": False, "37 bytes that say 0 entries": False,
                     "one entry cut short": False}
    # a truncated one-entry inv still goes the decoded way: malformed, scored 0, the peer stays
    peer.send_frame("inv", shapes["one entry cut short"])
    peer.ping_roundtrip()
    assert lt.eval(lambda: node.stats.protocol_errors["malformed-message"]) == 1
    assert not peer.closed


def test_flood_announces_to_each_peer_in_its_own_relay_mode_and_serves_it(lt, make_node, test_peers):
    node = make_node()  # flood is the default policy
    by_wtxid, by_txid = test_peers(node), test_peers(node)
    by_wtxid.handshake(wtxidrelay=True)
    by_txid.handshake()
    tx = lt.eval(node.inject_tx)
    assert by_wtxid.expect("inv").inv == [CInv(MSG_WTX, tx.wtxid)]
    assert by_txid.expect("inv").inv == [CInv(MSG_TX, tx.txid)]
    # the announcement moved each peer's mempool sequence: the tx is served, not "notfound"
    by_wtxid.send(msg_getdata([CInv(MSG_WTX, tx.wtxid)]))
    by_txid.send(msg_getdata([CInv(MSG_TX, tx.txid)]))
    assert by_wtxid.expect("tx").tx.txid == tx.txid
    assert by_txid.expect("tx").tx.txid == tx.txid
    by_wtxid.ping_roundtrip()
    assert not any(name == "inv" for name, _ in by_wtxid.inbox)  # announced once (expect took it out)


def test_flood_announces_a_tx_only_to_the_peers_that_relay_txs(lt, make_node, test_peers):
    """accept_tx walks the relay's list of tx-relay peers (Relay.tx_peers), kept as peers finish
    their handshake and leave: a peer whose version asked for no tx relay and a block-relay-only
    link are never announced a tx, and a peer that left is no longer walked."""
    node, other = make_node(), make_node()
    relaying, quiet, gone = test_peers(node), test_peers(node), test_peers(node)
    relaying.handshake()
    gone.handshake()
    version = quiet.version_msg()
    version.relay = False  # BIP37's fRelay: no tx invs for this peer
    quiet.send(version)
    quiet.expect("version")
    quiet.expect("verack")
    quiet.send(msg_verack())
    quiet.ping_roundtrip()
    block_only = lt.run(node.open_connection(other.config.bind, other.port, kind="block-relay"))
    lt.wait(lambda: block_only.verack_received, what="the block-relay link's handshake")
    gone_peer = peer_from(lt, node, gone.ip)
    gone.close()
    lt.wait(lambda: gone_peer.id not in node.peers, what="the peer that left")
    assert lt.eval(lambda: [p.ip for p in node.relay.tx_peers]) == [relaying.ip]
    tx = lt.eval(node.inject_tx)
    assert relaying.expect("inv").inv == [CInv(MSG_TX, tx.txid)]
    quiet.ping_roundtrip()
    assert not any(name == "inv" for name, _ in quiet.inbox)
    assert lt.eval(lambda: other.stats.msgs[("in", "inv")]) == 0  # sent in the same walk as relaying's


def test_a_flood_inv_reaches_each_peer_once_counted_once_each_and_a_held_peer_after_the_heal(lt, make_node, test_peers):
    """Connection.send_frame_to_all queues the one inv frame for each peer inline while nothing is
    shaped; once a peer is cut off (a partition: its link emulator holds its frames) every peer
    takes the whole send_frame way, and the held one is counted as sent at once, as send_frame
    counts, and gets the frame when the partition heals. Every peer gets each inv exactly once."""
    node = make_node()
    peers = near_a, near_b, far = test_peers(node), test_peers(node), test_peers(node)
    for p in peers:
        p.handshake()
    conns = {p.ip: peer_from(lt, node, p.ip).conn for p in peers}
    frame = HEADER_SIZE + ONE_ENTRY_SIZE

    def sent_since(before):
        return lt.eval(lambda: {ip: c.bytes_out - before[ip] for ip, c in conns.items()})

    for cut_off in (False, True):
        out0 = lt.eval(lambda: node.stats.msgs[("out", "inv")])
        bytes0 = lt.eval(lambda: {ip: c.bytes_out for ip, c in conns.items()})
        lt.eval(lambda: node.set_unreachable([far.ip], cut_off))
        tx = lt.eval(node.inject_tx)
        for p in (near_a, near_b) if cut_off else peers:
            assert p.expect("inv").inv == [CInv(MSG_TX, tx.txid)]
        assert lt.eval(lambda: node.stats.msgs[("out", "inv")]) - out0 == 3
        if cut_off:
            # far's frame waits in its emulator, unsent
            assert sent_since(bytes0) == {near_a.ip: frame, near_b.ip: frame, far.ip: 0}
            assert not any(name == "inv" for name, _ in far.inbox)
            lt.eval(node.heal)
            assert far.expect("inv").inv == [CInv(MSG_TX, tx.txid)]
        assert sent_since(bytes0) == {ip: frame for ip in conns}
        for p in peers:
            p.ping_roundtrip()
            assert not any(name == "inv" for name, _ in p.inbox)  # once each
