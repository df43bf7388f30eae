"""Netgroups and routability: which addresses Bitcoin Core treats as "the same network operator".

Core (netgroup.cpp ``GetGroup``, netaddress.cpp ``IsRoutable``) groups IPv4 by /16, IPv6 by /32
(he.net by /36), IPv6 addresses that embed an IPv4 address by that IPv4's /16, and puts every
local or otherwise unroutable address into ONE group (net class NET_UNROUTABLE, no address bytes).
A group is a byte string: the net class, then the prefix bytes.

Testbed adaptation 1 (protocol.md): our hosts live on loopback or private networks, which Core would
lump into that single unroutable group. So the IPv4 prefix width is a parameter (8/16/24/32 bits)
and, by default, every address counts as routable (as Warnet patches Core). With
``all_routable=False`` Core's rule applies unchanged.
"""

from __future__ import annotations

import ipaddress
import socket

from ..memo import BoundedMemo
from ..wire.codec import var_bytes

# Core's `enum Network` values used as the first group byte (netaddress.h).
NET_UNROUTABLE = 0
NET_IPV4 = 1
NET_IPV6 = 2

IPV6_GROUP_BITS = 32  # netgroup.cpp: "for the rest of the IPv6 network, use /32 groups"
HENET_GROUP_BITS = 36  # netgroup.cpp: he.net (2001:470::/32) uses /36 groups
VALID_IPV4_BITS = (8, 16, 24, 32)

_UNROUTABLE_GROUP = bytes([NET_UNROUTABLE])
_GROUP_MEMOS: dict[tuple[int, bool], BoundedMemo[str, bytes]] = {}  # (bits, all_routable) -> ip -> group
_GROUP_KEYS: BoundedMemo[bytes, bytes] = BoundedMemo()  # group -> group_key (a process has few groups)


def _v4(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv4Network(cidr)
    return int(net.network_address), int(net.netmask)


def _v6(cidr: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(cidr)


# IPv4 ranges for which Core's IsRoutable() is false (netaddress.cpp), as (network, mask) ints.
_IPV4_UNROUTABLE: tuple[tuple[int, int], ...] = tuple(
    _v4(c)
    for c in (
        "0.0.0.0/8",  # IsLocal
        "127.0.0.0/8",  # IsLocal (loopback)
        "10.0.0.0/8",  # RFC1918
        "172.16.0.0/12",  # RFC1918
        "192.168.0.0/16",  # RFC1918
        "198.18.0.0/15",  # RFC2544 benchmarking
        "169.254.0.0/16",  # RFC3927 link-local
        "100.64.0.0/10",  # RFC6598 shared address space (CGNAT)
        "192.0.2.0/24",  # RFC5737 TEST-NET-1
        "198.51.100.0/24",  # RFC5737 TEST-NET-2
        "203.0.113.0/24",  # RFC5737 TEST-NET-3
        "255.255.255.255/32",  # IsValid: INADDR_NONE
    )
)

# IPv6 ranges for which Core's IsRoutable() is false.
_IPV6_UNROUTABLE: tuple[ipaddress.IPv6Network, ...] = tuple(
    _v6(c)
    for c in (
        "::/128",  # IsValid: unspecified
        "::1/128",  # IsLocal
        "2001:db8::/32",  # IsValid: RFC3849 documentation
        "fe80::/64",  # RFC4862 link-local autoconfiguration
        "fc00::/7",  # RFC4193 unique local
        "2001:10::/28",  # RFC4843 ORCHID
        "2001:20::/28",  # RFC7343 ORCHIDv2
    )
)

_HENET = _v6("2001:470::/32")
_RFC6052 = _v6("64:ff9b::/96")  # well-known NAT64 prefix: embeds an IPv4 address
_RFC6145 = _v6("::ffff:0:0:0/96")  # IPv4-translated: embeds an IPv4 address
_RFC3964 = _v6("2002::/16")  # 6to4: embeds an IPv4 address in bytes 2..5
_RFC4380 = _v6("2001::/32")  # Teredo: embeds the inverted client IPv4 in bytes 12..15


def _parse(ip: str) -> bytes:
    """4 bytes for IPv4 (including IPv4-mapped IPv6, which Core stores as IPv4), else 16 bytes."""
    try:
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        raise ValueError(f"not an IPv4 or IPv6 address: {ip!r}") from None
    if packed[:12] == b"\x00" * 10 + b"\xff\xff":
        return packed[12:]
    return packed


def _ipv4_routable(packed: bytes) -> bool:
    n = int.from_bytes(packed, "big")
    return not any(n & mask == net for net, mask in _IPV4_UNROUTABLE)


def _linked_ipv4(addr: ipaddress.IPv6Address) -> bytes | None:
    """The IPv4 address embedded in an IPv6 one (Core's HasLinkedIPv4/GetLinkedIPv4), if any."""
    packed = addr.packed
    if addr in _RFC6052 or addr in _RFC6145:
        return packed[12:]
    if addr in _RFC3964:
        return packed[2:6]
    if addr in _RFC4380:
        return bytes(b ^ 0xFF for b in packed[12:])
    return None


class NetGroups:
    """Maps an IP to its netgroup, with a configurable IPv4 prefix and routability rule.

    ``bits``: IPv4 prefix length of a group (Core: 16). ``all_routable``: the testbed default
    True treats every address as routable with a normal prefix group; False applies Core's rule
    (local and unroutable addresses share one group, and addrman refuses them).
    """

    __slots__ = ("bits", "all_routable", "_v4_bytes", "_groups")

    def __init__(self, bits: int = 16, all_routable: bool = True) -> None:
        if bits not in VALID_IPV4_BITS:
            raise ValueError(f"netgroup bits must be one of {VALID_IPV4_BITS}, got {bits!r}")
        self.bits = bits
        self.all_routable = all_routable
        self._v4_bytes = bits // 8
        # addrman asks for the group of every address it hashes into a bucket, several times per
        # address of every addr message; a group depends only on the ip and the rule, so every
        # NetGroups of a process with the same rule shares one memo (bounded; cleared when full)
        self._groups = _GROUP_MEMOS.setdefault((bits, all_routable), BoundedMemo())

    def __repr__(self) -> str:
        return f"NetGroups(bits={self.bits}, all_routable={self.all_routable})"

    @property
    def config(self) -> dict[str, object]:
        """What determines grouping; persisted with addrman so a changed rule re-buckets."""
        return {"bits": self.bits, "all_routable": self.all_routable}

    def is_routable(self, ip: str) -> bool:
        if self.all_routable and ip in self._groups:  # parsed before: a valid address
            return True
        packed = _parse(ip)
        if self.all_routable:
            return True
        if len(packed) == 4:
            return _ipv4_routable(packed)
        addr = ipaddress.IPv6Address(packed)
        return not any(addr in net for net in _IPV6_UNROUTABLE)

    def group(self, ip: str) -> bytes:
        group = self._groups.get(ip)
        return group if group is not None else self._groups.put(ip, self._group(ip))

    def group_key(self, ip: str) -> bytes:
        """The group as addrman hashes it (Core serialises the vector: its length, then the bytes).
        Every address placed hashes two of these, so each group's is made once per process (keyed
        by the group: a memo by ip held 10,000 more entries in each host process of 10,000 nodes)."""
        group = self.group(ip)
        key = _GROUP_KEYS.get(group)
        return key if key is not None else _GROUP_KEYS.put(group, var_bytes(group))

    def _group(self, ip: str) -> bytes:
        packed = _parse(ip)
        if len(packed) == 4:
            if not self.all_routable and not _ipv4_routable(packed):
                return _UNROUTABLE_GROUP
            return bytes([NET_IPV4]) + packed[: self._v4_bytes]
        addr = ipaddress.IPv6Address(packed)
        if not self.all_routable and any(addr in net for net in _IPV6_UNROUTABLE):
            return _UNROUTABLE_GROUP
        linked = _linked_ipv4(addr)
        if linked is not None:
            # Core groups these by the embedded IPv4 address, with the IPv4 net class.
            return bytes([NET_IPV4]) + linked[: self._v4_bytes]
        nbits = HENET_GROUP_BITS if addr in _HENET else IPV6_GROUP_BITS
        whole, rest = divmod(nbits, 8)
        out = bytes([NET_IPV6]) + packed[:whole]
        if rest:
            # Core keeps the top `rest` bits of the next byte and sets the remaining bits to 1.
            out += bytes([packed[whole] | ((1 << (8 - rest)) - 1)])
        return out
