"""What each spam behaviour puts on the wire: one function per behaviour, `send(peer, i)` sending
its i-th message. Built from the wire's own message classes and synthetic blocks, so an invalid
message differs from a valid one only in the rule it breaks."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

from ..chain.chain import regtest_genesis
from ..wire.codec import NetAddr
from ..wire.messages import (
    MAX_ADDR_TO_SEND,
    MAX_HEADERS_RESULTS,
    MAX_INV_SZ,
    MSG_TX,
    CInv,
    msg_addr,
    msg_block,
    msg_getdata,
    msg_headers,
    msg_inv,
    msg_ping,
    msg_tx,
)
from ..wire.primitives import Block, BlockHeader, Tx
from ..wire.synthetic import REGTEST_BITS, _serialize_tx, make_block, make_tx, meets_target
from .base import AttackPeer

Sender = Callable[[AttackPeer, int], None]
MAX_TX_SIZE = 1_000_000  # bytes without witness: Core's bad-txns-oversize (MAX_BLOCK_WEIGHT / 4)
HARD_BITS = 0x1D00FFFF  # mainnet's initial difficulty: a random hash is above it


def _outpoint() -> bytes:
    return os.urandom(32) + struct.pack("<I", 0)


def _tx(inputs: list[tuple[bytes, bytes, int]], outputs: list[tuple[int, bytes]]) -> Tx:
    return Tx.from_bytes(_serialize_tx(inputs, outputs))


def _addrs(n: int) -> list[NetAddr]:
    """n routable-looking addresses in distinct /16s (10.x is unroutable; 100.64/10 is CGNAT)."""
    now = int(time.time())
    return [NetAddr(f"{11 + i // 65536 % 200}.{i // 256 % 256}.{i % 256}.1", 8333, 1, now) for i in range(n)]


def _header(prev: bytes) -> BlockHeader:
    return BlockHeader(version=0x20000000, prev=prev, merkle_root=os.urandom(32), time=int(time.time()))


def _mined(header_prev: bytes, merkle: bytes) -> BlockHeader:
    nonce = 0
    while True:
        h = BlockHeader(version=0x20000000, prev=header_prev, merkle_root=merkle, time=int(time.time()),
                        bits=REGTEST_BITS, nonce=nonce)
        if meets_target(h):
            return h
        nonce += 1


def pre_version(peer: AttackPeer, i: int) -> None:
    peer.send(msg_ping(i + 1))


def duplicate_version(peer: AttackPeer, i: int) -> None:
    peer.send(peer.version_message())


def oversized_inv(peer: AttackPeer, i: int) -> None:
    peer.send(msg_inv([CInv(MSG_TX, os.urandom(32))] * (MAX_INV_SZ + 1)))


def oversized_getdata(peer: AttackPeer, i: int) -> None:
    peer.send(msg_getdata([CInv(MSG_TX, os.urandom(32))] * (MAX_INV_SZ + 1)))


def oversized_addr(peer: AttackPeer, i: int) -> None:
    peer.send(msg_addr(_addrs(MAX_ADDR_TO_SEND + 1)))


def oversized_headers(peer: AttackPeer, i: int) -> None:
    peer.send(msg_headers([_header(os.urandom(32))] * (MAX_HEADERS_RESULTS + 1)))


def non_continuous_headers(peer: AttackPeer, i: int) -> None:
    first = _header(regtest_genesis().hash)
    peer.send(msg_headers([first, _header(os.urandom(32))]))  # the second does not build on the first


def unconnecting_headers(peer: AttackPeer, i: int) -> None:
    peer.send(msg_headers([_header(os.urandom(32))]))


def bad_pow_block(peer: AttackPeer, i: int) -> None:
    good = make_block(regtest_genesis().hash, 1)
    h = good.header
    bad = BlockHeader(h.version, h.prev, h.merkle_root, h.time, HARD_BITS, h.nonce)
    peer.send(msg_block(Block(bad, good.txs)))


def invalid_block(peer: AttackPeer, i: int) -> None:
    good = make_block(regtest_genesis().hash, 1)
    peer.send(msg_block(Block(_mined(good.header.prev, os.urandom(32)), good.txs)))  # merkle root mismatch


def tx_empty_vout(peer: AttackPeer, i: int) -> None:
    peer.send(msg_tx(_tx([(_outpoint(), b"\x51", 0xFFFFFFFF)], [])))


def tx_oversize(peer: AttackPeer, i: int) -> None:
    peer.send(msg_tx(_tx([(_outpoint(), b"\x51", 0xFFFFFFFF)], [(0, b"\x6a" + b"\x00" * MAX_TX_SIZE)])))


def tx_null_prevout(peer: AttackPeer, i: int) -> None:
    null = b"\x00" * 32 + b"\xff\xff\xff\xff"  # two inputs: with one it would be a coinbase
    peer.send(msg_tx(_tx([(_outpoint(), b"\x51", 0xFFFFFFFF), (null, b"\x51", 0xFFFFFFFF)], [(0, b"\x6a")])))


def bad_checksum(peer: AttackPeer, i: int) -> None:
    peer.send_frame("ping", struct.pack("<Q", i + 1), bad_checksum=True)


def garbage(peer: AttackPeer, i: int) -> None:
    peer.send_forged(os.urandom(64))


def truncated_frame(peer: AttackPeer, i: int) -> None:
    payload = struct.pack("<Q", i + 1)
    peer.send_frame("ping", payload, length=len(payload) + 100)  # 100 bytes promised never come


def oversized_length(peer: AttackPeer, i: int) -> None:
    peer.send_frame("ping", struct.pack("<Q", i + 1), length=4_000_001)


def unknown_command(peer: AttackPeer, i: int) -> None:
    peer.send_frame("harnessjunk", os.urandom(16))


def unrequested_tx(peer: AttackPeer, i: int) -> None:
    peer.send(msg_tx(make_tx()))


def unrequested_block(peer: AttackPeer, i: int) -> None:
    peer.send(msg_block(make_block(regtest_genesis().hash, 1)))


def ping(peer: AttackPeer, i: int) -> None:
    peer.send(msg_ping(i + 1))


def addr_flood(peer: AttackPeer, i: int) -> None:
    peer.send(msg_addr(_addrs(MAX_ADDR_TO_SEND)))


SENDERS: dict[str, Sender] = {
    "pre-version-message": pre_version, "duplicate-version": duplicate_version, "pre-verack-message": pre_version,
    "oversized-inv": oversized_inv, "oversized-getdata": oversized_getdata, "oversized-addr": oversized_addr,
    "oversized-headers": oversized_headers, "non-continuous-headers": non_continuous_headers,
    "unconnecting-headers": unconnecting_headers, "bad-pow-block": bad_pow_block, "invalid-block": invalid_block,
    "tx-empty-vout": tx_empty_vout, "tx-oversize": tx_oversize, "tx-null-prevout": tx_null_prevout,
    "bad-checksum": bad_checksum, "garbage": garbage, "truncated-frame": truncated_frame,
    "oversized-length": oversized_length, "unknown-command": unknown_command, "unrequested-tx": unrequested_tx,
    "unrequested-block": unrequested_block, "ping-flood": ping, "addr-flood": addr_flood,
    # slow-handshake and connection-flood send nothing: holding the links is the behaviour
}
