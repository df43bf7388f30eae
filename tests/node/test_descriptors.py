"""The nodes of one process share its open-files limit as Core shares its own (peering/descriptors.py):
each node sets its listener and outbound slots aside, inbound links take what is left, and a failed
dial waits for the connection manager's next round instead of being retried at once."""

from __future__ import annotations

import socket
import time

from harness_node.peering.descriptors import PROCESS_RESERVE, budget_for
from harness_node.wire.codec import NetAddr

from conftest import next_ip, peer_from

OWN_DESCRIPTORS = 1 + 8 + 2 + 1  # listener, 8 full-relay, 2 block-relay, the feeler


def test_each_node_sets_its_own_descriptors_aside_once_and_gives_them_back_when_it_stops(lt, make_node):
    a = make_node()
    budget = lt.eval(lambda: budget_for(lt.loop))
    assert budget.reserved == PROCESS_RESERVE + OWN_DESCRIPTORS
    b = make_node(connect=[])
    assert budget.reserved == PROCESS_RESERVE + 2 * OWN_DESCRIPTORS
    lt.run(a.stop())
    assert budget.reserved == PROCESS_RESERVE + OWN_DESCRIPTORS
    lt.run(a.start())  # a restart takes the share again, and asking again holds it once
    lt.eval(lambda: a.connman.hold_descriptors(listeners=1, manual=0))
    assert budget.reserved == PROCESS_RESERVE + 2 * OWN_DESCRIPTORS
    lt.run(b.stop())
    assert budget.reserved == PROCESS_RESERVE + OWN_DESCRIPTORS


def test_a_node_told_whom_to_connect_to_holds_no_automatic_slots(lt, make_node):
    """Core's -connect: no automatic outbound and no feeler, so only the listener and the manual
    peers are set aside (else 1,000 such nodes in a process spend its whole budget on slots)."""
    budget = lt.eval(lambda: budget_for(lt.loop))
    before = budget.reserved
    node = make_node(connect=["127.0.0.1:1", "127.0.0.1:2"])
    assert budget.reserved == before + 1 + 2
    lt.run(node.stop())
    assert budget.reserved == before


def test_when_the_process_share_is_spent_a_node_with_free_slots_refuses_inbound_and_still_dials(lt, make_node, test_peers):
    a, b = make_node(), make_node()
    budget = lt.eval(lambda: budget_for(lt.loop))
    budget.limit = budget.reserved + 2  # room for two inbound links in the whole process
    first, second = test_peers(a), test_peers(b)
    first.handshake()
    second.handshake()
    lt.wait(lambda: len(a.inbound_peers()) == 1 and len(b.inbound_peers()) == 1, what="both admitted")
    assert budget.inbound == 2
    late = test_peers(a)  # a has 113 free inbound slots, its process none
    late.wait_closed()
    assert lt.eval(lambda: (a.connman.counters["inbound_refused_descriptors"], a.stats.connections[("inbound", "refused-full")])) == (1, 1)
    assert lt.eval(lambda: len(a.inbound_peers())) == 1

    # outbound slots were set aside: a still dials (a listener that accepts and stays silent)
    listener = socket.create_server((next_ip(), 0))
    try:
        ip, port = listener.getsockname()
        peer = lt.run(a.open_connection(ip, port, "outbound-full-relay"))
        assert not peer.inbound and budget.inbound == 2
    finally:
        listener.close()

    first.close()  # an inbound link that goes gives its room back
    lt.wait(lambda: budget.inbound == 1, what="the closed link counted out")
    test_peers(a).handshake()
    lt.wait(lambda: len(a.inbound_peers()) == 1, what="a newcomer admitted again")
    assert budget.inbound == 2


def test_a_dial_that_fails_at_once_waits_for_the_next_round(lt, make_node):
    # 60 addresses on ports nobody listens on: each dial is refused within a millisecond. Woken at
    # once, the loop dialled them back to back (60 in a few ms); Core dials once per 500 ms round.
    node = make_node(peering={"block_relay": 0}, timers={"connect_loop": 0.2})
    closed = [NetAddr(f"127.{170 + i // 30}.{i % 30}.1", 9, 9, int(time.time())) for i in range(60)]
    lt.eval(lambda: node.connman.addrman.add(closed, source_ip="127.99.0.1"))
    lt.wait(lambda: node.connman.counters["dial_failures"] >= 1, what="a first failed dial")
    start = lt.eval(lambda: node.connman.counters["dials"])
    time.sleep(1.0)
    dials = lt.eval(lambda: node.connman.counters["dials"]) - start
    assert 1 <= dials <= 1.0 / 0.2 + 2, f"{dials} dials in 1 s at one round per 0.2 s"
    assert peer_from(lt, node, "127.170.0.1") is None
