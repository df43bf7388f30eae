"""Bitcoin Core's handshake rules (protocol.md §1.4), on real loopback sockets."""

from __future__ import annotations

import pytest

from harness_node.wire.messages import msg_ping, msg_pong, msg_sendaddrv2, msg_verack, msg_wtxidrelay

from conftest import disconnect_reasons, peer_from


@pytest.mark.slow
def test_two_nodes_complete_the_handshake_and_record_each_other(lt, make_node):
    a = make_node()
    b = make_node(connect=[f"{a.config.bind}:{a.port}"], user_agent="/b:1/")
    lt.wait(lambda: any(p.ready for p in a.peers.values()) and any(p.ready for p in b.peers.values()),
            what="handshake")
    pa = peer_from(lt, a, b.config.bind)
    pb = peer_from(lt, b, a.config.bind)
    assert (pa.inbound, pa.kind, pa.user_agent, pa.version) == (True, "inbound", "/b:1/", 70016)
    assert (pb.inbound, pb.kind, pb.port) == (False, "manual", a.port)
    assert pa.wtxid_relay and pa.addrv2 and pb.prefers_headers
    lt.wait(lambda: pb.ping_time is not None, what="first ping answered")


def test_handshake_messages_come_in_cores_order(make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.send(peer.version_msg())
    peer.expect("verack")
    assert [name for name, _ in peer.inbox][:3] == ["version", "wtxidrelay", "sendaddrv2"]
    peer.send(msg_verack())
    peer.ping_roundtrip()


def test_a_peer_below_min_proto_version_is_disconnected(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.send(peer.version_msg(version=31799))
    peer.wait_closed()
    assert any("obsolete-version" in r for r in disconnect_reasons(lt, node))


def test_a_node_that_dials_itself_detects_the_nonce(lt, make_node):
    node = make_node()
    lt.eval(lambda: node.add_manual(node.config.bind, node.port))
    lt.wait(lambda: "self-connection" in [d.reason for d in node.disconnects], what="self-connection")
    assert lt.eval(lambda: not any(p.ready for p in node.peers.values()))


def test_wtxidrelay_or_sendaddrv2_after_verack_disconnects(lt, make_node, test_peers):
    node = make_node()
    for late, reason in ((msg_wtxidrelay(), "wtxidrelay-after-verack"), (msg_sendaddrv2(), "sendaddrv2-after-verack")):
        peer = test_peers(node)
        peer.handshake()
        peer.send(late)
        peer.wait_closed()
        assert reason in disconnect_reasons(lt, node)


def test_a_message_before_version_is_ignored_and_scored_1(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.send(msg_ping(7))
    lt.wait(lambda: node.stats.misbehaviour["pre-version-message"] == 1, what="score")
    assert peer_from(lt, node, peer.ip).score == 1
    peer.handshake()
    peer.ping_roundtrip()
    assert not any(m.nonce == 7 for n, m in peer.inbox if n == "pong")  # the early ping got no pong


def test_a_duplicate_version_is_ignored_and_scored_1(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send(peer.version_msg())
    peer.ping_roundtrip()
    assert peer_from(lt, node, peer.ip).score == 1


def test_answering_pings_keeps_a_peer_and_silence_gets_it_dropped(lt, make_node, test_peers):
    # ping every 0.1 s; an unanswered ping times out after 0.5 s
    node = make_node(timers={"ping_interval": 0.1, "ping_timeout": 0.5})
    honest, silent = test_peers(node), test_peers(node)
    honest.handshake()
    silent.handshake()
    for _ in range(8):  # eight pings = 0.8 s, longer than the timeout
        ping = honest.expect("ping", timeout=2)
        honest.send(msg_pong(ping.nonce))
    silent.wait_closed(timeout=5)
    assert "ping-timeout" in disconnect_reasons(lt, node)
    honest.ping_roundtrip()
    assert peer_from(lt, node, honest.ip).ping_time is not None


def test_a_peer_that_never_completes_the_handshake_times_out(lt, make_node, test_peers):
    node = make_node(time_scale=0.005)  # handshake_timeout 60 s -> 0.3 s
    assert node.timers.handshake_timeout == 0.3
    peer = test_peers(node)
    peer.wait_closed(timeout=5)
    assert "handshake-timeout" in disconnect_reasons(lt, node)
