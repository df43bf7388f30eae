"""The reusable client peer (harness_node.net.client) against a real node on loopback."""

from __future__ import annotations

import asyncio
import struct

from conftest import REGTEST_MAGIC, disconnect_reasons, next_ip, peer_from

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import MAX_PROTOCOL_MESSAGE_LENGTH, frame
from harness_node.wire.messages import msg_inv, msg_ping, msg_tx
from harness_node.wire.synthetic import make_tx


class Collector(ClientPeer):
    def __init__(self, **kw):
        super().__init__(REGTEST_MAGIC, **kw)
        self.invs: list = []
        self.closes: list[str] = []

    def on_inv(self, msg: msg_inv) -> None:
        self.invs.extend(msg.inv)

    def on_close(self, reason: str) -> None:
        self.closes.append(reason)


def connect(lt, node, **kw) -> Collector:
    peer = Collector(**kw)
    ip = next_ip()
    lt.run(peer.connect(node.config.bind, node.port, local_ip=ip))
    return peer


def test_handshake_keepalive_callbacks_and_ping_barrier(lt, make_node):
    node = make_node(timers={"ping_interval": 0.3})
    peer = connect(lt, node, services=1, user_agent="/client-test:1/", start_height=7)
    theirs = lt.run(peer.handshake())
    assert theirs.user_agent == node.config.user_agent
    lt.run(peer.sync_with_ping())
    seen = peer_from(lt, node, peer.writer.get_extra_info("sockname")[0])
    assert lt.eval(lambda: (seen.user_agent, seen.services, seen.start_height, seen.verack_received)) == \
        ("/client-test:1/", 1, 7, True)
    # the node pings every 0.3 s: the client answers, so the node measures a round trip
    lt.wait(lambda: seen.ping_time is not None and seen.ping_time >= 0, what="node's ping answered")
    # on_<msg> callbacks: a tx injected into the node is announced to us
    tx = lt.eval(node.inject_tx)
    lt.run(peer.wait_until(lambda: any(i.hash in (tx.txid, tx.wtxid) for i in peer.invs), 5, what="tx inv"))
    lt.run(peer.close())
    assert peer.closes == ["closed by us"]
    lt.wait(lambda: not node.peers, what="node to see the close")


def test_a_bad_checksum_is_dropped_and_the_link_stays(lt, make_node):
    node = make_node()
    peer = connect(lt, node)
    lt.run(peer.handshake())
    tx = make_tx()
    peer.send_frame("tx", msg_tx(tx).serialize(), bad_checksum=True)
    lt.run(peer.sync_with_ping())
    assert lt.eval(lambda: node.stats.protocol_errors["bad-checksum"]) == 1
    assert not lt.eval(lambda: node.mempool.known(tx.txid))
    assert not peer.closed
    lt.run(peer.close())


def test_wrong_magic_and_an_oversized_length_close_the_link(lt, make_node):
    node = make_node()
    for kw, reason in ((dict(magic=b"\x0b\x11\x09\x07"), "bad-magic"),
                       (dict(length=MAX_PROTOCOL_MESSAGE_LENGTH + 1), "oversized-message")):
        peer = connect(lt, node)
        lt.run(peer.handshake())
        peer.send_frame("ping", struct.pack("<Q", 1), **kw)
        lt.run(peer.wait_closed())
        assert peer.close_reason == "closed by peer"
        lt.wait(lambda: node.stats.protocol_errors[reason] == 1, what=reason)


def test_a_message_before_version_is_scored_and_a_truncated_frame_is_never_processed(lt, make_node):
    node = make_node()
    peer = connect(lt, node, handshake_replies=False)
    peer.send(msg_ping(5))  # before version
    lt.run(peer.handshake())
    assert lt.eval(lambda: node.stats.misbehaviour["pre-version-message"]) == 1
    data = frame(REGTEST_MAGIC, "ping", struct.pack("<Q", 9))
    peer.send_raw(data[:-3])  # truncated: the node waits for the rest
    lt.run(peer.drain())
    lt.run(asyncio.sleep(0.2))
    assert peer.last_pong_nonce != 9
    lt.run(peer.close())
    lt.wait(lambda: not node.peers, what="close")
    assert any("closed by peer" in r for r in disconnect_reasons(lt, node))


def test_the_client_enforces_its_maximum_message_size(lt, make_node):
    node = make_node()
    peer = connect(lt, node, max_message=50)  # the node's version message is longer
    peer.send_version()
    lt.run(peer.wait_closed())
    assert peer.close_reason.startswith("framing: declared length")
    assert peer.their_version is None
