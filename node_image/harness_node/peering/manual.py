"""Manual connections (Core's -connect/addnode, and the control API's POST /peers): targets the node
keeps a connection to, redialled with a growing delay whenever the link drops or the dial fails."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from ..net.peer import Peer
from ..net.sandbox import DialRefused


class ManualHost(Protocol):
    """What the manual targets need of the node (node.Node implements it)."""
    running: bool
    timers: Any
    loop: asyncio.AbstractEventLoop
    peers: dict[Any, Peer]
    _dials: set[asyncio.Task[Any]]

    def connected_to(self, ip: str, port: int | None = None) -> bool: ...

    async def open_connection(self, ip: str, port: int, kind: str = "manual",
                              source_ip: str | None = None) -> Peer: ...

MAX_CONNECT_BACKOFF_STEPS = 10  # net.cpp -connect loop: sleeps 500 ms x min(loop, 10) between rounds


@dataclass
class ManualTarget:
    attempts: int = 0
    dialling: bool = False
    retry: asyncio.TimerHandle | None = None


class ManualPeers:
    def __init__(self, node: ManualHost) -> None:
        self.node = node
        self.targets: dict[tuple[str, int], ManualTarget] = {}

    def add(self, ip: str, port: int) -> None:
        key = (ip, port)
        if key not in self.targets:
            self.targets[key] = ManualTarget()
            self._dial(key)

    def remove(self, ip: str, port: int) -> bool:
        """Stop redialling ip:port and disconnect it; False if it was neither a target nor a peer."""
        target = self.targets.pop((ip, port), None)
        if target is not None and target.retry is not None:
            target.retry.cancel()
        found = target is not None
        for p in list(self.node.peers.values()):
            if p.ip == ip and p.port == port:
                p.disconnect("removed by control API")
                found = True
        return found

    def stop(self) -> None:
        for t in self.targets.values():
            if t.retry is not None:
                t.retry.cancel()

    def peer_gone(self, peer: Peer) -> None:
        target = self.targets.get((peer.ip, peer.port)) if not peer.inbound else None
        if target is not None and self.node.running:
            if not peer.verack_received:
                target.attempts += 1
            self._schedule((peer.ip, peer.port), target)

    def peer_ready(self, peer: Peer) -> None:
        target = self.targets.get((peer.ip, peer.port)) if not peer.inbound else None
        if target is not None:
            target.attempts = 0

    def _schedule(self, key: tuple[str, int], target: ManualTarget) -> None:
        if target.retry is None and not target.dialling:
            delay = self.node.timers.connect_loop * max(1, min(target.attempts, MAX_CONNECT_BACKOFF_STEPS))
            target.retry = self.node.loop.call_later(delay, self._dial, key)

    def _dial(self, key: tuple[str, int]) -> None:
        node = self.node
        target = self.targets.get(key)
        if target is None or not node.running:
            return
        target.retry = None
        if target.dialling or node.connected_to(key[0], key[1]):
            return
        target.dialling = True
        task = node.loop.create_task(self._dial_task(key, target))
        node._dials.add(task)
        task.add_done_callback(node._dials.discard)

    async def _dial_task(self, key: tuple[str, int], target: ManualTarget) -> None:
        try:
            await self.node.open_connection(key[0], key[1], "manual")
        except (OSError, asyncio.TimeoutError, DialRefused):
            target.attempts += 1
            target.dialling = False
            if self.targets.get(key) is target:
                self._schedule(key, target)
            return
        target.dialling = False
        # The peer may already be gone: a victim at its inbound limit closes at once, and on a loaded
        # loop that close is handled before this task resumes; `peer_gone` could not schedule then
        # (we were still dialling), so without this the target would never be dialled again.
        if self.targets.get(key) is target and self.node.running and not self.node.connected_to(key[0], key[1]):
            target.attempts += 1
            self._schedule(key, target)
