"""The address path's shortcuts (issue 17) give the same bytes and groups as the plain code.

`ip_to_bytes16`/`bytes16_to_ip` (inet_pton/inet_ntop for IPv4, memoised) are checked against
`ipaddress`; the shared netgroup memo against a fresh computation and against Core's rules in
test_netgroup.py; both memos against their bounds.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from harness_node.addr import netgroup
from harness_node.addr.netgroup import NetGroups
from harness_node.wire import codec
from harness_node.wire.codec import bytes16_to_ip, ip_to_bytes16

IPV6 = ["::1", "2001:db8::1", "2001:470:1:2::3", "fe80::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "1:0:0:1:0:0:0:1", "0:0:1::", "::ffff:0:1.2.3.4"]


def plain_to_bytes(ip: str) -> bytes:
    a = ipaddress.ip_address(ip)
    return b"\x00" * 10 + b"\xff\xff" + a.packed if a.version == 4 else a.packed


def plain_to_ip(b: bytes) -> str:
    if b[:12] == b"\x00" * 10 + b"\xff\xff":
        return str(ipaddress.IPv4Address(b[12:]))
    return str(ipaddress.IPv6Address(b))


def test_ip_bytes_match_ipaddress_both_ways_twice() -> None:
    rng = random.Random(17)
    ips = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)] + ["0.0.0.0", "255.255.255.255"]
    for ip in ips + IPV6:
        for _ in range(2):  # computed, then from the memo
            assert ip_to_bytes16(ip) == plain_to_bytes(ip), ip
            assert bytes16_to_ip(plain_to_bytes(ip)) == plain_to_ip(plain_to_bytes(ip)), ip


@pytest.mark.parametrize("bad", ["1.2.3", "01.2.3.4", "1.2.3.256", " 1.2.3.4", "1.2.3.4:80", "host", "", "1::2::3"])
def test_ip_to_bytes_refuses_what_ipaddress_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        ipaddress.ip_address(bad)
    with pytest.raises(ValueError):
        ip_to_bytes16(bad)


def test_codec_memos_stay_bounded() -> None:
    for i in range(codec._to_bytes.limit + 10):
        ip = str(ipaddress.IPv4Address(0x0B000000 + i))
        assert bytes16_to_ip(ip_to_bytes16(ip)) == ip
    assert len(codec._to_bytes) <= codec._to_bytes.limit and len(codec._to_ip) <= codec._to_ip.limit


@pytest.mark.parametrize("bits,all_routable", [(16, True), (8, True), (24, True), (16, False)])
def test_memoised_groups_are_the_computed_ones_for_every_rule(bits: int, all_routable: bool) -> None:
    ng, other = NetGroups(bits, all_routable), NetGroups(32 if bits != 32 else 8, not all_routable)
    rng = random.Random(bits)
    ips = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(500)] + IPV6 + ["127.0.0.1", "10.1.2.3"]
    for ip in ips:
        other.group(ip)  # another rule's memo must not answer for this one
        assert ng.group(ip) == ng._group(ip) == NetGroups(bits, all_routable)._group(ip), ip
        assert ng.group(ip) == ng._group(ip), ip  # from the memo
        assert ng.is_routable(ip) == NetGroups(bits, all_routable).is_routable(ip)
    assert NetGroups(16, False).group("127.0.0.1") == bytes([netgroup.NET_UNROUTABLE])
    assert NetGroups(16, True).group("127.3.4.5") == bytes([netgroup.NET_IPV4, 127, 3])


def test_a_bad_address_is_refused_whether_or_not_others_are_memoised() -> None:
    ng = NetGroups()
    ng.group("1.2.3.4")
    for bad in ("1.2.3", "nonsense"):
        with pytest.raises(ValueError):
            ng.group(bad)
        with pytest.raises(ValueError):
            ng.is_routable(bad)


def test_group_memo_stays_bounded() -> None:
    ng = NetGroups()
    for i in range(netgroup._GROUP_MEMOS[(16, True)].limit + 10):
        ng.group(str(ipaddress.IPv4Address(0x0C000000 + i)))
    assert len(netgroup._GROUP_MEMOS[(16, True)]) <= netgroup._GROUP_MEMOS[(16, True)].limit


def test_addr_entries_read_at_once_are_the_ones_read_one_by_one() -> None:
    from io import BytesIO

    from harness_node.wire.codec import DecodeError, NetAddr, read_timed_net_addrs
    from harness_node.wire.messages import msg_addr

    rng = random.Random(3)
    addrs = [NetAddr(str(ipaddress.IPv4Address(rng.getrandbits(32))), rng.randrange(65536), rng.getrandbits(64),
                     rng.getrandbits(32)) for _ in range(1000)] + [NetAddr("2001:db8::7", 8333, 9, 1)]
    # the wire format written by hand: time <I, services <Q, 16-byte ip, port >H
    raw = b"".join(struct.pack("<IQ", a.time, a.services) + plain_to_bytes(a.ip) + struct.pack(">H", a.port) for a in addrs)
    assert b"".join(a.serialize() for a in addrs) == raw
    one_by_one = [NetAddr.deserialize(BytesIO(raw[i:i + 30])) for i in range(0, len(raw), 30)]
    assert read_timed_net_addrs(BytesIO(raw), len(addrs)) == one_by_one == addrs
    assert read_timed_net_addrs(BytesIO(b""), 0) == []
    with pytest.raises(DecodeError):
        read_timed_net_addrs(BytesIO(raw[:-1]), len(addrs))  # truncated: refused, as one by one
    message = msg_addr(addrs[:1000])
    assert msg_addr.deserialize(message.serialize()).addrs == addrs[:1000]
