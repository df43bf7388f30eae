"""The node's side of a DNS seed query on the wire (RFC 1035 §4.1): one A question, and the A
records of its answer. Pure: bytes in, bytes or addresses out; bootstrap.py does the I/O. The
seeder's fast answer path (seeder/dnsfast.py) packs with the same header and record layout.

Why not a DNS library: the node asks one question and reads one record type, and dnspython's
general parser took ~870 us for a seed's answer of 29 A records (dnslib's ~430 us), against
~30 us here. 10,000 nodes bootstrapping parse 20,000-30,000 such answers while their host processes
form the graph on the same 2 cores: dnspython's parse was ~16 % of a worker's py-spy samples then
(docs/benchmarks.md, issue 17, nineteenth round). The seeder keeps dnslib, and the tests ask it
with dnspython and `dig`.
"""

from __future__ import annotations

import socket
import struct

TYPE_A = 1
CLASS_IN = 1
FLAG_QR = 0x8000  # a response
FLAG_TC = 0x0200  # truncated: ask again over TCP
FLAG_RD = 0x0100  # recursion desired, as any stub resolver sets it
RCODE_MASK = 0x000F
HEADER = struct.Struct(">HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount (RFC 1035 §4.1.1)
RR_FIXED = struct.Struct(">HHIH")  # type, class, ttl, rdlength
MAX_NAME = 255  # octets of a name on the wire (RFC 1035 §2.3.4)
MAX_LABEL = 63


class DNSWireError(ValueError):
    """A datagram or message that is not a well-formed answer to our question."""


def encode_name(name: str) -> bytes:
    """`x9.seed.testnet.` as length-prefixed labels ending in the root label."""
    out = bytearray()
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) <= MAX_LABEL:
            raise DNSWireError(f"label {label!r} of {name!r} must be 1..{MAX_LABEL} octets")
        out += bytes((len(raw),)) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DNSWireError(f"{name!r} is longer than {MAX_NAME} octets on the wire")
    return bytes(out)


def question(name: str) -> bytes:
    """The question section of an A query for `name` (what the answer must echo)."""
    return encode_name(name) + struct.pack(">HH", TYPE_A, CLASS_IN)


def encode_query(qid: int, name: str) -> bytes:
    """A standard query with one question, `name` IN A."""
    return HEADER.pack(qid, FLAG_RD, 1, 0, 0, 0) + question(name)


def _skip_name(data: bytes, pos: int) -> int:
    """The offset after the name at `pos` (labels, then the root label or a compression pointer,
    which is not followed: only the A records' data is read)."""
    for _ in range(MAX_NAME):  # each label takes at least one octet of a name's 255
        if pos >= len(data):
            raise DNSWireError("a name runs past the end of the message")
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:  # a pointer ends the name where it stands
            if pos + 2 > len(data):
                raise DNSWireError("a compression pointer is cut")
            return pos + 2
        if length & 0xC0:
            raise DNSWireError(f"label type {length >> 6:#x} is not defined")
        pos += 1 + length
    raise DNSWireError("a name has too many labels")


def is_truncated(data: bytes) -> bool:
    return len(data) >= HEADER.size and bool(HEADER.unpack_from(data)[1] & FLAG_TC)


def answers_to(data: bytes, qid: int, asked: bytes) -> bool:
    """Is `data` a response to our query `qid` whose question section is `asked`? (A datagram that
    is not is ignored, as dnspython's `ignore_unexpected` does; the seed may still answer.)"""
    if len(data) < HEADER.size:
        return False
    rid, flags, qdcount = HEADER.unpack_from(data)[:3]
    end = HEADER.size + len(asked)
    # names compare without regard to case (RFC 1035 §2.3.3)
    return rid == qid and bool(flags & FLAG_QR) and qdcount == 1 and data[HEADER.size:end].lower() == asked.lower()


def a_records(data: bytes, qid: int, asked: bytes) -> list[str]:
    """The IPv4 addresses of the A records in the answer section of a response to our query (none
    when its rcode is not NOERROR). DNSWireError when it is not such a response or is malformed."""
    if not answers_to(data, qid, asked):
        raise DNSWireError("not a response to this query")
    _, flags, _, ancount, _, _ = HEADER.unpack_from(data)
    if flags & RCODE_MASK:
        return []
    pos = HEADER.size + len(asked)
    ips: list[str] = []
    for _ in range(ancount):
        pos = _skip_name(data, pos)
        if pos + RR_FIXED.size > len(data):
            raise DNSWireError("a record's header is cut")
        rtype, rclass, _ttl, rdlength = RR_FIXED.unpack_from(data, pos)
        pos += RR_FIXED.size
        if pos + rdlength > len(data):
            raise DNSWireError("a record's data is cut")
        if rtype == TYPE_A and rclass == CLASS_IN:
            if rdlength != 4:
                raise DNSWireError(f"an A record of {rdlength} octets")
            ips.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlength
    return ips
