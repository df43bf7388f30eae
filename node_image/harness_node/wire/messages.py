"""P2P message classes, one per command, found through MESSAGEMAP.

Each class has `msgtype`, `serialize() -> bytes` and `deserialize(payload) -> instance`. Protocol
caps (inv > 50,000, addr > 1000, ...) are *not* enforced here: they are misbehaviour the peer layer
scores, so decoding accepts them. Decoding raises DecodeError only for bytes that do not parse.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any, ClassVar

from ..memo import BoundedMemo
from .codec import (
    DECODE_VECTOR_LIMIT,
    DecodeError,
    NetAddr,
    bytes16_to_ip,
    compact_size,
    compact_size_at,
    read_compact_size,
    read_exact,
    read_i64,
    read_timed_net_addrs,
    read_u8,
    read_u32,
    read_u64,
    read_var_bytes,
    read_vector_len,
    timed_net_addrs,
    var_bytes,
)
from .primitives import Block, BlockHeader, Tx

# protocol_version.h
PROTOCOL_VERSION = 70016
MIN_PEER_PROTO_VERSION = 31800  # below -> disconnect
BIP0031_VERSION = 60000  # ping carries a nonce above this
SENDHEADERS_VERSION = 70012
FEEFILTER_VERSION = 70013
SHORT_IDS_BLOCKS_VERSION = 70014
WTXID_RELAY_VERSION = 70016

# Service bits (protocol.h)
NODE_NETWORK = 1 << 0
NODE_BLOOM = 1 << 2
NODE_WITNESS = 1 << 3
NODE_COMPACT_FILTERS = 1 << 6
NODE_NETWORK_LIMITED = 1 << 10
NODE_P2P_V2 = 1 << 11
# Testbed: "I relay Dandelion++ stem transactions" (protocol.md, testbed adaptation 3). Bits 24-31
# are reserved for temporary experiments (protocol.h), so no real node gives this bit a meaning.
NODE_DANDELION = 1 << 24

# Inventory types (protocol.h). MSG_DANDELION_TX is private to this testbed: BIP156's value 5
# collides with MSG_WTX (protocol.md, testbed adaptation 3).
MSG_TX = 1
MSG_BLOCK = 2
MSG_FILTERED_BLOCK = 3
MSG_CMPCT_BLOCK = 4
MSG_WTX = 5
MSG_WITNESS_FLAG = 1 << 30
MSG_DANDELION_TX = 0x48524E01  # "HRN" + 1

# Caps the peer layer enforces (net_processing.cpp)
MAX_INV_SZ = 50_000
MAX_ADDR_TO_SEND = 1000
MAX_HEADERS_RESULTS = 2000
MAX_LOCATOR_SZ = 101
MAX_SUBVERSION_LENGTH = 256
MAX_ADDRV2_ADDR_SIZE = 512
_VERSION_HEAD = struct.Struct("<iQqQ16s2s")  # version, services, time; addr_recv: services, ip, port (big-endian)
_VERSION_FROM = struct.Struct("<Q16s2sQ")  # addr_from: services, ip, port (big-endian); nonce
_I32 = struct.Struct("<i")


class Message:
    msgtype: ClassVar[bytes] = b""
    # msgtype as text, set once per class: every send reads it, and decoding it each time was a
    # property call and a bytes.decode per message (a link's handshake sends ten)
    command: ClassVar[str] = ""
    __slots__: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.command = cls.msgtype.decode()

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def deserialize(cls, payload: bytes) -> "Message":
        f = BytesIO(payload)
        return cls._read(f)

    @classmethod
    def _read(cls, f: BytesIO) -> "Message":
        return cls()

    def __repr__(self) -> str:
        fields = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"msg_{self.command}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, s) == getattr(other, s) for s in self.__slots__)


# --- handshake and keep-alive ------------------------------------------------------------------


class msg_version(Message):
    msgtype = b"version"
    __slots__ = ("version", "services", "timestamp", "addr_recv", "addr_from", "nonce", "user_agent",
                 "start_height", "relay")

    def __init__(self, version: int = PROTOCOL_VERSION, services: int = NODE_NETWORK | NODE_WITNESS,
                 timestamp: int = 0, addr_recv: NetAddr | None = None, addr_from: NetAddr | None = None,
                 nonce: int = 0, user_agent: str = "", start_height: int = 0, relay: bool = True) -> None:
        self.version = version
        self.services = services
        self.timestamp = timestamp
        self.addr_recv = addr_recv or NetAddr()
        self.addr_from = addr_from or NetAddr()
        self.nonce = nonce
        self.user_agent = user_agent
        self.start_height = start_height
        self.relay = relay

    def serialize(self) -> bytes:
        return (struct.pack("<iQq", self.version, self.services, self.timestamp)
                + self.addr_recv.serialize(with_time=False) + self.addr_from.serialize(with_time=False)
                + struct.pack("<Q", self.nonce) + var_bytes(self.user_agent.encode("utf-8", "replace"))
                + struct.pack("<i", self.start_height) + (b"\x01" if self.relay else b"\x00"))

    @classmethod
    def deserialize(cls, payload: bytes) -> "msg_version":
        # Unpacked from the payload in place: read field by field from a stream, a version took
        # ~15 reads and calls, and every link carries two (docs/benchmarks.md, issue 17).
        try:
            version, services, timestamp, r_services, r_ip, r_port = _VERSION_HEAD.unpack_from(payload)
            addr_recv = NetAddr(bytes16_to_ip(r_ip), int.from_bytes(r_port, "big"), r_services)
            addr_from, nonce, ua, height, relay = NetAddr(), 0, "", 0, True
            pos = _VERSION_HEAD.size
            # Fields after addr_recv were optional in very old versions; Core reads them if present.
            if len(payload) > pos:
                f_services, f_ip, f_port, nonce = _VERSION_FROM.unpack_from(payload, pos)
                addr_from = NetAddr(bytes16_to_ip(f_ip), int.from_bytes(f_port, "big"), f_services)
                n, pos = compact_size_at(payload, pos + _VERSION_FROM.size)
                if n > MAX_SUBVERSION_LENGTH:
                    raise DecodeError(f"user agent of {n} bytes exceeds {MAX_SUBVERSION_LENGTH}")
                ua = bytes(payload[pos:pos + n]).decode("utf-8", "replace")
                (height,) = _I32.unpack_from(payload, pos + n)  # also fails if the user agent is cut
                if len(payload) > pos + n + 4:
                    relay = bool(payload[pos + n + 4])
        except struct.error as e:
            raise DecodeError(f"truncated version: {e}") from None
        return cls(version, services, timestamp, addr_recv, addr_from, nonce, ua, height, relay)


class msg_verack(Message):
    msgtype = b"verack"


class _NonceMessage(Message):
    __slots__ = ("nonce",)

    def __init__(self, nonce: int = 0) -> None:
        self.nonce = nonce

    def serialize(self) -> bytes:
        return struct.pack("<Q", self.nonce)

    @classmethod
    def _read(cls, f: BytesIO) -> "_NonceMessage":
        return cls(read_u64(f))


class msg_ping(_NonceMessage):
    msgtype = b"ping"


class msg_pong(_NonceMessage):
    msgtype = b"pong"


class msg_sendaddrv2(Message):
    msgtype = b"sendaddrv2"


class msg_wtxidrelay(Message):
    msgtype = b"wtxidrelay"


class msg_getaddr(Message):
    msgtype = b"getaddr"


class msg_sendheaders(Message):
    msgtype = b"sendheaders"


class msg_mempool(Message):
    msgtype = b"mempool"


class msg_sendcmpct(Message):
    msgtype = b"sendcmpct"
    __slots__ = ("announce", "version")

    def __init__(self, announce: bool = False, version: int = 2) -> None:
        self.announce = announce
        self.version = version

    def serialize(self) -> bytes:
        return struct.pack("<?Q", self.announce, self.version)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_sendcmpct":
        return cls(bool(read_u8(f)), read_u64(f))


class msg_feefilter(Message):
    msgtype = b"feefilter"
    __slots__ = ("feerate",)

    def __init__(self, feerate: int = 0) -> None:
        self.feerate = feerate

    def serialize(self) -> bytes:
        return struct.pack("<q", self.feerate)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_feefilter":
        return cls(read_i64(f))


# --- addresses ---------------------------------------------------------------------------------


class msg_addr(Message):
    msgtype = b"addr"
    __slots__ = ("addrs",)

    def __init__(self, addrs: list[NetAddr] | None = None) -> None:
        self.addrs = addrs or []

    def serialize(self) -> bytes:
        return compact_size(len(self.addrs)) + timed_net_addrs(self.addrs)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_addr":
        return cls(read_timed_net_addrs(f, read_vector_len(f)))


# BIP155 network ids
BIP155_IPV4 = 1
BIP155_IPV6 = 2
BIP155_TORV3 = 4
BIP155_I2P = 5
BIP155_CJDNS = 6
_BIP155_SIZES = {BIP155_IPV4: 4, BIP155_IPV6: 16, 3: 10, BIP155_TORV3: 32, BIP155_I2P: 32, BIP155_CJDNS: 16, 7: 16}


class msg_addrv2(Message):
    """BIP155. IPv4/IPv6 entries become NetAddr; other networks are kept raw in `other`."""

    msgtype = b"addrv2"
    __slots__ = ("addrs", "other")

    def __init__(self, addrs: list[NetAddr] | None = None, other: list[tuple[int, bytes, int, int, int]] | None = None) -> None:
        self.addrs = addrs or []
        self.other = other or []  # (network id, address bytes, port, services, time)

    def serialize(self) -> bytes:
        import ipaddress

        out = [compact_size(len(self.addrs) + len(self.other))]
        for a in self.addrs:
            ip = ipaddress.ip_address(a.ip)
            net = BIP155_IPV4 if ip.version == 4 else BIP155_IPV6
            out.append(struct.pack("<I", a.time) + compact_size(a.services) + bytes([net]) + var_bytes(ip.packed)
                       + struct.pack(">H", a.port))
        for net, raw, port, services, t in self.other:
            out.append(struct.pack("<I", t) + compact_size(services) + bytes([net]) + var_bytes(raw) + struct.pack(">H", port))
        return b"".join(out)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_addrv2":
        import ipaddress

        addrs: list[NetAddr] = []
        other: list[tuple[int, bytes, int, int, int]] = []
        for _ in range(read_vector_len(f)):
            t = read_u32(f)
            services = read_compact_size(f)
            net = read_u8(f)
            raw = read_var_bytes(f, MAX_ADDRV2_ADDR_SIZE)
            port = struct.unpack(">H", read_exact(f, 2))[0]
            size = _BIP155_SIZES.get(net)
            if size is not None and len(raw) != size:
                raise DecodeError(f"addrv2 network {net} with {len(raw)}-byte address")
            if net == BIP155_IPV4:
                addrs.append(NetAddr(str(ipaddress.IPv4Address(raw)), port, services, t))
            elif net == BIP155_IPV6:
                addrs.append(NetAddr(str(ipaddress.IPv6Address(raw)), port, services, t))
            else:
                other.append((net, raw, port, services, t))
        return cls(addrs, other)


# --- inventory ---------------------------------------------------------------------------------


class CInv:
    __slots__ = ("type", "hash")

    def __init__(self, type: int, hash: bytes) -> None:
        self.type = type
        self.hash = hash

    def serialize(self) -> bytes:
        return struct.pack("<I", self.type) + self.hash

    @classmethod
    def deserialize(cls, f: BytesIO) -> "CInv":
        return cls(read_u32(f), read_exact(f, 32))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CInv) and other.type == self.type and other.hash == self.hash

    def __hash__(self) -> int:
        return hash((self.type, self.hash))

    def __repr__(self) -> str:
        return f"CInv({self.type}, {self.hash[::-1].hex()})"


class _InvMessage(Message):
    __slots__ = ("inv",)

    def __init__(self, inv: list[CInv] | None = None) -> None:
        self.inv = inv or []

    # inv is the most frequent message: both directions work on the bytes directly (no BytesIO,
    # no per-entry method call); the one-entry case that flood relay sends is the shortest path.
    def serialize(self) -> bytes:
        inv = self.inv
        if len(inv) == 1:
            return one_inv(inv[0].type, inv[0].hash)
        pack = U32.pack
        return compact_size(len(inv)) + b"".join([pack(i.type) + i.hash for i in inv])

    @classmethod
    def deserialize(cls, payload: bytes) -> "_InvMessage":
        n, pos = compact_size_at(payload)
        if n > DECODE_VECTOR_LIMIT:
            raise DecodeError(f"vector length {n} impossible in a 4 MB message")
        end = pos + 36 * n
        if len(payload) < end:
            raise DecodeError(f"truncated: wanted {36 * n} bytes, got {len(payload) - pos}")
        unpack = U32.unpack_from
        return cls([CInv(unpack(payload, i)[0], payload[i + 4:i + 36]) for i in range(pos, end, 36)])


U32 = struct.Struct("<I")


def one_inv(inv_type: int, h: bytes) -> bytes:
    """The payload of an inv, getdata or notfound with the one entry (`inv_type`, `h`)."""
    return b"\x01" + U32.pack(inv_type) + h


class msg_inv(_InvMessage):
    msgtype = b"inv"


class msg_getdata(_InvMessage):
    msgtype = b"getdata"


class msg_notfound(_InvMessage):
    msgtype = b"notfound"


# --- transactions ------------------------------------------------------------------------------


class msg_tx(Message):
    msgtype = b"tx"
    __slots__ = ("tx",)

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def serialize(self) -> bytes:
        return self.tx.raw

    @classmethod
    def deserialize(cls, payload: bytes) -> "msg_tx":
        """Parsed once per process, not once per node: a host's nodes each receive the same tx, and a
        Tx never changes once read (slots only, its hashes computed at parse time), so they share it."""
        tx = _TXS.get(payload) if type(payload) is bytes else None
        if tx is None:
            tx = cls._read(BytesIO(payload)).tx
            if type(payload) is bytes and len(payload) <= TX_CACHE_MAX_PAYLOAD:
                _TXS.put(payload, tx)  # full: cleared, and the current ones are parsed again at once
        return cls(tx)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_tx":
        return cls(Tx.read(f))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, msg_tx) and other.tx.raw == self.tx.raw


# Parsed transactions by payload (msg_tx.deserialize), bounded to TX_CACHE_ENTRIES x
# TX_CACHE_MAX_PAYLOAD bytes (4 MB), so a peer's unique spam only churns it. Parsing is two SHA-256d
# and ~20 reads; a burst at 10,000 nodes parsed each tx ~830 times per host process.
TX_CACHE_ENTRIES = 1024
TX_CACHE_MAX_PAYLOAD = 4096
_TXS: BoundedMemo[bytes, Tx] = BoundedMemo(TX_CACHE_ENTRIES)


# --- blocks ------------------------------------------------------------------------------------


class msg_block(Message):
    msgtype = b"block"
    __slots__ = ("block",)

    def __init__(self, block: Block) -> None:
        self.block = block

    def serialize(self) -> bytes:
        return self.block.raw

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_block":
        return cls(Block.read(f))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, msg_block) and other.block.raw == self.block.raw


class msg_getheaders(Message):
    msgtype = b"getheaders"
    __slots__ = ("version", "locator", "hash_stop")

    def __init__(self, version: int = PROTOCOL_VERSION, locator: list[bytes] | None = None,
                 hash_stop: bytes = b"\x00" * 32) -> None:
        self.version = version
        self.locator = locator or []
        self.hash_stop = hash_stop

    def serialize(self) -> bytes:
        return struct.pack("<I", self.version) + compact_size(len(self.locator)) + b"".join(self.locator) + self.hash_stop

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_getheaders":
        version = read_u32(f)
        locator = [read_exact(f, 32) for _ in range(read_vector_len(f))]
        return cls(version, locator, read_exact(f, 32))


class msg_getblocks(msg_getheaders):
    msgtype = b"getblocks"


class msg_headers(Message):
    msgtype = b"headers"
    __slots__ = ("headers",)

    def __init__(self, headers: list[BlockHeader] | None = None) -> None:
        self.headers = headers or []

    def serialize(self) -> bytes:
        return compact_size(len(self.headers)) + b"".join(h.serialize() + b"\x00" for h in self.headers)

    @classmethod
    def _read(cls, f: BytesIO) -> "msg_headers":
        headers = []
        for _ in range(read_vector_len(f)):
            headers.append(BlockHeader.read(f))
            read_compact_size(f)  # tx count, always 0 in headers
        return cls(headers)


class msg_dandeliontx(msg_tx):
    """Dandelion++ stem-phase transaction: private command, only sent to peers running our node."""

    msgtype = b"dandeliontx"


MESSAGEMAP: dict[bytes, type[Message]] = {
    cls.msgtype: cls
    for cls in (
        msg_version, msg_verack, msg_ping, msg_pong, msg_sendaddrv2, msg_wtxidrelay, msg_getaddr,
        msg_sendheaders, msg_mempool, msg_sendcmpct, msg_feefilter, msg_addr, msg_addrv2, msg_inv,
        msg_getdata, msg_notfound, msg_tx, msg_block, msg_getheaders, msg_getblocks, msg_headers,
        msg_dandeliontx,
    )
}


# The same map by command text: the receive path has the name as str (no encode per message).
MESSAGES_BY_NAME: dict[str, type[Message]] = {k.decode(): v for k, v in MESSAGEMAP.items()}


def decode(command: str, payload: bytes) -> Message | None:
    """Decode a payload; None for a command we do not know (counted and ignored by the caller)."""
    cls = MESSAGES_BY_NAME.get(command)
    if cls is None:
        return None
    try:
        return cls.deserialize(payload)
    except DecodeError:
        raise
    except (struct.error, ValueError, IndexError) as e:
        raise DecodeError(f"{command}: {e}") from e
