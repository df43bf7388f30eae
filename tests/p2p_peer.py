"""A test peer built on the node package's client peer (harness_node.net.client.ClientPeer).

`RecordingPeer` keeps every message in an inbox and speaks only what the test says (no automatic
verack, no automatic pong), so tests can break the protocol on purpose. `BlockingPeer` drives one
from plain (non-async) test functions: its own event loop runs on a daemon thread, and every call
waits for the loop to do the work, so tests read like a script.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import DecodeError, NetAddr
from harness_node.wire.messages import Message, msg_ping, msg_verack, msg_version, msg_wtxidrelay

REGTEST_MAGIC = bytes.fromhex("fabfb5da")


class RecordingPeer(ClientPeer):
    """Records (command, message) for everything that arrives; undecodable or unknown messages are
    recorded as (command, raw payload)."""

    def __init__(self, magic: bytes = REGTEST_MAGIC, **kw: Any) -> None:
        kw.setdefault("handshake_replies", False)
        kw.setdefault("answer_pings", False)
        super().__init__(magic, **kw)
        self.inbox: list[tuple[str, Any]] = []

    def on_message(self, command: str, msg: Message) -> None:
        self.inbox.append((command, msg))
        super().on_message(command, msg)

    def on_unknown_command(self, command: str, payload: bytes) -> None:
        self.inbox.append((command or "?", payload))

    def on_undecodable(self, command: str, payload: bytes, error: DecodeError) -> None:
        self.inbox.append((command, payload))

    async def expect(self, command: str, timeout: float = 5.0,
                     where: Callable[[Any], bool] = lambda m: True) -> Any:
        """Take the first `command` message matching `where` out of the inbox, waiting for it."""
        def find() -> tuple[int, Any] | None:
            for i, (name, msg) in enumerate(self.inbox):
                if name == command and where(msg):
                    return i, msg
            return None

        try:
            i, msg = await self.wait_until(find, timeout, what=command)
        except TimeoutError:
            raise AssertionError(f"no {command!r} within {timeout} s; inbox: {[n for n, _ in self.inbox]}") from None
        except ConnectionError:
            raise AssertionError(f"connection closed while waiting for {command!r}") from None
        del self.inbox[i]
        return msg


class BlockingPeer:
    """A RecordingPeer on its own loop thread, with a blocking API for synchronous tests."""

    def __init__(self, host: str, port: int, *, local_ip: str | None = None, magic: bytes = REGTEST_MAGIC,
                 connect_timeout: float = 5.0, rcvbuf: int | None = None, **client_kw: Any) -> None:
        self.node_addr = (host, port)
        self.ip = local_ip
        self.magic = magic
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.peer = RecordingPeer(magic, **client_kw)
        try:
            self._run(self.peer.connect(host, port, connect_timeout, local_ip, rcvbuf=rcvbuf))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            result = fn()
            await self.peer.drain()
            return result
        return self._run(call())

    @property
    def inbox(self) -> list[tuple[str, Any]]:
        return self.peer.inbox

    @property
    def closed(self) -> bool:
        return self.peer.closed

    # --- sending ---------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self._call(lambda: self.peer.send(msg))

    def send_raw(self, data: bytes) -> None:
        self._call(lambda: self.peer.send_raw(data))

    def send_frame(self, command: str | bytes, payload: bytes, **kw: Any) -> None:
        self._call(lambda: self.peer.send_frame(command, payload, **kw))

    def stop_reading(self) -> None:
        self._call(self.peer.stop_reading)

    # --- protocol --------------------------------------------------------------------------------

    def expect(self, command: str, timeout: float = 5.0, where: Callable[[Any], bool] = lambda m: True) -> Any:
        """Wait for a `command` message (earlier others stay in the inbox)."""
        return self._run(self.peer.expect(command, timeout, where), timeout + 30)

    def version_msg(self, version: int = 70016, nonce: int | None = None) -> msg_version:
        return msg_version(version=version, timestamp=int(time.time()), addr_recv=NetAddr(*self.node_addr),
                           nonce=random.getrandbits(64) if nonce is None else nonce,
                           user_agent="/test-peer:0/", start_height=0)

    def handshake(self, wtxidrelay: bool = False) -> msg_version:
        self.send(self.version_msg())
        theirs = self.expect("version")
        if wtxidrelay:
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
        try:
            self._run(self.peer.wait_closed(timeout), timeout + 30)
        except TimeoutError:
            raise AssertionError(f"node did not close the connection within {timeout} s") from None

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._run(self.peer.close(), 10)
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
