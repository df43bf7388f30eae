"""The host's dial gate (docs/protocol.md, testbed adaptation 8): at most `limit` outbound
handshakes of a host process at once, the rest queued; a place is freed by the verack, the close or
`hold_max`, so a peer that never answers holds none for long. Real sockets, a real Host."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.net.dialgate import DialGate

from conftest import next_ip

PORT = 18444


def test_the_gate_admits_its_limit_and_queues_the_rest_in_order() -> None:
    async def main() -> None:
        gate = DialGate(limit=2, hold_max=10)
        a, b = await gate.enter(), await gate.enter()
        third, fourth = asyncio.ensure_future(gate.enter()), asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0.05)
        assert not third.done() and not fourth.done() and gate.inside == 2 and gate.waited == 2
        a.release()
        a.release()  # idempotent: the close after a verack releases again
        c = await asyncio.wait_for(third, 1)
        await asyncio.sleep(0.05)
        assert not fourth.done() and gate.inside == 2  # one release let exactly one through
        b.release()
        d = await asyncio.wait_for(fourth, 1)
        c.release()
        d.release()
        assert gate.inside == 0

    asyncio.run(main())


def test_a_held_place_frees_itself_after_hold_max() -> None:
    async def main() -> None:
        gate = DialGate(limit=1, hold_max=0.2)
        held = await gate.enter()
        held.hold(asyncio.get_running_loop(), gate.hold_max)  # a handshake that never ends
        t0 = time.monotonic()
        nxt = await asyncio.wait_for(gate.enter(), 2)
        assert 0.15 < time.monotonic() - t0 < 1.5
        nxt.release()
        held.release()  # the close, later: no second place given back
        assert gate.inside == 0

    asyncio.run(main())


def test_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError):
        DialGate(limit=0)


def test_a_host_forms_its_graph_through_a_narrow_gate_and_leaks_no_place(lt) -> None:
    ips = [next_ip() for _ in range(12)]
    # every node dials the next four (a ring of chords): 48 handshakes through 2 places
    configs = [NodeConfig(name=f"g{i}", bind=ip, port=PORT, seed=i, time_scale=0.1,
                          connect=[f"{ips[(i + k) % 12]}:{PORT}" for k in range(1, 5)]) for i, ip in enumerate(ips)]
    host = Host(configs)
    gate = DialGate(limit=2, hold_max=60)  # only a verack or a close gives a place back here
    host.dial_gate = gate
    for node in host.nodes.values():
        node.dial_gate = gate
    lt.run(host.start())
    try:
        nodes = list(host.nodes.values())
        lt.wait(lambda: all(sum(p.ready for p in n.outbound_peers()) == 4 for n in nodes), timeout=30,
                what="every node with its 4 outbound peers")
        assert gate.waited > 0  # the gate did hold dials back
        lt.wait(lambda: gate.inside == 0, timeout=5, what="every place given back after the handshakes")
    finally:
        lt.run(host.stop())


def test_a_silent_peer_holds_a_place_no_longer_than_hold_max(lt) -> None:
    silent_ip, a_ip, b_ip = next_ip(), next_ip(), next_ip()
    accepted: list[asyncio.StreamWriter] = []

    async def listen() -> asyncio.AbstractServer:
        async def keep(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.append(w)  # accepts, never answers the version
        return await asyncio.start_server(keep, silent_ip, PORT)

    server = lt.run(listen())
    host = Host([NodeConfig(name="a", bind=a_ip, port=PORT, seed=1, connect=[f"{silent_ip}:{PORT}", f"{b_ip}:{PORT}"]),
                 NodeConfig(name="b", bind=b_ip, port=PORT, seed=2)])
    gate = DialGate(limit=1, hold_max=0.5)
    host.dial_gate = gate
    for node in host.nodes.values():
        node.dial_gate = gate
    lt.run(host.start())
    try:
        a = host.nodes["a"]
        lt.wait(lambda: any(p.ready and p.ip == b_ip for p in a.outbound_peers()), timeout=10,
                what="a's handshake with b, past the silent peer's place")
        lt.wait(lambda: len(accepted) == 1, timeout=5, what="the silent peer's connection")
        # the silent connection is still open (its handshake timeout is a minute), its place is not
        assert lt.eval(lambda: any(p.ip == silent_ip and not p.ready for p in a.outbound_peers()))
        lt.wait(lambda: gate.inside == 0, timeout=5, what="the silent peer's place given back")
    finally:
        lt.run(host.stop())
        server.close()
