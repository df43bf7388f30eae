"""The reusable client peer: one P2P connection without a Node (the seeder's crawler, test peers,
and later attackers and the spy all run on it).

What it does for you, each part optional:

- handshake (protocol.md §1.4): ``version`` with our version, services, relay flag, nonce,
  user agent, start height and ``addr_from``; ``wtxidrelay``/``sendaddrv2`` when the peer's
  version allows (``negotiate``); ``verack`` once their ``version`` is in;
- keep-alive: answers ``ping`` with ``pong`` (``answer_pings``) and, if ``ping_interval`` is set,
  pings on its own;
- the frame loop: reads in bounded chunks, splits frames with wire.codec's FrameDecoder (a
  declared length above ``max_message`` or a wrong magic closes the connection, as Core does),
  decodes, and calls ``on_<command>(msg)`` — no-op defaults, like Bitcoin Core's functional test
  framework's P2PInterface; ``on_message`` dispatches and may be overridden as a whole;
- ``wait_until(predicate, timeout)`` and ``sync_with_ping()`` (a ping/pong barrier: everything
  sent before it has been processed by the peer);
- malformed traffic on purpose: ``send_frame`` with a wrong magic, a bad checksum, a declared
  length that is not the payload's, ``send_raw`` for anything else (a truncated frame, a message
  before version...).

Bad traffic *received* goes to ``on_bad_checksum``/``on_undecodable``/``on_unknown_command``
(default: count and drop, as Core does; the crawler overrides them to fail its probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..wire.codec import (
    HEADER_SIZE, MAX_PROTOCOL_MESSAGE_LENGTH, DecodeError, FrameDecoder, FramingError, NetAddr, checksum,
    frame,
)
from ..wire.messages import (
    BIP0031_VERSION, MESSAGEMAP, PROTOCOL_VERSION, WTXID_RELAY_VERSION, Message, decode, msg_ping, msg_pong,
    msg_sendaddrv2, msg_verack, msg_version, msg_wtxidrelay,
)

READ_CHUNK = 65536  # bytes per read: with max_message this bounds the decoder's buffer
CLOSE_WAIT = 1.0  # seconds to let the transport flush on close


class ClientPeer:
    """One P2P connection over asyncio streams. Subclass and define ``on_<command>`` to react."""

    def __init__(self, magic: bytes, *, version: int = PROTOCOL_VERSION, services: int = 0, relay: bool = True,
                 user_agent: str = "/harness-client:0.1/", start_height: int = 0, nonce: int | None = None,
                 addr_from: NetAddr | None = None, negotiate: tuple[str, ...] = ("wtxidrelay", "sendaddrv2"),
                 handshake_replies: bool = True, answer_pings: bool = True, ping_interval: float | None = None,
                 max_message: int = MAX_PROTOCOL_MESSAGE_LENGTH, read_chunk: int = READ_CHUNK) -> None:
        self.magic = magic
        self.our_version = version
        self.our_services = services
        self.our_relay = relay
        self.user_agent = user_agent
        self.start_height = start_height
        self.nonce = random.getrandbits(64) if nonce is None else nonce
        self.addr_from = addr_from or NetAddr()  # Core sends an empty one; a packed pod's dialer names itself
        self.negotiate = negotiate
        self.handshake_replies = handshake_replies  # False: record version/verack, send nothing back
        self.answer_pings = answer_pings
        self.ping_interval = ping_interval
        self.max_message = min(max_message, MAX_PROTOCOL_MESSAGE_LENGTH)
        self.read_chunk = read_chunk
        # connection
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.peer_addr: tuple[str, int] = ("", 0)
        self.closed = False
        self.close_reason = ""
        self._tasks: list[asyncio.Task[Any]] = []
        self._changed = asyncio.Event()
        # handshake state
        self.version_sent = False
        self.their_version: msg_version | None = None
        self.verack_received = False
        # what arrived
        self.counts: Counter[str] = Counter()  # command -> messages received
        self.errors: Counter[str] = Counter()  # bad-checksum, undecodable, unknown-command, bad-command
        self.last_message: dict[str, Message] = {}
        self._ping_nonce = 0
        self.last_pong_nonce = 0
        self.bytes_in = 0
        self.bytes_out = 0

    # --- connecting ------------------------------------------------------------------------------

    async def connect(self, host: str, port: int, timeout: float = 5.0, local_ip: str | None = None,
                      rcvbuf: int | None = None) -> None:
        """Dial host:port (from `local_ip` if given); raises OSError / asyncio.TimeoutError.
        `rcvbuf` sets SO_RCVBUF before connecting, so the TCP window we offer stays that small
        (a slow reader; with stop_reading(), one that never reads)."""
        local = (local_ip, 0) if local_ip else None
        if rcvbuf is None:
            opened = asyncio.open_connection(host, port, local_addr=local, limit=self.read_chunk)
        else:
            opened = self._open_with_rcvbuf(host, port, local, rcvbuf)
        reader, writer = await asyncio.wait_for(opened, timeout)
        self.attach(reader, writer)

    async def _open_with_rcvbuf(self, host: str, port: int, local: tuple[str, int] | None,
                                rcvbuf: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            if local is not None:
                sock.bind(local)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=self.read_chunk)

    def stop_reading(self) -> None:
        """Read nothing more, ever: the kernel's receive buffer fills and the sender's send buffer
        grows (a peer that stops reading). Sending still works."""
        if self._tasks:
            self._tasks[0].cancel()  # the frame loop (attach() starts it first)
        if self.writer is not None:
            self.writer.transport.pause_reading()

    def attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Run on an existing stream pair (an accepted connection, for a listening spy)."""
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer_addr = (peer[0], peer[1]) if peer else ("", 0)
        self._tasks.append(asyncio.get_running_loop().create_task(self._read_loop()))
        if self.ping_interval:
            self._tasks.append(asyncio.get_running_loop().create_task(self._ping_loop(self.ping_interval)))

    async def handshake(self, timeout: float = 5.0) -> msg_version:
        """Send our version (if not yet) and wait for theirs and their verack; returns theirs."""
        self.send_version()
        await self.wait_until(lambda: self.their_version is not None and self.verack_received, timeout,
                              what="version and verack")
        assert self.their_version is not None
        return self.their_version

    @property
    def handshake_done(self) -> bool:
        return self.their_version is not None and self.verack_received

    async def close(self, reason: str = "closed by us") -> None:
        self._mark_closed(reason)
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current and not t.done()]
        for t in others:
            t.cancel()
        if others:  # let them unwind, so no task outlives the connection
            await asyncio.wait(others, timeout=CLOSE_WAIT)
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.writer.wait_closed(), CLOSE_WAIT)

    def abort(self, reason: str) -> None:
        """Close now, from a callback: no further frame is processed (close() is the awaitable one)."""
        self._mark_closed(reason)
        if self.writer is not None:
            self.writer.close()

    def _mark_closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.on_close(reason)
            self._notify()

    # --- sending ---------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self.send_raw(frame(self.magic, msg.command, msg.serialize()))

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are: a truncated frame, garbage, anything."""
        if self.writer is None or self.closed or self.writer.is_closing():
            return
        self.writer.write(data)
        self.bytes_out += len(data)

    def send_frame(self, command: str | bytes, payload: bytes, *, magic: bytes | None = None,
                   bad_checksum: bool = False, length: int | None = None) -> None:
        """One frame, optionally malformed: another network's magic, a wrong checksum, or a declared
        length that is not len(payload) (above 4,000,000: an oversized message)."""
        cmd = command.encode("ascii") if isinstance(command, str) else command
        csum = checksum(payload)
        if bad_checksum:
            csum = bytes(b ^ 0xFF for b in csum)
        header = ((magic or self.magic) + cmd.ljust(12, b"\x00")[:12]
                  + struct.pack("<I", len(payload) if length is None else length) + csum)
        assert len(header) == HEADER_SIZE
        self.send_raw(header + payload)

    async def drain(self) -> None:
        if self.writer is not None and not self.closed:
            with contextlib.suppress(OSError):
                await self.writer.drain()

    def send_version(self) -> None:
        if self.version_sent:
            return
        self.version_sent = True
        self.send(self.version_message())

    def version_message(self) -> msg_version:
        return msg_version(version=self.our_version, services=self.our_services, timestamp=int(time.time()),
                           addr_recv=NetAddr(*self.peer_addr) if self.peer_addr[0] else NetAddr(),
                           addr_from=self.addr_from, nonce=self.nonce, user_agent=self.user_agent,
                           start_height=self.start_height, relay=self.our_relay)

    def send_ping(self) -> int:
        self._ping_nonce = random.getrandbits(64) | 1
        self.send(msg_ping(self._ping_nonce))
        return self._ping_nonce

    # --- waiting ---------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
        """Return predicate()'s first true value, checked after every message; raise TimeoutError
        after `timeout` s, or ConnectionError if the connection closes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed
            value = predicate()
            if value:
                return value
            if self.closed:
                raise ConnectionError(f"connection closed ({self.close_reason}) while waiting for {what}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def sync_with_ping(self, timeout: float = 5.0) -> None:
        """Ping and wait for the pong: the peer has processed everything we sent before."""
        nonce = self.send_ping()
        await self.drain()
        await self.wait_until(lambda: self.last_pong_nonce == nonce, timeout, what="pong")

    async def wait_for_message(self, command: str, timeout: float = 5.0) -> Message:
        """The next `command` message that arrives from now on."""
        before = self.counts[command]
        await self.wait_until(lambda: self.counts[command] > before, timeout, what=command)
        return self.last_message[command]

    async def wait_closed(self, timeout: float = 5.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.closed:
            event = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"connection still open after {timeout} s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return self.close_reason

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # --- the frame loop --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self.reader is not None
        decoder = FrameDecoder(self.magic, self.max_message)
        reason = "closed by peer"
        try:
            while not self.closed:
                data = await self.reader.read(self.read_chunk)
                if not data:
                    break
                self.bytes_in += len(data)
                try:
                    frames = decoder.feed(data)
                except FramingError as e:
                    reason = f"framing: {e}"
                    self.on_framing_error(e)
                    break
                for header, payload, valid in frames:
                    if self.closed:
                        return
                    self._receive(header.command, header.command_name, payload, valid)
                self._notify()
        except (OSError, asyncio.IncompleteReadError) as e:
            reason = f"connection error: {e}"
        except asyncio.CancelledError:
            return
        await self.close(reason)

    def _receive(self, raw_command: bytes, command: str | None, payload: bytes, valid: bool) -> None:
        if not valid:
            self.errors["bad-checksum"] += 1
            self.on_bad_checksum(command or raw_command.rstrip(b"\x00").decode("ascii", "replace"), payload)
            return
        if command is None or command.encode() not in MESSAGEMAP:
            self.errors["unknown-command" if command is not None else "bad-command"] += 1
            if command is not None:
                self.on_frame(command, payload, None)
            self.on_unknown_command(command or raw_command.rstrip(b"\x00").decode("ascii", "replace"), payload)
            return
        try:
            msg = decode(command, payload)
        except DecodeError as e:
            self.errors["undecodable"] += 1
            self.on_undecodable(command, payload, e)
            return
        self.on_frame(command, payload, msg)
        self.counts[command] += 1
        self.last_message[command] = msg
        self._builtin(command, msg)
        self.on_message(command, msg)

    def _builtin(self, command: str, msg: Any) -> None:
        """Handshake and keep-alive bookkeeping, before the subclass's callbacks see the message."""
        if command == "version" and self.their_version is None:
            self.their_version = msg
            if self.handshake_replies:
                self.send_version()  # they dialled us: version goes first
                if min(msg.version, self.our_version) >= WTXID_RELAY_VERSION:  # BIP339/155: before verack
                    if "wtxidrelay" in self.negotiate:
                        self.send(msg_wtxidrelay())
                    if "sendaddrv2" in self.negotiate:
                        self.send(msg_sendaddrv2())
                self.send(msg_verack())
        elif command == "verack" and self.their_version is not None:  # Core ignores it before version
            self.verack_received = True
        elif command == "ping" and self.answer_pings and (self.their_version is None
                                                          or self.their_version.version > BIP0031_VERSION):
            self.send(msg_pong(msg.nonce))
        elif command == "pong":
            self.last_pong_nonce = msg.nonce

    async def _ping_loop(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            if self.handshake_done:
                self.send_ping()

    # --- callbacks (no-op defaults) --------------------------------------------------------------

    def on_message(self, command: str, msg: Message) -> None:
        handler = getattr(self, "on_" + command, None)
        if handler is not None:
            handler(msg)

    def on_frame(self, command: str, payload: bytes, msg: Message | None) -> None:
        """Every frame with a valid checksum and command, raw and decoded (None: a command our codec
        does not know), before any other callback: a wire log or a spy's capture."""

    def on_close(self, reason: str) -> None:
        """The connection is gone (either side)."""

    def on_framing_error(self, error: FramingError) -> None:
        """Wrong magic or an oversized declared length: the stream is unusable and closes."""

    def on_bad_checksum(self, command: str, payload: bytes) -> None:
        """Core drops such a frame silently."""

    def on_unknown_command(self, command: str, payload: bytes) -> None:
        """Core ignores unknown commands."""

    def on_undecodable(self, command: str, payload: bytes, error: DecodeError) -> None:
        """Core logs and drops a message it cannot parse."""
