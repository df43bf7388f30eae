"""Host mode: many nodes in one asyncio process, each on its own 127.a.b.c (same P2P port), with the
control API of all of them served by one aiohttp Application (control.py). The local backend runs
hundreds of nodes per worker process this way; `harness-node run` is the one-node case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from .config import NodeConfig
from .net.stats import Histogram
from .node import Node
from .procutil import new_event_loop, raise_fd_limit, stop_on_signals, tune_gc

NodeFactory = Callable[[NodeConfig], Node]


class Host:
    def __init__(self, configs: Iterable[NodeConfig], node_factory: NodeFactory = Node) -> None:
        configs = list(configs)
        names = [c.name for c in configs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique in a host; repeated: {dupes}")
        self.nodes: dict[str, Node] = {c.name: node_factory(c) for c in configs}
        self.control = None
        self.started = False
        # The process's event-loop lag (net/looplag.py, one monitor per loop), labelled with its
        # first node's name (one worker label per process, bounded by the plan) and exported by that
        # node only, so that 1,000 nodes in 20 workers make 20 histograms, not 1,000 copies.
        self.worker = min(self.nodes) if self.nodes else None
        if self.worker is not None:
            self.nodes[self.worker].exports_lag = True

    async def start(self) -> None:
        """Start every listener first, then the control sites, then let the nodes dial."""
        try:
            for node in self.nodes.values():
                await node.start()
            if any(n.config.control_port is not None for n in self.nodes.values()):
                from .api.control import ControlServer  # lazy: aiohttp is the heaviest import

                self.control = ControlServer()
                self.control.on_replace = self._replaced  # POST /restart: the fresh node is ours now
                for node in self.nodes.values():
                    if node.config.control_port is not None:
                        await self.control.add(node)
            for node in self.nodes.values():
                node.start_dialling()
            self._name_worker()
            self.started = True
        except BaseException:
            await self.stop()
            raise

    def _replaced(self, node: Node) -> None:
        node.exports_lag = node.name == self.worker
        self.nodes[node.name] = node
        self._name_worker()

    def _name_worker(self) -> None:
        lag = self.nodes[self.worker].lag if self.worker is not None else None
        if lag is not None:
            lag.worker = self.worker  # not host-pid: a restarted worker keeps its series

    @property
    def loop_lag(self) -> Histogram | None:
        """The worker's loop-lag histogram (None before start)."""
        lag = self.nodes[self.worker].lag if self.worker is not None else None
        return lag.histogram if lag is not None else None

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        # every node stops even if one fails; the first failure is then raised, not swallowed
        results = await asyncio.gather(*(n.stop() for n in self.nodes.values() if n.running), return_exceptions=True)
        self.started = False
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def __aenter__(self) -> "Host":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(configs: Iterable[NodeConfig], node_factory: NodeFactory = Node,
                ready: Callable[[Host], None] | None = None) -> None:
    """Run nodes until SIGTERM/SIGINT, then close every listener and connection."""
    async with stop_on_signals() as stop:
        host = Host(configs, node_factory)
        await host.start()
        try:
            if ready is not None:
                ready(host)
            await stop.wait()
        finally:
            await host.stop()


def run_host(configs: Iterable[NodeConfig], node_factory: NodeFactory = Node) -> None:
    """Blocking entry point: run the nodes until a signal arrives."""
    raise_fd_limit()
    tune_gc()
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(configs, node_factory))
    finally:
        loop.close()
