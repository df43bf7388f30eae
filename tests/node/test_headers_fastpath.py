"""A new block's one-header `headers` takes a shortcut both ways (issue 17): built once for every
peer when a node announces it (BlockRelay.announce_blocks), and read straight from its 82 bytes
when the node already holds the block (BlockRelay.on_one_header), which is what all but the first
few of a node's ~20 peers send it for every block. Over real sockets; each decision is checked
against what the decoded path (on_headers) does with the same header, and the wire form is written
out here with struct."""

from __future__ import annotations

import struct

from harness_node.relay.blocks import MAX_UNCONNECTING_HEADERS
from harness_node.wire.messages import MSG_BLOCK, CInv, msg_headers, msg_sendheaders
from harness_node.wire.synthetic import make_block

from conftest import peer_from


def one_header(header_bytes: bytes) -> bytes:
    return b"\x01" + header_bytes + b"\x00"  # CompactSize 1, the header, its tx count 0


def node_and_peer(lt, make_node, test_peers):
    """A node, a test peer past the handshake, and the node's Peer for it."""
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    return node, peer, peer_from(lt, node, peer.ip)


def test_a_held_blocks_header_is_read_from_its_bytes_and_does_what_the_decoded_path_does(lt, make_node, test_peers):
    node, peer, ours = node_and_peer(lt, make_node, test_peers)
    held = lt.eval(lambda: node.mine_block())
    wire = one_header(struct.pack("<i", held.header.version) + held.header.prev + held.header.merkle_root
                      + struct.pack("<III", held.header.time, held.header.bits, held.header.nonce))
    assert wire == msg_headers([held.header]).serialize()
    # the peer had sent unconnecting headers before: a header that connects resets the count, as on_headers
    lt.eval(lambda: setattr(node.relay.state(ours), "unconnecting_headers", MAX_UNCONNECTING_HEADERS - 1))
    assert lt.eval(lambda: node.relay.on_one_header(ours, wire)) is True
    assert lt.eval(lambda: (node.relay.knows(ours, held.hash), node.relay.state(ours).unconnecting_headers)) == (True, 0)
    # and over the wire: no getdata, no getheaders, no score
    peer.send_frame("headers", wire)
    peer.ping_roundtrip()
    assert not any(name in ("getdata", "getheaders") for name, _ in peer.inbox)
    assert lt.eval(lambda: ours.score) == 0


def test_a_header_of_a_block_the_node_lacks_goes_the_decoded_way_and_is_asked_for(lt, make_node, test_peers):
    node, peer, ours = node_and_peer(lt, make_node, test_peers)
    tip = lt.eval(lambda: node.chain.tip)
    new = make_block(tip.hash, 1, tip.header.time)
    wire = msg_headers([new.header]).serialize()
    assert lt.eval(lambda: node.relay.on_one_header(ours, wire)) is False
    peer.send_frame("headers", wire)
    assert peer.expect("getdata", timeout=15).inv == [CInv(MSG_BLOCK, new.hash)]


def test_only_the_one_header_shape_takes_the_shortcut(lt, make_node, test_peers):
    node, peer, ours = node_and_peer(lt, make_node, test_peers)
    a = lt.eval(lambda: node.mine_block())
    b = lt.eval(lambda: node.mine_block())
    shapes = {
        "one header": msg_headers([a.header]).serialize(),
        "two headers": msg_headers([a.header, b.header]).serialize(),
        "a tx count of 1": msg_headers([a.header]).serialize()[:-1] + b"\x01",
        "cut short": msg_headers([a.header]).serialize()[:-1],
    }
    taken = {name: lt.eval(lambda p=payload: node.relay.on_one_header(ours, p)) for name, payload in shapes.items()}
    assert taken == {"one header": True, "two headers": False, "a tx count of 1": False, "cut short": False}


def test_a_new_block_goes_to_each_peer_as_it_asked_from_one_payload(lt, make_node, test_peers):
    node = make_node()
    wants_headers, wants_inv, also_headers = test_peers(node), test_peers(node), test_peers(node)
    for p in (wants_headers, wants_inv, also_headers):
        p.handshake()
    for p in (wants_headers, also_headers):
        p.send(msg_sendheaders())
        p.ping_roundtrip()
    block = lt.eval(lambda: node.mine_block())
    expected = msg_headers([block.header]).serialize()
    got = [p.expect("headers", timeout=15) for p in (wants_headers, also_headers)]
    assert all([h.hash for h in m.headers] == [block.hash] for m in got)
    assert all(m.serialize() == expected for m in got)
    assert wants_inv.expect("inv", timeout=15).inv == [CInv(MSG_BLOCK, block.hash)]
    # each peer is marked as knowing it: a second announcement of the same block sends nothing more
    lt.eval(lambda: node.relay.announce_blocks([block], None))
    wants_headers.ping_roundtrip()
    assert not any(name == "headers" for name, _ in wants_headers.inbox)
