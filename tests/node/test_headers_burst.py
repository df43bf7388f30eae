"""A burst of blocks announced one header at a time (a bitcoind mining 101 blocks at once, issue 16)
is not unconnecting: each header connects to the previous one, whose block the node asked for but
has not received yet. Core keeps such headers in its block index; a node that only checked its
stored blocks counted every header after the first as unconnecting and banned honest relays."""

from __future__ import annotations

from harness_node.relay.relay import MAX_UNCONNECTING_HEADERS
from harness_node.wire.messages import MSG_BLOCK, CInv, msg_block, msg_headers, msg_inv, msg_notfound
from harness_node.wire.synthetic import make_block

from conftest import peer_from

BURST = 3 * MAX_UNCONNECTING_HEADERS  # enough to be charged 3 times under the old rule


def test_headers_of_blocks_still_in_flight_connect(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    tip = lt.eval(lambda: node.chain.tip)
    prev, prev_time, asked = tip.hash, tip.header.time, []
    for height in range(1, BURST + 1):
        block = make_block(prev, height, prev_time)
        peer.send(msg_headers([block.header]))  # the block itself is never sent
        getdata = peer.expect("getdata", timeout=15, where=lambda m, h=block.hash: any(i.hash == h for i in m.inv))
        asked.append(getdata)
        prev, prev_time = block.hash, block.header.time
    peer.ping_roundtrip()  # still connected
    assert len(asked) == BURST  # every header connected, so every block was asked for
    assert lt.eval(lambda: node.stats.misbehaviour["headers-unconnecting"]) == 0
    assert peer_from(lt, node, peer.ip).score == 0


def test_a_header_on_an_unknown_parent_still_counts(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    for _ in range(MAX_UNCONNECTING_HEADERS):
        peer.send(msg_headers([make_block(b"\x01" * 32, 1).header]))
    lt.wait(lambda: node.stats.misbehaviour["headers-unconnecting"] == 1, timeout=15,
            what="the 10th unconnecting header to be charged")


def test_a_block_still_in_flight_is_not_asked_of_the_same_peer_again(lt, make_node, test_peers):
    """Every block that arrives out of order makes the node ask for the gap (getheaders), and the
    answer lists again every block still on its way. Asking for those again multiplied a 101-block
    burst ~15 times (a bitcoind member's capture); the node asks one peer for one block once, and
    again only after it said `notfound`."""
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    tip = lt.eval(lambda: node.chain.tip)
    prev, prev_time, blocks = tip.hash, tip.header.time, []
    for height in range(1, 6):
        blocks.append(make_block(prev, height, prev_time))
        prev, prev_time = blocks[-1].hash, blocks[-1].header.time
    headers = msg_headers([b.header for b in blocks])
    peer.send(headers)
    first = peer.expect("getdata", timeout=15)
    assert [i.hash for i in first.inv] == [b.hash for b in blocks]
    peer.send(headers)  # the same headers again, as the answer to a gap-filling getheaders would be
    peer.send(msg_inv([CInv(MSG_BLOCK, b.hash) for b in blocks]))  # and announced once more
    peer.ping_roundtrip()  # both processed
    assert [m.inv for c, m in peer.inbox if c == "getdata"] == [], "a block in flight was asked for twice"
    peer.send(msg_block(blocks[0]))
    lt.wait(lambda: node.chain.has(blocks[0].hash), timeout=15, what="the first block stored")
    peer.send(msg_notfound([CInv(MSG_BLOCK, blocks[1].hash)]))  # it cannot serve the second one now
    peer.send(msg_inv([CInv(MSG_BLOCK, blocks[1].hash)]))  # and later announces it again
    again = peer.expect("getdata", timeout=15, where=lambda m: any(i.hash == blocks[1].hash for i in m.inv))
    assert [i.hash for i in again.inv] == [blocks[1].hash]


def test_a_block_two_peers_announce_is_asked_of_one_and_of_the_other_when_that_one_fails(lt, make_node, test_peers):
    """Core keeps one request per block in flight (mapBlocksInFlight): a block announced by two
    peers is asked of the first only (asking each announcer made every node of a 10,000-node
    network download each block 1.5 to 9 times); when that request fails (the peer answers
    `notfound`, or leaves) the other announcer is asked."""
    node = make_node()
    a, b, c = test_peers(node), test_peers(node), test_peers(node)
    for p in (a, b, c):
        p.handshake()
    tip = lt.eval(lambda: node.chain.tip)
    first = make_block(tip.hash, 1, tip.header.time)
    second = make_block(first.hash, 2, first.header.time)

    def asks(peer, block) -> bool:
        peer.ping_roundtrip()  # everything sent before it processed
        return any(c == "getdata" and any(i.hash == block.hash for i in m.inv) for c, m in peer.inbox)

    a.send(msg_headers([first.header]))
    assert a.expect("getdata", timeout=15).inv == [CInv(MSG_BLOCK, first.hash)]
    b.send(msg_headers([first.header]))
    c.send(msg_headers([first.header]))
    assert not asks(b, first) and not asks(c, first), "a block in flight from a was asked again"
    a.send(msg_notfound([CInv(MSG_BLOCK, first.hash)]))  # a cannot serve it: the next announcer is asked
    getdata = b.expect("getdata", timeout=15, where=lambda m: any(i.hash == first.hash for i in m.inv))
    assert [i.hash for i in getdata.inv] == [first.hash] and not asks(c, first)
    b.send(msg_block(first))
    lt.wait(lambda: node.chain.has(first.hash), timeout=15, what="the first block stored")
    # the second block: asked of c, which then leaves without sending it; a or b is asked next
    c.send(msg_headers([second.header]))
    c.expect("getdata", timeout=15, where=lambda m: any(i.hash == second.hash for i in m.inv))
    a.send(msg_headers([second.header]))
    b.send(msg_headers([second.header]))
    assert not asks(a, second) and not asks(b, second)
    c.close()
    lt.wait(lambda: any(any(cmd == "getdata" and any(i.hash == second.hash for i in m.inv) for cmd, m in p.inbox)
                        for p in (a, b)), timeout=15, what="another announcer asked after c left")


def test_a_block_not_delivered_within_the_download_timeout_is_asked_of_another_announcer(lt, make_node, test_peers):
    """The asked peer stays connected and never sends the block: after `block_download_timeout`
    (Core: a block interval, then it disconnects the staller) the next announcer is asked."""
    node = make_node(timers={"block_download_timeout": 1.0})
    a, b = test_peers(node), test_peers(node)
    for p in (a, b):
        p.handshake()
    tip = lt.eval(lambda: node.chain.tip)
    block = make_block(tip.hash, 1, tip.header.time)
    a.send(msg_headers([block.header]))
    a.expect("getdata", timeout=15, where=lambda m: any(i.hash == block.hash for i in m.inv))
    b.send(msg_headers([block.header]))
    b.ping_roundtrip()
    assert not any(c == "getdata" for c, _ in b.inbox), "asked of b while a's request ran"
    b.expect("getdata", timeout=15, where=lambda m: any(i.hash == block.hash for i in m.inv))  # a stalled: b
    a.ping_roundtrip()  # a is still connected: the testbed asks elsewhere rather than disconnect it
