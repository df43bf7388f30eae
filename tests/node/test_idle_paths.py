"""What a formed network does while idle, made cheaper for 10,000 nodes (issue 17), still does its
job: the connection manager's idle wait ends when addresses arrive, queued addresses still leave
on each peer's own send timer, and peers that come and go leave no timers behind. Real nodes and
peers on loopback."""

from __future__ import annotations

import time

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import NetAddr

from conftest import REGTEST_MAGIC, next_ip


def outbound_to(node, ip: str) -> bool:
    return any(not p.inbound and p.ip == ip and p.verack_received for p in node.peers.values())


def test_new_addresses_end_the_connection_managers_idle_wait(lt, make_node):
    target = make_node()
    node = make_node()  # nothing to dial: its outbound rounds back off, 0.5 s doubling to 16 s
    time.sleep(8.0)  # rounds of 0.5, 1, 2 and 4 s are over: it now waits 8 s, until ~15.5 s
    lt.eval(lambda: node.connman.addrman.add([NetAddr(target.config.bind, target.port, 9, int(time.time()))],
                                             source_ip="127.1.1.1"))
    asked = time.monotonic()
    lt.eval(node.connman.wake)  # as the addr service does when addresses arrive
    lt.wait(lambda: outbound_to(node, target.config.bind), timeout=10, what="a dial to the new address")
    assert time.monotonic() - asked < 2.5  # at once, not at the end of the backed-off wait


def test_a_queued_address_leaves_on_each_peers_send_timer(lt, make_node):
    # b advertises itself every ~0.3 s to every peer: queued for each, sent when that peer's addr
    # timer (exp, mean 0.2 s here) is due. a and c dial b, so b's direct announcement to new
    # outbound peers does not apply: only the timer can tell them.
    b = make_node(timers={"self_advertise_mean": 0.3, "addr_send_mean": 0.2})
    a = make_node(connect=[f"{b.config.bind}:{b.port}"])
    c = make_node(connect=[f"{b.config.bind}:{b.port}"])

    def learned(node) -> bool:
        return b.config.bind in {x.ip for x in node.connman.addrman.get_addr(0, 0)}

    lt.wait(lambda: learned(a) and learned(c), timeout=15, what="b's address at both of its inbound peers")


def test_peers_that_come_and_go_leave_the_addr_timers_bounded(lt, make_node):
    # A gone peer's send time stays in the addr service's heap until due (mean 10 min here): 60
    # peers that handshake and leave must not leave 60 entries behind (a hostile peer's churn would
    # grow it without bound); the heap is compacted once it holds twice the live peers + 32.
    node = make_node(timers={"addr_send_mean": 600.0})

    async def churn() -> None:
        for _ in range(60):
            peer = ClientPeer(REGTEST_MAGIC)
            await peer.connect(node.config.bind, node.port, 10, local_ip=next_ip())
            await peer.handshake(10)
            await peer.close()

    lt.run(churn())
    lt.wait(lambda: not node.peers, timeout=10, what="every churned peer detached")
    assert lt.eval(lambda: len(node.addrs._send_due)) <= 32 + 1
    # and a peer that stays still gets its timer
    stay = ClientPeer(REGTEST_MAGIC)
    lt.run(stay.connect(node.config.bind, node.port, 10, local_ip=next_ip()))
    lt.run(stay.handshake(10))
    lt.wait(lambda: len(node.addrs.states) == 1, timeout=10, what="the staying peer ready")
    assert any(pid in node.addrs.states for _, pid in lt.eval(lambda: list(node.addrs._send_due)))
    lt.run(stay.close())
