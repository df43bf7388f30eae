"""The seed answer without dnslib: parse the one query shape nodes send and pack its reply by hand.

When 10,000 nodes bootstrap at once the seeder answers ~40,000 `x9.<zone> A` queries within a minute
while it crawls the same nodes. Through dnslib one such answer cost ~550 µs (a parsed record object,
an RR object per address, a generic packer with name compression), so the seeder's loop ran 96 % busy
and nodes timed out (docs/benchmarks.md, issue 17). This module handles only the plain case:
a standard query with one question and no other records, class IN, type A or AAAA. Anything else
returns None here and takes dnslib's path in dnsserver.py, which stays the reference: a test checks
that both produce the same bytes for the same answer.

The reply is the query's header (flags as dnslib's `reply()` leaves them), its question verbatim,
the answer records with their owner compressed to the question name (`c0 0c`, as dnslib does) and
the authority section, which the caller packs once per question with dnslib and reuses: its names
only point into the question, so the answers in between do not change its bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# RFC 1035's header and record layout, as the node's side of the query reads them
from ..addr.dnswire import CLASS_IN, FLAG_QR as QR, FLAG_TC as TC, HEADER, RCODE_MASK as RCODE, RR_FIXED
from ..addr.dnswire import TYPE_A as QTYPE_A

QTYPE_AAAA = 28
OWNER_IS_QNAME = b"\xc0\x0c"  # a pointer to the question's name, which starts right after the header

OPCODE, AA, RA = 0x7800, 0x0400, 0x0080  # RD and the rest are echoed
_FAMILY = {QTYPE_A: (socket.AF_INET, 4), QTYPE_AAAA: (socket.AF_INET6, 16)}


@dataclass(frozen=True, slots=True)
class SimpleQuery:
    id: int
    flags: int
    question: bytes  # name + type + class, as the client sent them
    labels: tuple[bytes, ...]  # lower-cased, for matching only; the reply echoes `question`
    qtype: int


def parse_simple(data: bytes) -> SimpleQuery | None:
    """The query if it is a plain one-question A/AAAA IN query, else None (dnslib takes it)."""
    if len(data) < HEADER.size + 5:
        return None
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & (QR | OPCODE) or (qd, an, ns, ar) != (1, 0, 0, 0):
        return None
    labels = []
    pos = HEADER.size
    while True:
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n > 63 or pos + 1 + n >= len(data):  # a pointer (never valid in a question) or truncated
            return None
        labels.append(data[pos + 1:pos + 1 + n].lower())
        pos += 1 + n
    if pos - HEADER.size > 255 or pos + 4 != len(data):  # RFC 1035 name limit; nothing may follow
        return None
    qtype, qclass = struct.unpack_from(">HH", data, pos)
    if qclass != CLASS_IN or qtype not in _FAMILY:
        return None
    return SimpleQuery(qid, flags, data[HEADER.size:], tuple(labels), qtype)


def pack_answer(query: SimpleQuery, addresses: list[str], ttl: int, authority: bytes) -> bytes:
    """The NOERROR reply with `addresses` (all of the query's family) and one authority record."""
    # dnslib's reply(ra=0, aa=1) keeps the query's bits, sets QR and AA; the responder clears TC and RCODE
    flags = (query.flags | QR | AA) & ~(RA | TC | RCODE)
    family, size = _FAMILY[query.qtype]
    fixed = OWNER_IS_QNAME + RR_FIXED.pack(query.qtype, CLASS_IN, ttl, size)
    parts = [HEADER.pack(query.id, flags, 1, len(addresses), 1, 0), query.question]
    for ip in addresses:
        parts.append(fixed)
        parts.append(socket.inet_pton(family, ip))
    parts.append(authority)
    return b"".join(parts)
