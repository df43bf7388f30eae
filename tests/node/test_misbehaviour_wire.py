"""Every score of the misbehaviour table, charged by the offending message sent over a socket
(issue 9 item 3). Expected scores come from the table itself (peering/misbehaviour.py SCORES): the
one source attackers read too. Transactions are built byte by byte as Core decodes them."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import pytest

from harness_node.peering.misbehaviour import DISCONNECT_ONLY, SCORES
from harness_node.relay.relay import MAX_UNCONNECTING_HEADERS
from harness_node.wire.codec import compact_size, var_bytes
from harness_node.wire.messages import (
    MAX_ADDR_TO_SEND,
    MAX_HEADERS_RESULTS,
    MAX_INV_SZ,
    MAX_LOCATOR_SZ,
    msg_getheaders,
    msg_headers,
    msg_mempool,
    msg_ping,
    msg_tx,
    msg_verack,
)
from harness_node.wire.primitives import Block, BlockHeader, merkle_root
from harness_node.wire.synthetic import make_block, make_tx, meets_target

from conftest import disconnect_reasons, peer_from

# Charged by work outside this change: the reason, and where its test lives.
CHARGED_ELSEWHERE = {"dandelion-invalid": "the Dandelion++ stem relay (relay/) charges it; its tests send it"}

NULL = b"\x00" * 32 + b"\xff" * 4


def outpoint() -> bytes:
    return os.urandom(32) + struct.pack("<I", 0)


def raw_tx(inputs: list[bytes], outputs: list[int]) -> bytes:
    """Non-witness serialization: version 2, inputs (prevout, 1-byte scriptSig), outputs (value, OP_TRUE)."""
    out = [struct.pack("<i", 2), compact_size(len(inputs))]
    for prevout in inputs:
        out += [prevout, var_bytes(b"\x51"), b"\xff\xff\xff\xff"]
    out.append(compact_size(len(outputs)))
    for value in outputs:
        out += [struct.pack("<q", value), var_bytes(b"\x51")]
    out.append(b"\x00\x00\x00\x00")
    return b"".join(out)


def bad_pow_block() -> Block:
    block = make_block(os.urandom(32), 1)
    h = block.header
    for nonce in range(1, 1000):
        header = BlockHeader(h.version, h.prev, h.merkle_root, h.time, h.bits, h.nonce + nonce)
        if not meets_target(header):
            return Block(header, block.txs)
    raise AssertionError("no failing nonce found")


def bad_merkle_block(lt, node) -> Block:
    tip = lt.eval(lambda: node.chain.tip)
    good = make_block(tip.hash, 1, tip.header.time)
    nonce = 0
    while True:
        header = BlockHeader(good.header.version, tip.hash, merkle_root([os.urandom(32)]), good.header.time,
                             good.header.bits, nonce)
        if meets_target(header):
            return Block(header, good.txs)
        nonce += 1


def send(command: str, payload: bytes) -> Callable:
    return lambda peer, lt, node: peer.send_frame(command, payload)


def tx(inputs: list[bytes], outputs: list[int]) -> Callable:
    return lambda peer, lt, node: peer.send_frame("tx", raw_tx(inputs, outputs))


def block_msg(make: Callable) -> Callable:
    return lambda peer, lt, node: peer.send_frame("block", make(lt, node).raw)


def headers_chain(n: int, linked: bool) -> list[BlockHeader]:
    out, prev = [], os.urandom(32)
    for _ in range(n):
        b = make_block(prev if linked or not out else os.urandom(32), 1)
        out.append(b.header)
        prev = b.hash
    return out


def unconnecting(peer, lt, node) -> None:
    for _ in range(MAX_UNCONNECTING_HEADERS):
        peer.send(msg_headers(headers_chain(1, True)))


# reason -> (handshake first?, what to send)
OFFENCES: dict[str, tuple[bool, Callable]] = {
    "pre-version-message": (False, lambda peer, lt, node: peer.send(msg_ping(1))),
    "duplicate-version": (True, lambda peer, lt, node: peer.send(peer.version_msg())),
    "pre-verack-message": (False, None),  # special: between version and verack (below)
    "addr-too-large": (True, send("addr", compact_size(MAX_ADDR_TO_SEND + 1))),
    "inv-too-large": (True, send("inv", compact_size(MAX_INV_SZ + 1))),
    "getdata-too-large": (True, send("getdata", compact_size(MAX_INV_SZ + 1))),
    "headers-too-large": (True, send("headers", compact_size(MAX_HEADERS_RESULTS + 1))),
    "headers-non-continuous": (True, lambda peer, lt, node: peer.send(msg_headers(headers_chain(2, False)))),
    "headers-unconnecting": (True, unconnecting),
    "tx-empty-vin-vout": (True, tx([outpoint()], [])),  # no outputs (no inputs decodes as a witness marker)
    "tx-null-prevout": (True, tx([outpoint(), NULL], [1000])),
    "tx-oversize": (True, lambda peer, lt, node: peer.send(msg_tx(make_tx(size=1_000_001)))),
    "tx-bad-values": (True, tx([outpoint()], [-1])),
    "tx-duplicate-inputs": (True, lambda peer, lt, node: peer.send_frame("tx", raw_tx([b"\x07" * 36] * 2, [1]))),
    "tx-policy-reject": (True, lambda peer, lt, node: peer.send(msg_tx(make_tx(size=100_001)))),
    "tx-invalid": (True, tx([NULL], [1000])),  # a coinbase outside a block
    "block-bad-pow": (True, block_msg(lambda lt, node: bad_pow_block())),
    "block-invalid": (True, block_msg(bad_merkle_block)),
    "bloom-not-offered": (True, send("filterload", b"\x01\x00" + b"\x00" * 9)),
    "malformed-message": (True, send("ping", b"\x01")),  # 1 byte where a nonce needs 8
    "locator-too-large": (True, lambda peer, lt, node: peer.send(msg_getheaders(locator=[os.urandom(32)] * (MAX_LOCATOR_SZ + 1)))),
    "mempool-without-bloom": (True, lambda peer, lt, node: peer.send(msg_mempool())),
}


def test_every_reason_in_the_table_has_an_offence_here():
    assert set(OFFENCES) | set(CHARGED_ELSEWHERE) == set(SCORES)


@pytest.mark.parametrize("reason", sorted(OFFENCES))
def test_the_offence_is_charged_the_tables_score(lt, make_node, test_peers, reason):
    node = make_node()
    peer = test_peers(node)
    needs_handshake, offend = OFFENCES[reason]
    if reason == "pre-verack-message":
        peer.send(peer.version_msg())
        peer.expect("verack")
        peer.send(msg_ping(5))
        peer.send(msg_verack())
    else:
        if needs_handshake:
            peer.handshake()
        offend(peer, lt, node)
    points = SCORES[reason]
    lt.wait(lambda: node.stats.misbehaviour[reason] >= 1, timeout=15, what=f"{reason} to be charged")
    assert lt.eval(lambda: node.stats.misbehaviour[reason]) == 1
    if reason in DISCONNECT_ONLY:
        peer.wait_closed()
        assert f"misbehaviour: {reason}" in disconnect_reasons(lt, node)
        assert not lt.eval(lambda: node.is_banned(peer.ip))
    elif points >= 100:  # the default policy bans at 100
        peer.wait_closed()
        assert lt.eval(lambda: node.is_banned(peer.ip))
        assert lt.eval(lambda: node.connman.banman.bans_by_reason[reason]) == 1
    else:
        if reason == "pre-version-message":
            peer.handshake()
        peer.ping_roundtrip()  # still connected
        assert peer_from(lt, node, peer.ip).score == points
