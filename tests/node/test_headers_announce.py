"""A new block goes to a `sendheaders` peer as `headers` only when the header would connect there:
the peer has the first new block's parent, as far as the node knows (Core's PeerHasHeader in
SendMessages: the parent is an ancestor of the best block the peer announced to us, or of the best
header we sent it). Otherwise Core falls back to `inv`, and the peer's `getheaders` fills the gap
with no penalty. Found by a CI run: while two bitcoinds mined in turn, a light node sent one of them
headers whose parent it lacked ("missing prev block"), and Bitcoin SV scores every 10th in a row.

Over real sockets with the test peer, then against a real bitcoind, whose own log is the judge."""

from __future__ import annotations

from io import BytesIO

import pytest

from harness_node.chain.chain import Chain
from harness_node.peering.peerconfig import PeerConfig
from harness_node.wire.codec import MAGIC_BSV_REGTEST, hex_to_hash
from harness_node.wire.messages import MSG_BLOCK, CInv, msg_block, msg_getheaders, msg_headers, msg_inv, msg_sendheaders
from harness_node.wire.primitives import Block
from harness_node.wire.synthetic import make_block
from tests.node.test_interop_bitcoind import bad_peer_log_lines, bitcoind_peers
from tests.waiting import wait_until


def chain_of(chain: Chain, prev: Block, n: int) -> list[Block]:
    out = []
    for _ in range(n):
        prev = make_block(prev.hash, chain.heights.get(prev.hash, 0) + len(out) + 1, prev.header.time)
        out.append(prev)
    return out


def test_is_ancestor_on_and_off_the_best_chain():
    chain = Chain()
    g = chain.genesis
    main = chain_of(chain, g, 3)
    for b in main:
        chain.add(b)
    side = [make_block(main[0].hash, 2, main[0].header.time)]  # a fork at height 1, one block long
    chain.add(side[0])
    assert not chain.on_best_chain(side[0].hash)
    assert chain.is_ancestor(g.hash, main[2].hash) and chain.is_ancestor(main[1].hash, main[1].hash)
    assert not chain.is_ancestor(main[2].hash, main[1].hash)  # a descendant is no ancestor
    assert chain.is_ancestor(main[0].hash, side[0].hash) and chain.is_ancestor(g.hash, side[0].hash)
    assert not chain.is_ancestor(main[1].hash, side[0].hash)  # same height, other branch
    assert not chain.is_ancestor(side[0].hash, main[2].hash)
    assert not chain.is_ancestor(b"\x07" * 32, main[2].hash) and not chain.is_ancestor(g.hash, b"\x07" * 32)


def test_a_peer_not_known_to_hold_the_parent_gets_inv_until_its_getheaders_shows_it(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    a = lt.eval(lambda: node.mine_block())
    assert peer.expect("inv", timeout=15).inv == [CInv(MSG_BLOCK, a.hash)]  # it has not asked for headers yet
    peer.send(msg_sendheaders())
    peer.ping_roundtrip()
    # It prefers headers now, but nothing says it holds `a`: an inv announced it, and it never
    # answered. A `headers` of `b` would not connect there (the old rule sent it).
    b = lt.eval(lambda: node.mine_block())
    assert peer.expect("inv", timeout=15, where=lambda m: m.inv[0].hash == b.hash).inv == [CInv(MSG_BLOCK, b.hash)]
    assert not any(c == "headers" for c, _ in peer.inbox)
    # its getheaders is answered up to our tip: from then on it is known to hold `b`
    peer.send(msg_getheaders(locator=[lt.eval(lambda: node.chain.genesis.hash)]))
    got = peer.expect("headers", timeout=15)
    assert [h.hash for h in got.headers] == [a.hash, b.hash]
    c = lt.eval(lambda: node.mine_block())
    announced = peer.expect("headers", timeout=15, where=lambda m: m.headers[0].hash == c.hash)
    assert [h.hash for h in announced.headers] == [c.hash]


@pytest.mark.parametrize("announce", ["headers", "inv"])
def test_a_peer_that_announced_the_parent_gets_headers_even_if_the_node_lacked_it_then(lt, make_node, test_peers, announce):
    """Core's UpdateBlockAvailability: a block the peer announced before the node held it (kept as
    hashLastUnknownBlock) counts once the node holds it."""
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send(msg_sendheaders())
    genesis = lt.eval(lambda: node.chain.genesis)
    (a,) = chain_of(Chain(), genesis, 1)
    peer.send(msg_headers([a.header]) if announce == "headers" else msg_inv([CInv(MSG_BLOCK, a.hash)]))
    peer.expect("getdata", timeout=15, where=lambda m: m.inv == [CInv(MSG_BLOCK, a.hash)])
    assert lt.eval(lambda: node.relay.state(next(iter(node.peers.values()))).last_unknown_block) == a.hash
    peer.send(msg_block(a))
    lt.wait(lambda: node.chain.has(a.hash), timeout=15, what="the peer's block stored")
    b = lt.eval(lambda: node.mine_block())
    announced = peer.expect("headers", timeout=15, where=lambda m: m.headers[0].hash == b.hash)
    assert [h.hash for h in announced.headers] == [b.hash]
    assert not any(c == "inv" and m.inv[0].type == MSG_BLOCK for c, m in peer.inbox)


def test_blocks_that_do_not_follow_one_another_go_as_inv(lt, make_node, test_peers):
    """Core bails out to inv when the blocks to announce do not connect to each other."""
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send(msg_sendheaders())
    peer.send(msg_getheaders(locator=[lt.eval(lambda: node.chain.genesis.hash)]))
    peer.expect("headers", timeout=15)  # it holds our tip, genesis
    genesis = lt.eval(lambda: node.chain.genesis)
    x, y = chain_of(Chain(), genesis, 2)
    lt.eval(lambda: node.relay.announce_blocks([x, y][::-1], None))  # y before its parent x
    assert peer.expect("inv", timeout=15).inv == [CInv(MSG_BLOCK, y.hash), CInv(MSG_BLOCK, x.hash)]


# --- against a real bitcoind ---------------------------------------------------------------------

ROUNDS = 10  # Bitcoin SV scores every 10th unconnecting headers message in a row
BATCH = 9  # more than the 8 blocks Core announces as headers: the batch goes as inv


@pytest.mark.bitcoind
@pytest.mark.timeout(180)
def test_a_bitcoind_is_never_sent_a_header_it_cannot_connect(bitcoind_factory, lt, make_node, test_peers):
    """The CI run's sequence, made deterministic. A light node sits between a test peer, which feeds
    it a real bitcoind's blocks, and a second bitcoind. Each round the node connects 9 blocks at once
    (announced to the bitcoind as inv, which it answers with getheaders) and at once a 10th. The old
    rule sent that 10th as `headers` before the getheaders was answered: the bitcoind logged
    "missing prev block" for it, every round. Now it goes as inv until the bitcoind is known to hold
    its parent, and the bitcoind's log and ban score show nothing against the node."""
    source, target = bitcoind_factory(), bitcoind_factory()
    hashes = source.generatetoaddress(ROUNDS * (BATCH + 1), source.getnewaddress())
    blocks = [Block.read(BytesIO(bytes.fromhex(source.rpc("getblock", h, 0)))) for h in hashes]
    assert [b.hash for b in blocks] == [hex_to_hash(h) for h in hashes]
    node = make_node(connect=[f"{target.ip}:{target.port}"], magic=MAGIC_BSV_REGTEST.hex(),
                     peering=PeerConfig(outbound_full_relay=0, block_relay=0, countermeasures={"feelers": False}),
                     timers={"handshake_timeout": 60.0})
    wait_until(lambda: [p for p in bitcoind_peers(target, node.config.bind) if p["inbound"] and "pingtime" in p],
               30, "the bitcoind to list the node as a handshaken peer")
    feeder = test_peers(node, magic=MAGIC_BSV_REGTEST)
    feeder.handshake()
    for r in range(ROUNDS):
        batch = blocks[r * (BATCH + 1):(r + 1) * (BATCH + 1)]
        for b in batch[BATCH - 1:0:-1]:  # all but the first, newest first: each waits for its parent
            feeder.send(msg_block(b))
        feeder.send(msg_block(batch[0]))  # connects the 9 at once
        feeder.send(msg_block(batch[BATCH]))  # and the 10th right behind them
        top = (r + 1) * (BATCH + 1)
        wait_until(lambda: target.getblockcount() == top, 30, f"the bitcoind at height {top}")
    assert target.getbestblockhash() == hashes[-1]
    unconnecting = [line for line in (target.datadir / "regtest" / "bitcoind.log").read_text(errors="replace")
                    .splitlines() if "missing prev block" in line]
    assert unconnecting == []
    (link,) = [p for p in bitcoind_peers(target, node.config.bind) if p["inbound"]]
    assert link.get("banscore", 0) == 0
    assert bad_peer_log_lines(target) == []
