"""Self-advertisement and initial block download (protocol.md §2.3, testbed adaptation 8): with
`self_advertise_in_ibd: false` a node follows Core and announces its own address only once its tip
is recent (a fresh regtest node is in IBD: the genesis is from 2011); by default it announces anyway.
Real nodes on loopback: the receiver's addrman is what shows whether an announcement arrived."""

from __future__ import annotations

import time

from harness_node.chain.chain import Chain
from harness_node.wire.synthetic import make_block

DAY = 86400.0


def test_a_fresh_chain_is_in_initial_download_until_a_recent_tip_and_then_stays_out() -> None:
    chain = Chain()
    now = time.time()
    assert chain.in_initial_download(now, DAY)  # the 2011 genesis
    old = make_block(chain.tip.hash, 1, chain.tip.header.time)  # stamped now ...
    chain.add(old)
    assert chain.in_initial_download(now + 2 * DAY, DAY)  # ... which is two days old by then
    assert not chain.in_initial_download(now, DAY)  # recent: out of IBD
    assert not chain.in_initial_download(now + 30 * DAY, DAY)  # latched, as Core's
    assert not Chain().in_initial_download(time.time(), 1e12)  # a max tip age beyond 2011: out


# predicates run on the nodes' loop (lt.wait / lt.eval call them there)
def learned(node, ip: str) -> bool:
    return ip in {a.ip for a in node.connman.addrman.get_addr(0, 0)}


def getaddr_answered(node, ip: str) -> bool:
    """The node answered the getaddr of its inbound peer at `ip`: that peer's handshake addr (sent
    before its getaddr, on the same connection) has been processed too."""
    states = node.addrs.states
    return any(p.ip == ip and p.id in states and states[p.id].getaddr_answered for p in node.peers.values())


def test_cores_rule_holds_the_announcement_back_until_a_block_ends_ibd(lt, make_node) -> None:
    a = make_node()
    b = make_node(peering={"self_advertise_in_ibd": False}, connect=[f"{a.config.bind}:{a.port}"])
    lt.wait(lambda: getaddr_answered(a, b.config.bind), timeout=15, what="b's handshake and getaddr at a")
    assert not lt.eval(lambda: learned(a, b.config.bind))  # in IBD: b said nothing of itself
    assert lt.eval(lambda: b.chain.in_initial_download(b.clock(), b.timers.max_tip_age))

    lt.eval(b.mine_block)  # a block stamped now: b is out of IBD
    assert not lt.eval(lambda: b.chain.in_initial_download(b.clock(), b.timers.max_tip_age))
    c = make_node()
    lt.run(b.open_connection(c.config.bind, c.port, "manual"))
    lt.wait(lambda: learned(c, b.config.bind), timeout=15, what="b's announcement at its new peer c")


def test_by_default_a_node_in_ibd_announces_itself(lt, make_node) -> None:
    a = make_node()
    b = make_node(connect=[f"{a.config.bind}:{a.port}"])
    assert lt.eval(lambda: b.chain.in_initial_download(b.clock(), b.timers.max_tip_age))
    lt.wait(lambda: learned(a, b.config.bind), timeout=15, what="b's announcement at a")
