"""Helpers for node tests: a background event loop, node factory, a blocking raw test peer, waits.

Nodes run in an asyncio loop on a background thread, so tests are plain functions that drive raw
sockets (and hypothesis works unchanged). Node state is read inside the loop thread (`lt.eval`), never
from the test thread while the loop mutates it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from harness_node.config import NodeConfig
from harness_node.node import Node
from tests.loopback import next_ip  # noqa: F401 (re-exported for the tests)
from tests.p2p_peer import REGTEST_MAGIC, BlockingPeer  # REGTEST_MAGIC: re-exported for the tests
from tests.waiting import wait_until as _wait_until



# Node tests poll in-process state (no I/O per poll), so often: some conditions hold only briefly.
wait_until = partial(_wait_until, interval=0.005)


class LoopThread:
    """An asyncio loop on a daemon thread; exceptions reaching its handler fail the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, ctx: self.errors.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def eval(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()
        return self.run(call())

    def wait(self, fn: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        return wait_until(lambda: self.eval(fn), timeout, what)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def lt() -> Any:
    loop = LoopThread()
    yield loop
    loop.close()
    assert not loop.errors, f"errors in the node's event loop: {loop.errors}"


@pytest.fixture
def make_node(lt: LoopThread) -> Any:
    nodes: list[Node] = []

    def factory(**kw: Any) -> Node:
        kw.setdefault("bind", next_ip())
        kw.setdefault("port", 0)
        kw.setdefault("name", f"n{len(nodes)}")
        node = Node(NodeConfig(**kw))
        lt.run(node.start())
        lt.eval(node.start_dialling)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        lt.run(node.stop())


def peer_from(lt: LoopThread, node: Node, ip: str) -> Any:
    """The node's peer whose address is `ip` (or None)."""
    return lt.eval(lambda: next((p for p in node.peers.values() if p.ip == ip), None))


def disconnect_reasons(lt: LoopThread, node: Node) -> list[str]:
    return lt.eval(lambda: [d.reason for d in node.disconnects])


class TestPeer(BlockingPeer):
    """A raw P2P test peer from its own loopback address; speaks exactly what the test says.
    Built on the node package's client peer (tests/p2p_peer.py)."""

    __test__ = False  # not a pytest class

    def __init__(self, node: Node, ip: str | None = None, magic: bytes = REGTEST_MAGIC, **kw: Any) -> None:
        super().__init__(node.config.bind, node.port, local_ip=ip or next_ip(), magic=magic, **kw)


@pytest.fixture
def test_peers() -> Any:
    made: list[TestPeer] = []

    def factory(node: Node, **kw: Any) -> TestPeer:
        p = TestPeer(node, **kw)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()


def refused_by_cli(*args: str, says: str) -> str:
    """Run `harness-node ARGS` expecting a bad-input refusal: exit 2, one line naming `says`, no
    traceback. Returns stderr."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "harness_node.cli", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def u32(n: int) -> bytes:
    return struct.pack("<I", n)
