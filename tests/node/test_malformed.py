"""Framing and payload abuse: the offender gets what Core gives it, honest peers keep being served."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness_node.wire.codec import compact_size, frame
from harness_node.wire.messages import MESSAGEMAP

from conftest import REGTEST_MAGIC, disconnect_reasons, peer_from


def test_wrong_magic_disconnects(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send_raw(frame(bytes.fromhex("dab5bffa"), "ping", struct.pack("<Q", 1)))
    peer.wait_closed()
    assert node.stats.protocol_errors["bad-magic"] == 1
    assert any(r.startswith("framing: wrong magic") for r in disconnect_reasons(lt, node))


def test_a_bad_checksum_is_dropped_silently_and_the_peer_stays(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    bad = bytearray(frame(REGTEST_MAGIC, "ping", struct.pack("<Q", 99)))
    bad[20] ^= 0xFF  # first checksum byte
    peer.send_raw(bytes(bad))
    peer.ping_roundtrip()
    assert not any(n == "pong" and m.nonce == 99 for n, m in peer.inbox)
    assert node.stats.protocol_errors["bad-checksum"] == 1
    assert peer_from(lt, node, peer.ip).score == 0


def test_an_oversized_declared_length_disconnects(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    header = REGTEST_MAGIC + b"tx".ljust(12, b"\0") + struct.pack("<I", 4_000_001) + b"\0" * 4
    peer.send_raw(header)
    peer.wait_closed()
    assert node.stats.protocol_errors["oversized-message"] == 1


def test_unknown_commands_are_counted_and_ignored(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send_raw(frame(REGTEST_MAGIC, "protoconf", b"\x01\x02"))
    peer.send_raw(frame(REGTEST_MAGIC, "authch", b""))
    peer.ping_roundtrip()
    assert node.stats.protocol_errors["unknown-command"] == 2
    assert peer_from(lt, node, peer.ip).score == 0


def test_a_malformed_payload_is_a_protocol_error_and_the_peer_stays(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    peer.send_raw(frame(REGTEST_MAGIC, "ping", b"\x01\x02\x03"))  # truncated nonce
    peer.send_raw(frame(REGTEST_MAGIC, "inv", compact_size(3) + b"\x01" * 40))  # truncated vector
    peer.ping_roundtrip()
    assert node.stats.protocol_errors["malformed-message"] == 2
    assert peer_from(lt, node, peer.ip).score == 0


def test_random_junk_never_hurts_an_honest_peer(lt, make_node, test_peers):
    node = make_node()
    honest = test_peers(node)
    honest.handshake()
    commands = sorted(c.decode() for c in MESSAGEMAP)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(handshake=st.booleans(), raw=st.binary(max_size=300),
           framed=st.lists(st.tuples(st.sampled_from(commands), st.binary(max_size=200)), max_size=4))
    def offender(handshake: bool, raw: bytes, framed: list[tuple[str, bytes]]) -> None:
        attacker = test_peers(node)
        try:
            if handshake:
                attacker.handshake()
            for command, payload in framed:  # well-framed, junk payloads: decode errors, not framing errors
                attacker.send_raw(frame(REGTEST_MAGIC, command, payload))
            attacker.send_raw(raw)  # raw junk: may break framing (then the node closes)
        except OSError:
            pass  # the node already closed on us
        finally:
            attacker.close()
        honest.ping_roundtrip()

    offender()
    assert peer_from(lt, node, honest.ip) is not None


def test_five_oversized_invs_ban_the_sender_and_its_reconnect_is_refused(lt, make_node, test_peers):
    node = make_node()
    peer = test_peers(node)
    peer.handshake()
    payload = compact_size(50_001) + (struct.pack("<I", 1) + b"\x11" * 32) * 50_001
    msg = frame(REGTEST_MAGIC, "inv", payload)
    peer.send_raw(msg)
    peer.ping_roundtrip()
    assert peer_from(lt, node, peer.ip).score == 20
    for _ in range(4):
        peer.send_raw(msg)
    peer.wait_closed(timeout=10)
    assert lt.eval(lambda: node.is_banned(peer.ip))
    assert "misbehaviour: inv-too-large" in disconnect_reasons(lt, node)
    assert node.stats.misbehaviour["inv-too-large"] == 5
    again = test_peers(node, ip=peer.ip)
    again.wait_closed()
    assert node.stats.connections[("inbound", "refused-banned")] == 1
    # the ban list says when the peer first misbehaved (the controller's time to ban starts there)
    (ban,) = lt.eval(node.list_bans)
    assert ban["reason"] == "inv-too-large" and ban["first_misbehaviour"] <= ban["created"]
