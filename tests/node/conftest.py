"""Helpers for node tests: a background event loop, node factory, a blocking raw test peer, waits.

Nodes run in an asyncio loop on a background thread, so tests are plain functions that drive raw
sockets (and hypothesis works unchanged). Node state is read inside the loop thread (`lt.eval`), never
from the test thread while the loop mutates it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness_node.wire.codec import FrameDecoder, NetAddr, frame
from harness_node.config import NodeConfig
from harness_node.wire.messages import MESSAGEMAP, Message, decode, msg_ping, msg_verack, msg_version
from harness_node.node import Node

REGTEST_MAGIC = bytes.fromhex("fabfb5da")
# A per-process /16 in 127.0.0.0/8 so parallel test runs of other engineers do not collide.
_OCTET = 64 + os.getpid() % 150
_hosts = itertools.count(1)


def next_ip() -> str:
    n = next(_hosts)
    return f"127.{_OCTET}.{n // 250}.{n % 250 + 1}"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


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
    return lt.eval(lambda: [d["reason"] for d in node.disconnects])


class TestPeer:
    """A blocking raw P2P client from its own loopback address; speaks exactly what the test says."""

    __test__ = False  # not a pytest class

    def __init__(self, node: Node, ip: str | None = None, magic: bytes = REGTEST_MAGIC) -> None:
        self.node_addr = (node.config.bind, node.port)
        self.ip = ip or next_ip()
        self.magic = magic
        self.decoder = FrameDecoder(magic)
        self.inbox: list[tuple[str, Any]] = []
        self.sock = socket.create_connection(self.node_addr, timeout=5, source_address=(self.ip, 0))
        self.closed = False

    def send(self, msg: Message) -> None:
        self.send_raw(frame(self.magic, msg.command, msg.serialize()))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        for header, payload, _valid in self.decoder.feed(data):
            name = header.command_name or "?"
            self.inbox.append((name, decode(name, payload) if name.encode() in MESSAGEMAP else payload))
        return True

    def expect(self, command: str, timeout: float = 5.0, where: Callable[[Any], bool] = lambda m: True) -> Any:
        """Wait for a `command` message (earlier others stay in the inbox); answers pings meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (name, msg) in enumerate(self.inbox):
                if name == command and where(msg):
                    del self.inbox[i]
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {command!r} within {timeout} s; inbox: {[n for n, _ in self.inbox]}")
            if not self._read(min(remaining, 0.2)):
                raise AssertionError(f"connection closed while waiting for {command!r}")

    def version_msg(self, version: int = 70016, nonce: int | None = None) -> msg_version:
        return msg_version(version=version, timestamp=int(time.time()), addr_recv=NetAddr(*self.node_addr),
                           nonce=random.getrandbits(64) if nonce is None else nonce,
                           user_agent="/test-peer:0/", start_height=0)

    def handshake(self, wtxidrelay: bool = False) -> msg_version:
        self.send(self.version_msg())
        theirs = self.expect("version")
        if wtxidrelay:
            from harness_node.wire.messages import msg_wtxidrelay
            self.send(msg_wtxidrelay())
        self.expect("verack")
        self.send(msg_verack())
        self.ping_roundtrip()  # barrier: the node has processed our verack (we are "ready")
        return theirs

    def ping_roundtrip(self, timeout: float = 5.0) -> None:
        """A protocol barrier: everything sent before the ping has been processed."""
        nonce = random.getrandbits(64) | 1
        self.send(msg_ping(nonce))
        self.expect("pong", timeout, where=lambda m: m.nonce == nonce)

    def wait_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError(f"node did not close the connection within {timeout} s")
            self._read(0.1)

    def close(self) -> None:
        self.sock.close()


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


def u32(n: int) -> bytes:
    return struct.pack("<I", n)
