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
from .primitives import Block, BlockHeader, Tx, merkle_root

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


def make_tx(harness_id: bytes | None = None, origin_ns: int | None = None, size: int | None = None) -> Tx:
    """A structurally valid tx spending a random (non-existent) outpoint; unique by construction.
    `size`: pad the scriptSig so that the serialized tx is exactly `size` bytes (at least 345), for
    size-limit tests and load (a tx with no witness weighs 4 x its size)."""
    harness_id = harness_id if harness_id is not None else os.urandom(16)
    origin_ns = origin_ns if origin_ns is not None else time.time_ns()
    prevout = os.urandom(32) + struct.pack("<I", 0)
    outputs = [(0, marker_script(harness_id, origin_ns))]
    script_sig = b"\x51"
    if size is not None:
        base = len(_serialize_tx([(prevout, b"", 0xFFFFFFFF)], outputs)) - 1  # minus the empty length byte
        if size < base + 256:
            raise ValueError(f"size must be at least {base + 256} bytes, got {size}")
        # the scriptSig length prefix is 3 bytes (0xfd + u16) up to 65535, 5 (0xfe + u32) above
        n = next((m for m in (size - base - 3, size - base - 5) if len(compact_size(m)) == size - base - m), None)
        if n is None:  # the one size the prefix jump skips
            raise ValueError(f"no tx of exactly {size} bytes; ask for one byte more")
        script_sig = b"\x51" * n
    raw = _serialize_tx([(prevout, script_sig, 0xFFFFFFFF)], outputs)
    assert size is None or len(raw) == size, (len(raw), size)
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


# Realistic blocks (docs/chaos.md): filler that brings a block to a chosen size. `txs` fills it with
# transactions of about mainnet's mean size (~400 B: many small messages to decode, as on mainnet);
# `padding` with few large ones (100 kB each: the bytes without the decoding cost).
FILL_KINDS = ("txs", "padding")
FILLER_TX_BYTES = {"txs": 400, "padding": 100_000}
MIN_FILLER_TX = 62  # a one-in one-out tx with an empty output script
# The node checks the 4 MB message cap (codec.MAX_PROTOCOL_MESSAGE_LENGTH), not block weight: a block
# up to this size is accepted as a segwit block of that size would be on mainnet.
MAX_SYNTHETIC_BLOCK = 3_900_000


def _filler_tx(size: int) -> Tx:
    """A tx of exactly `size` bytes (>= MIN_FILLER_TX): one random input, one unspendable output."""
    overhead = 60  # version, counts, outpoint, 1-byte scriptSig, sequence, value, locktime
    script_len = size - overhead - 1
    if script_len >= 253:
        script_len = size - overhead - 3
    if script_len >= 0x10000:
        script_len = size - overhead - 5
    script = b"\x6a" + os.urandom(max(0, script_len - 1)) if script_len > 0 else b""
    prevout = os.urandom(32) + struct.pack("<I", 0)
    return Tx.from_bytes(_serialize_tx([(prevout, b"\x51", 0xFFFFFFFF)], [(0, script)]))


def filler_txs(nbytes: int, fill: str = "txs") -> list[Tx]:
    """Transactions whose serialized sizes add up to about `nbytes` (within one tx's rounding)."""
    if fill not in FILL_KINDS:
        raise ValueError(f"fill must be one of {FILL_KINDS}, got {fill!r}")
    per, txs, left = FILLER_TX_BYTES[fill], [], nbytes
    while left >= MIN_FILLER_TX:
        want = per if left - per >= MIN_FILLER_TX else left
        tx = _filler_tx(want)
        txs.append(tx)
        left -= len(tx.raw)
    return txs


def make_block(prev: bytes, height: int, prev_time: int = 0, txs: list[Tx] | None = None,
               harness_id: bytes | None = None, origin_ns: int | None = None, bits: int = REGTEST_BITS,
               size: int | None = None, fill: str = "txs") -> Block:
    """A block on `prev` at `height`: coinbase with the marker, correct merkle root, regtest PoW;
    with `size`, filled up to about that many bytes (`fill`: synthetic txs or padding)."""
    harness_id = harness_id if harness_id is not None else os.urandom(16)
    origin_ns = origin_ns if origin_ns is not None else time.time_ns()
    all_txs = [make_coinbase(height, harness_id, origin_ns)] + list(txs or [])
    if size is not None:
        if not 0 < size <= MAX_SYNTHETIC_BLOCK:
            raise ValueError(f"size must be in 1..{MAX_SYNTHETIC_BLOCK} bytes, got {size}")
        used = 80 + 5 + sum(len(t.raw) for t in all_txs)  # header, tx count, what we have
        all_txs += filler_txs(size - used, fill)
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
