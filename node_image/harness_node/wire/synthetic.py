"""Synthetic transactions and blocks that the harness injects, and the parser for their marker.

Each carries a 16-byte harness id and its origin time (wall clock, ns) in an OP_RETURN output:
`6a 1c "HRNS" <id:16> <origin_ns:u64 LE>`; a block carries it in its coinbase. Every receiver reads
it with `origin_of` and records propagation delay = first seen - origin.
"""

from __future__ import annotations

import os
import struct
import time

from .codec import compact_size, var_bytes
from .messages import Block, BlockHeader, Tx, merkle_root

MARKER = b"HRNS"
_PAYLOAD_LEN = len(MARKER) + 16 + 8  # 28
MARKER_SCRIPT_PREFIX = b"\x6a" + bytes([_PAYLOAD_LEN]) + MARKER  # OP_RETURN, push 28
REGTEST_BITS = 0x207FFFFF
COIN = 100_000_000
REGTEST_SUBSIDY = 50 * COIN  # before the first halving (150 blocks on regtest)


def marker_script(harness_id: bytes, origin_ns: int) -> bytes:
    if len(harness_id) != 16:
        raise ValueError(f"harness id must be 16 bytes, got {len(harness_id)}")
    return MARKER_SCRIPT_PREFIX + harness_id + struct.pack("<Q", origin_ns)


def _serialize_tx(inputs: list[tuple[bytes, bytes, int]], outputs: list[tuple[int, bytes]], version: int = 2,
                  locktime: int = 0) -> bytes:
    out = [struct.pack("<i", version), compact_size(len(inputs))]
    for prevout, script_sig, sequence in inputs:
        out += [prevout, var_bytes(script_sig), struct.pack("<I", sequence)]
    out.append(compact_size(len(outputs)))
    for value, script in outputs:
        out += [struct.pack("<q", value), var_bytes(script)]
    out.append(struct.pack("<I", locktime))
    return b"".join(out)


def make_tx(harness_id: bytes | None = None, origin_ns: int | None = None) -> Tx:
    """A structurally valid tx spending a random (non-existent) outpoint; unique by construction."""
    harness_id = harness_id if harness_id is not None else os.urandom(16)
    origin_ns = origin_ns if origin_ns is not None else time.time_ns()
    prevout = os.urandom(32) + struct.pack("<I", 0)
    raw = _serialize_tx([(prevout, b"\x51", 0xFFFFFFFF)], [(0, marker_script(harness_id, origin_ns))])
    return Tx.from_bytes(raw)


def _height_push(height: int) -> bytes:
    """BIP34 height in the coinbase scriptSig (minimal CScriptNum push)."""
    if height == 0:
        return b"\x00"
    if 1 <= height <= 16:
        return bytes([0x50 + height])
    n = height.to_bytes((height.bit_length() + 8) // 8, "little")
    return bytes([len(n)]) + n


def make_coinbase(height: int, harness_id: bytes, origin_ns: int) -> Tx:
    script_sig = _height_push(height) + b"\x04" + os.urandom(4)  # extranonce keeps coinbases unique
    raw = _serialize_tx([(b"\x00" * 32 + b"\xff\xff\xff\xff", script_sig, 0xFFFFFFFF)],
                        [(REGTEST_SUBSIDY, b"\x51"), (0, marker_script(harness_id, origin_ns))])
    return Tx.from_bytes(raw)


def bits_to_target(bits: int) -> int:
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def meets_target(header: BlockHeader) -> bool:
    return int.from_bytes(header.hash, "little") <= bits_to_target(header.bits)


def make_block(prev: bytes, height: int, prev_time: int = 0, txs: list[Tx] | None = None,
               harness_id: bytes | None = None, origin_ns: int | None = None, bits: int = REGTEST_BITS) -> Block:
    """A block on `prev` at `height`: coinbase with the marker, correct merkle root, regtest PoW."""
    harness_id = harness_id if harness_id is not None else os.urandom(16)
    origin_ns = origin_ns if origin_ns is not None else time.time_ns()
    all_txs = [make_coinbase(height, harness_id, origin_ns)] + list(txs or [])
    root = merkle_root([t.txid for t in all_txs])
    ntime = max(int(time.time()), prev_time + 1)
    nonce = 0
    while True:  # regtest target: about every second hash qualifies
        header = BlockHeader(version=0x20000000, prev=prev, merkle_root=root, time=ntime, bits=bits, nonce=nonce)
        if meets_target(header):
            return Block(header, all_txs)
        nonce += 1


def _origin_of_tx(tx: Tx) -> tuple[bytes, int] | None:
    for _value, script in tx.outputs:
        if script.startswith(MARKER_SCRIPT_PREFIX) and len(script) == 2 + _PAYLOAD_LEN:
            body = script[len(MARKER_SCRIPT_PREFIX):]
            return body[:16], struct.unpack("<Q", body[16:24])[0]
    return None


def origin_of(obj: Tx | Block) -> tuple[bytes, int] | None:
    """(harness id, origin time ns) of a synthetic tx or block (marker in its coinbase), else None."""
    if isinstance(obj, Block):
        return _origin_of_tx(obj.txs[0]) if obj.txs else None
    return _origin_of_tx(obj)
