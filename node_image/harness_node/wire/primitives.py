"""The data a node stores and relays: transactions and blocks kept as their exact wire bytes, with
their hashes computed once at parse time. The messages that carry them are in messages.py."""

from __future__ import annotations

import struct
from io import BytesIO

from .codec import DecodeError, compact_size, read_exact, read_i32, read_u8, read_var_bytes, read_vector_len, sha256d


class Tx:
    """A transaction kept as its exact wire bytes (relayed byte-identical), with txid and wtxid.

    Parsing checks the structure only: version, optional segwit marker, inputs, outputs, witnesses,
    locktime. Values and scripts stay opaque.
    """

    __slots__ = ("raw", "txid", "wtxid", "n_in", "n_out", "outputs", "prevouts", "base_size")

    def __init__(self, raw: bytes, txid: bytes, wtxid: bytes, n_in: int, n_out: int,
                 outputs: list[tuple[int, bytes]], prevouts: list[bytes], base_size: int | None = None) -> None:
        self.raw = raw
        self.base_size = len(raw) if base_size is None else base_size  # serialized without witness
        self.txid = txid
        self.wtxid = wtxid
        self.n_in = n_in
        self.n_out = n_out
        self.outputs = outputs  # (value, scriptPubKey)
        self.prevouts = prevouts  # 36-byte outpoints

    @classmethod
    def read(cls, f: BytesIO) -> "Tx":
        start = f.tell()
        version = read_exact(f, 4)
        body_start = f.tell()
        segwit = False
        marker = read_u8(f)
        if marker == 0:
            flag = read_u8(f)
            if flag != 1:
                raise DecodeError("bad segwit flag")
            segwit = True
            body_start = f.tell()
        else:
            f.seek(body_start)
        n_in = read_vector_len(f)
        prevouts = []
        for _ in range(n_in):
            prevouts.append(read_exact(f, 36))
            read_var_bytes(f)
            read_exact(f, 4)
        n_out = read_vector_len(f)
        outputs = []
        for _ in range(n_out):
            value = struct.unpack("<q", read_exact(f, 8))[0]
            outputs.append((value, read_var_bytes(f)))
        body_end = f.tell()
        if segwit:
            for _ in range(n_in):
                for _ in range(read_vector_len(f)):
                    read_var_bytes(f)
        locktime = read_exact(f, 4)
        end = f.tell()
        f.seek(start)
        raw = f.read(end - start)
        stripped = version + raw[body_start - start: body_end - start] + locktime
        return cls(raw, sha256d(stripped), sha256d(raw), n_in, n_out, outputs, prevouts, len(stripped))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Tx":
        f = BytesIO(raw)
        tx = cls.read(f)
        if f.read(1):
            raise DecodeError("trailing bytes after transaction")
        return tx

    @property
    def weight(self) -> int:
        """BIP141 weight: 3 x size without witness + full size (consensus/validation.h GetTransactionWeight)."""
        return self.base_size * 3 + len(self.raw)

    def __repr__(self) -> str:
        return f"Tx({self.txid[::-1].hex()}, {len(self.raw)} bytes)"


class BlockHeader:
    __slots__ = ("version", "prev", "merkle_root", "time", "bits", "nonce", "hash")

    def __init__(self, version: int = 1, prev: bytes = b"\x00" * 32, merkle_root: bytes = b"\x00" * 32,
                 time: int = 0, bits: int = 0x207FFFFF, nonce: int = 0) -> None:
        self.version = version
        self.prev = prev
        self.merkle_root = merkle_root
        self.time = time
        self.bits = bits
        self.nonce = nonce
        self.hash = sha256d(self.serialize())

    def serialize(self) -> bytes:
        return (struct.pack("<i", self.version) + self.prev + self.merkle_root
                + struct.pack("<III", self.time, self.bits, self.nonce))

    @classmethod
    def read(cls, f: BytesIO) -> "BlockHeader":
        version = read_i32(f)
        prev = read_exact(f, 32)
        merkle = read_exact(f, 32)
        t, bits, nonce = struct.unpack("<III", read_exact(f, 12))
        return cls(version, prev, merkle, t, bits, nonce)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlockHeader) and other.hash == self.hash

    def __repr__(self) -> str:
        return f"BlockHeader({self.hash[::-1].hex()}, prev={self.prev[::-1].hex()[:16]}..)"


class Block:
    """A block: its header plus transactions; `raw` is the exact wire form for relay."""

    __slots__ = ("header", "txs", "raw")

    def __init__(self, header: BlockHeader, txs: list[Tx], raw: bytes | None = None) -> None:
        self.header = header
        self.txs = txs
        self.raw = raw if raw is not None else header.serialize() + compact_size(len(txs)) + b"".join(t.raw for t in txs)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @classmethod
    def read(cls, f: BytesIO) -> "Block":
        start = f.tell()
        header = BlockHeader.read(f)
        txs = [Tx.read(f) for _ in range(read_vector_len(f))]
        end = f.tell()
        f.seek(start)
        return cls(header, txs, f.read(end - start))


def merkle_root(txids: list[bytes]) -> bytes:
    if not txids:
        return b"\x00" * 32
    layer = list(txids)
    while len(layer) > 1:
        if len(layer) % 2:
            layer.append(layer[-1])
        layer = [sha256d(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]
