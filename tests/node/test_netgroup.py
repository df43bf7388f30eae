"""Netgroups: the testbed's configurable /8../32 IPv4 groups, and Core's rule that every local or
unroutable address shares one group (protocol.md §2.1, testbed adaptation 1)."""

from __future__ import annotations

import pytest

from harness_node.addr.netgroup import NET_IPV4, NET_IPV6, NET_UNROUTABLE, NetGroups

CORE_UNROUTABLE = [
    "127.0.0.1",  # loopback
    "0.1.2.3",  # 0/8 "this network"
    "10.1.2.3",  # RFC1918
    "172.16.0.1",  # RFC1918
    "172.31.255.254",  # RFC1918 (end of 172.16/12)
    "192.168.1.1",  # RFC1918
    "100.64.0.1",  # RFC6598 CGNAT
    "100.127.255.255",  # RFC6598 (end of 100.64/10)
    "169.254.10.10",  # RFC3927 link-local
    "198.18.0.1",  # RFC2544
    "198.19.255.1",  # RFC2544 (end of 198.18/15)
    "192.0.2.7",  # RFC5737 TEST-NET-1
    "198.51.100.7",  # RFC5737 TEST-NET-2
    "203.0.113.7",  # RFC5737 TEST-NET-3
    "255.255.255.255",  # INADDR_NONE is not a valid address
    "::",  # unspecified
    "::1",  # loopback
    "fe80::1",  # RFC4862 link-local
    "fc00::1",  # RFC4193 unique local
    "fd12:3456::1",  # RFC4193
    "2001:db8::1",  # RFC3849 documentation
    "2001:10::1",  # RFC4843 ORCHID
    "2001:20::1",  # RFC7343 ORCHIDv2
    "::ffff:10.0.0.1",  # an IPv4-mapped private address is that IPv4 address
]
CORE_ROUTABLE = ["8.8.8.8", "1.2.3.4", "100.128.0.1", "172.32.0.1", "198.20.0.1", "169.253.0.1", "2a01:4f8::1"]


def test_default_groups_loopback_by_slash16_and_treats_it_as_routable():
    ng = NetGroups()
    assert ng.group("127.5.1.1") == ng.group("127.5.200.9") == bytes([NET_IPV4, 127, 5])
    assert ng.group("127.5.1.1") != ng.group("127.6.1.1")
    assert all(ng.is_routable(ip) for ip in CORE_UNROUTABLE)


@pytest.mark.parametrize(
    "bits, same, different",
    [
        (8, ("10.1.0.1", "10.200.9.9"), ("10.1.0.1", "11.1.0.1")),
        (16, ("10.1.0.1", "10.1.250.9"), ("10.1.0.1", "10.2.0.1")),
        (24, ("10.1.2.1", "10.1.2.254"), ("10.1.2.1", "10.1.3.1")),
        (32, ("10.1.2.3", "10.1.2.3"), ("10.1.2.3", "10.1.2.4")),
    ],
)
def test_ipv4_prefix_width_decides_who_shares_a_group(bits, same, different):
    ng = NetGroups(bits=bits)
    assert ng.group(same[0]) == ng.group(same[1])
    assert ng.group(different[0]) != ng.group(different[1])
    assert len(ng.group(same[0])) == 1 + bits // 8


def test_unsupported_prefix_width_is_refused_with_its_name():
    with pytest.raises(ValueError, match="bits"):
        NetGroups(bits=12)


@pytest.mark.parametrize("ip", CORE_UNROUTABLE)
def test_core_rule_puts_every_unroutable_address_in_one_group(ip):
    ng = NetGroups(all_routable=False)
    assert not ng.is_routable(ip)
    assert ng.group(ip) == bytes([NET_UNROUTABLE])


@pytest.mark.parametrize("ip", CORE_ROUTABLE)
def test_core_rule_keeps_public_addresses_routable_and_apart(ip):
    ng = NetGroups(all_routable=False)
    assert ng.is_routable(ip)
    assert ng.group(ip) != bytes([NET_UNROUTABLE])


def test_ipv6_groups_are_slash32_and_he_net_slash36():
    ng = NetGroups()
    assert ng.group("2a01:4f8:1::1") == ng.group("2a01:4f8:ffff::2") == bytes([NET_IPV6, 0x2A, 0x01, 0x04, 0xF8])
    assert ng.group("2a01:4f8::1") != ng.group("2a01:4f9::1")
    # he.net: /36, the last half byte filled with ones as Core does
    assert ng.group("2001:470:1234::1") == bytes([NET_IPV6, 0x20, 0x01, 0x04, 0x70, 0x1F])
    assert ng.group("2001:470:1fff::1") == ng.group("2001:470:1000::1") != ng.group("2001:470:2000::1")


def test_ipv6_with_an_embedded_ipv4_address_groups_with_that_ipv4():
    ng = NetGroups()
    v4 = ng.group("1.2.3.4")
    assert ng.group("::ffff:1.2.3.4") == v4  # IPv4-mapped
    assert ng.group("2002:102:304::1") == v4  # 6to4
    assert ng.group("64:ff9b::102:304") == v4  # NAT64 well-known prefix
    assert ng.group("2001:0:4136:e378:8000:63bf:fefd:fcfb") == v4  # Teredo: client 1.2.3.4 inverted


def test_a_string_that_is_no_address_raises():
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        NetGroups().group("127.1")
    with pytest.raises(ValueError):
        NetGroups().is_routable("node-3")
