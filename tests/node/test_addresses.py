"""Planned (protocol) addresses vs transport endpoints, on real loopback sockets.

A host process runs three nodes. Their planned addresses (127.250.x.y) are bound by nobody: the
nodes listen on other loopback addresses, two of them packed on one transport IP (a pod hosting
two nodes). `endpoints` tells a dialler where a planned address is reached, `inbound_hosts` tells a
listener which planned addresses a transport IP hosts. Peers, bans and addrman must only ever see
the planned addresses.
"""

from __future__ import annotations

import os

import pytest
from conftest import next_ip

from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.net.sandbox import DialRefused
from harness_node.wire.codec import NetAddr
from tests.p2p_peer import BlockingPeer

PLANNED_NET = f"127.250.{os.getpid() % 250}"  # nobody binds these
P2P_PORT = 18444


def planned(n: int) -> str:
    return f"{PLANNED_NET}.{n}"


@pytest.fixture
def packed(lt):
    """b listens alone on transport tb; a1 and a2 share transport ta (ports 18444 and 18445)."""
    ta, tb = next_ip(), next_ip()
    pa1, pa2, pb = planned(1), planned(2), planned(3)
    fast = {"ping_interval": 3600.0, "feeler_mean": 3600.0}
    # b's netgroups are /32: a1 and a2 share a /16, and Core files two addresses of one group from
    # sources of one group in the same new bucket, where they take the same slot 1 time in 64 and
    # the second is dropped (as Core drops it; seen in CI as b "never learning" a2)
    b = NodeConfig(name="b", bind=tb, port=P2P_PORT, address=pb, timers=fast, peering={"netgroup_bits": 32},
                   inbound_hosts={ta: [pa1, pa2]},
                   endpoints={pa1: f"{ta}:{P2P_PORT}", pa2: f"{ta}:{P2P_PORT + 1}"})
    a1 = NodeConfig(name="a1", bind=ta, port=P2P_PORT, address=pa1, timers=fast,
                    connect=[f"{pb}:{P2P_PORT}"], endpoints={pb: f"{tb}:{P2P_PORT}"})
    a2 = NodeConfig(name="a2", bind=ta, port=P2P_PORT + 1, address=pa2, timers=fast,
                    connect=[f"{pb}:{P2P_PORT}"], endpoints={pb: f"{tb}:{P2P_PORT}"})
    host = Host([b, a1, a2])
    lt.run(host.start())
    yield host, ta, tb
    lt.run(host.stop())


def ready_peer_ips(lt, node) -> set[str]:
    return lt.eval(lambda: {p.ip for p in node.peers.values() if p.verack_received})


def test_peers_know_each_other_by_planned_address_only(lt, packed):
    host, ta, tb = packed
    b, a1, a2 = host.nodes["b"], host.nodes["a1"], host.nodes["a2"]
    lt.wait(lambda: {p.ip for p in b.peers.values() if p.verack_received} == {planned(1), planned(2)},
            timeout=15, what="b to see a1 and a2 by their planned addresses")
    assert ready_peer_ips(lt, a1) == {planned(3)}
    assert ready_peer_ips(lt, a2) == {planned(3)}
    assert ta not in ready_peer_ips(lt, b)  # the transport IP never shows up as a peer
    # a1 and a2 advertise themselves to b: b's addrman learns the planned addresses
    lt.wait(lambda: {planned(1), planned(2)} <= {a.ip for a in b.connman.addrman.get_addr(0, 0)},
            timeout=15, what="b's addrman to hold a1 and a2")
    assert not {ta, tb} & {a.ip for a in b.connman.addrman.get_addr(0, 0)}
    assert lt.eval(lambda: b.status()["address"]) == f"{planned(3)}:{P2P_PORT}"


def test_a_ban_hits_one_planned_address_not_the_whole_transport_ip(lt, packed):
    host, ta, tb = packed
    b, a1 = host.nodes["b"], host.nodes["a1"]
    lt.wait(lambda: len([p for p in b.peers.values() if p.verack_received]) == 2, timeout=15, what="two peers")
    lt.eval(lambda: b.ban(planned(1), "test"))
    assert lt.eval(lambda: [x["address"] for x in b.list_bans()]) == [f"{planned(1)}/32"]
    lt.wait(lambda: {p.ip for p in b.peers.values()} == {planned(2)}, timeout=10,
            what="a1 dropped, a2 (same transport IP) kept")
    # a1 keeps redialling; b refuses it by its planned address, and keeps a2
    lt.wait(lambda: b.stats.connections[("inbound", "refused-banned")] >= 1, timeout=15, what="a1 refused")
    assert ready_peer_ips(lt, b) == {planned(2)}
    assert lt.eval(lambda: b.is_banned(planned(1)) and not b.is_banned(ta))
    assert ready_peer_ips(lt, a1) == set()


@pytest.mark.parametrize("claimed", [planned(7), "0.0.0.0"])
def test_an_inbound_peer_naming_an_address_its_transport_does_not_host_is_dropped(lt, packed, claimed):
    host, ta, tb = packed
    b = host.nodes["b"]
    peer = BlockingPeer(tb, P2P_PORT, local_ip=ta, addr_from=NetAddr(claimed, P2P_PORT))
    try:
        peer.send(peer.peer.version_message())
        peer.wait_closed(10)
        assert not any(n == "verack" for n, _ in peer.inbox)
    finally:
        peer.close()
    assert lt.eval(lambda: b.stats.protocol_errors["unattributed-inbound"]) >= 1
    assert claimed not in lt.eval(lambda: {p.ip for p in b.peers.values()})


def test_an_inbound_peer_naming_a_hosted_address_is_that_address(lt, packed):
    host, ta, tb = packed
    b = host.nodes["b"]
    peer = BlockingPeer(tb, P2P_PORT, local_ip=ta, addr_from=NetAddr(planned(2), P2P_PORT + 1))
    try:
        peer.send(peer.peer.version_message())
        peer.expect("verack", 10)
        assert planned(2) in lt.eval(lambda: [p.ip for p in b.peers.values() if p.version_received])
    finally:
        peer.close()


def test_a_transport_ip_hosting_one_planned_address_is_that_address_from_the_start(lt, make_node, test_peers):
    transport = next_ip()
    node = make_node(inbound_hosts={transport: [planned(5)]})
    peer = test_peers(node, ip=transport)
    peer.handshake()
    assert planned(5) in lt.eval(lambda: [p.ip for p in node.peers.values()])


def test_dialling_a_planned_address_goes_to_its_endpoint_and_the_sandbox_checks_both(lt, make_node):
    target = make_node()
    dialler = make_node(endpoints={planned(6): f"{target.config.bind}:{target.port}"},
                        allowlist=[f"{PLANNED_NET}.0/24", f"{target.config.bind}/32"])
    peer = lt.run(dialler.open_connection(planned(6), P2P_PORT))
    assert (peer.ip, peer.port) == (planned(6), P2P_PORT)
    lt.wait(lambda: peer.verack_received, what="handshake through the endpoint")
    # an endpoint outside the allowlist is refused even though the planned address is allowed
    other = make_node(endpoints={planned(8): "10.1.2.3:18444"}, allowlist=[f"{PLANNED_NET}.0/24"])
    with pytest.raises(DialRefused):
        lt.run(other.open_connection(planned(8), P2P_PORT))


@pytest.mark.parametrize("field,value,needle", [
    ("endpoints", {"not-an-ip": "127.0.0.1:1"}, "endpoints: key 'not-an-ip'"),
    ("endpoints", {"127.0.0.9": "nowhere"}, "endpoints['127.0.0.9']"),
    ("inbound_hosts", {"127.0.0.9": []}, "inbound_hosts['127.0.0.9'] must be a non-empty list"),
    ("inbound_hosts", {"127.0.0.9": ["x"]}, "inbound_hosts['127.0.0.9'][0] 'x'"),
    ("address", "nope", "address must be an IP address"),
])
def test_bad_address_maps_are_refused_with_the_field_named(field, value, needle):
    with pytest.raises(ValueError) as e:
        NodeConfig(**{field: value})
    assert needle in str(e.value)


def test_an_inbound_link_is_listed_only_once_its_version_names_a_hosted_address(lt, packed):
    """Between its TCP accept and its version, a link from a transport IP that packs several planned
    addresses has only the transport address; /status leaves it out until the version says which
    planned address it is (a k8s test polled in that window and saw the pod IP among the peers)."""
    host, ta, tb = packed
    b = host.nodes["b"]
    lt.wait(lambda: len([p for p in b.peers.values() if p.verack_received]) == 2, timeout=15, what="a1 and a2")
    peer = BlockingPeer(tb, P2P_PORT, local_ip=ta, addr_from=NetAddr(planned(2), P2P_PORT + 1))
    try:
        lt.wait(lambda: any(p.ip == ta for p in b.peers.values()), timeout=10, what="the connection accepted")
        listed = lt.eval(lambda: [p["address"] for p in b.status()["peers"]])
        assert not any(a.startswith(f"{ta}:") for a in listed), listed
        assert lt.eval(lambda: b.status(peer_list=False)["peer_counts"]["inbound"]) == 3  # still a connection
        peer.send(peer.peer.version_message())
        peer.expect("verack", 10)
        listed = lt.eval(lambda: [p["address"] for p in b.status()["peers"]])
        assert sum(a.startswith(f"{planned(2)}:") for a in listed) == 2, listed  # a2's own link and this one
    finally:
        peer.close()


def test_nodes_with_different_allowlists_keep_their_own_verdicts():
    """Sandboxes with one allowlist share their memo of verdicts (a host process's nodes ask about
    the same addresses); a different allowlist must never read another's answers."""
    from harness_node.net.sandbox import Sandbox

    loopback, private, loopback_too = Sandbox(["127.0.0.0/8"]), Sandbox(["10.0.0.0/8"]), Sandbox(["127.0.0.0/8"])
    for first, second in ((loopback, private), (private, loopback)):
        assert first.allows("10.9.9.9") is (first is private)
        assert second.allows("10.9.9.9") is (second is private)
        assert loopback_too.allows("10.9.9.9") is False and loopback_too.allows("127.9.9.9") is True
