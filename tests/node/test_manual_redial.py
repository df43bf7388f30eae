"""Manual targets (-connect/addnode) are redialled whatever the order in which a loaded event loop
delivers the dial's result and the peer's close.

The host here is a stand-in for the node (a real node cannot be made to deliver a close between
`create_connection` returning and the dialling task resuming on demand): it runs on a real event
loop and hands ManualPeers exactly the orderings seen in 1,000-node runs at load 100+, where 557
nodes ended with no outbound peer because their refused manual dials were never retried.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from harness_node.net.sandbox import DialRefused
from harness_node.peering.manual import ManualPeers


class StandInHost:
    def __init__(self, close_before_return: bool) -> None:
        self.running = True
        self.timers = SimpleNamespace(connect_loop=0.01)
        self.loop = asyncio.get_running_loop()
        self.peers: dict[Any, Any] = {}
        self._dials: set[asyncio.Task[Any]] = set()
        self.close_before_return = close_before_return
        self.dials = 0
        self.manual: ManualPeers | None = None

    def connected_to(self, ip: str, port: int | None = None) -> bool:
        return any(p.ip == ip and (port is None or (not p.inbound and p.port == port)) for p in self.peers.values())

    async def open_connection(self, ip: str, port: int, kind: str = "manual", source_ip: str | None = None) -> Any:
        self.dials += 1
        peer = SimpleNamespace(ip=ip, port=port, inbound=False, verack_received=False)
        if self.dials > 2:
            self.peers[id(peer)] = peer  # the third dial sticks
            return peer
        if self.close_before_return:
            # the victim closed at once (inbound slots full) and the loop handled that close first
            assert self.manual is not None
            self.manual.peer_gone(peer)
            return peer
        raise DialRefused("already-connected", ip)


async def _redials(close_before_return: bool) -> int:
    host = StandInHost(close_before_return)
    manual = ManualPeers(host)  # type: ignore[arg-type]
    host.manual = manual
    manual.add("127.1.0.1", 18444)
    for _ in range(200):  # 2 s at most; backoff 0.01 s x attempts
        await asyncio.sleep(0.01)
        if host.dials >= 3:
            break
    manual.stop()
    return host.dials


def test_a_peer_gone_before_the_dial_returns_is_dialled_again() -> None:
    assert asyncio.run(_redials(close_before_return=True)) == 3


def test_a_refused_dial_is_dialled_again() -> None:
    assert asyncio.run(_redials(close_before_return=False)) == 3
