"""Countermeasure profiles: `legacy` restores what Heilman et al. exploited in 0.9.3 (inbound peers'
addresses entering tried, no feelers, no anchors, no test-before-evict); `current` is today's Core;
single switches still override a profile. Live nodes on loopback, real handshakes."""

from __future__ import annotations

import pytest

from harness_node import names
from harness_node.config import NodeConfig
from harness_node.peering.peerconfig import Countermeasures
from harness_node.wire.codec import NetAddr
from harness_node.wire.messages import msg_verack


def test_legacy_turns_off_exactly_its_switches_and_single_switches_override():
    legacy = Countermeasures.from_dict("legacy")
    assert not legacy.inbound_not_tried and not legacy.feelers and not legacy.anchors and not legacy.test_before_evict
    assert legacy.netgroup_diversity and legacy.tried_table  # 0.9.3 had both
    assert Countermeasures.from_dict("current") == Countermeasures()
    mixed = Countermeasures.from_dict({"profile": "legacy", "feelers": True})
    assert mixed.feelers and not mixed.anchors
    assert {k for k, v in names.countermeasure_switches("legacy").items() if not v} == set(names.COUNTERMEASURE_PROFILES["legacy"])


@pytest.mark.parametrize("bad, message", [
    ("ancient", "profile must be one of ('current', 'legacy')"),
    ({"profile": "legacy", "feelers": "no"}, "feelers must be true or false"),
    ({"feeler": False}, "unknown field(s) ['feeler']"),
])
def test_bad_profiles_and_switches_name_the_field(bad, message):
    with pytest.raises(ValueError) as e:
        NodeConfig.from_dict({"peering": {"countermeasures": bad}})
    assert message in str(e.value)


def _handshake_from(test_peers, node, announce_port, announce_ip=None):
    peer = test_peers(node)
    version = peer.version_msg()
    version.addr_from = NetAddr(peer.ip if announce_ip is None else announce_ip, announce_port, version.services)
    peer.send(version)
    peer.expect("version")
    peer.expect("verack")
    peer.send(msg_verack())
    peer.ping_roundtrip()
    return peer


def test_under_legacy_an_inbound_peer_enters_tried_at_its_announced_port(lt, make_node, test_peers):
    node = make_node(peering={"countermeasures": "legacy"})
    peer = _handshake_from(test_peers, node, 18444)
    info = lt.eval(lambda: node.connman.addrman.find(peer.ip, 18444))
    assert info is not None and info.in_tried
    assert lt.eval(lambda: node.connman.addrman.counts()) == (0, 1)


@pytest.mark.parametrize("announce_ip, announce_port", [("0.0.0.0", 0), ("127.9.9.9", 18444)])
def test_under_legacy_an_inbound_peer_naming_no_address_or_another_stays_out(lt, make_node, test_peers,
                                                                            announce_ip, announce_port):
    """0.9.3 added an inbound peer only when its addr_from named the address it connected from: a
    crawler (empty addr_from, like today's Core) must not fill an empty addrman, whose fixed seeds
    it would then stand in for."""
    node = make_node(peering={"countermeasures": "legacy"})
    peer = _handshake_from(test_peers, node, announce_port, announce_ip)
    assert lt.eval(lambda: node.connman.addrman.counts()) == (0, 0)
    assert lt.eval(lambda: node.connman.addrman.find(peer.ip, 18444)) is None
    assert lt.eval(lambda: node.connman.addrman.find("127.9.9.9", 18444)) is None


def test_today_an_inbound_peer_never_enters_addrman(lt, make_node, test_peers):
    node = make_node()
    peer = _handshake_from(test_peers, node, 18444)
    assert lt.eval(lambda: node.connman.addrman.find(peer.ip, 18444)) is None
    assert lt.eval(lambda: node.connman.addrman.counts()) == (0, 0)
