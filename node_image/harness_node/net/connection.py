"""One TCP connection: framing, checksum, per-command counters, link emulation, back-pressure.

No payload logic here (that is peer.py). Rules from protocol.md §1.1: wrong magic or an oversized
declared length breaks the stream -> close; a bad checksum or an invalid command is dropped silently
(counted, no penalty); a message we cannot decode is the peer layer's business.
"""

from __future__ import annotations

import asyncio
import random
from time import perf_counter
from typing import Protocol

from ..wire.codec import HEADER_SIZE, FrameDecoder, FramingError, frame_shared
from ..wire.messages import Message
from .capture import MessageCapture
from .linkem import LinkEmulator
from .peer import Peer
from .shaping import Shaper
from .stats import NodeStats

# Core stops reading a peer whose send buffer is full (net.cpp fPauseSend, -maxsendbuffer 1000 kB);
# asyncio's pause_writing/resume_writing give us the same signal. If the buffer still grows beyond
# this hard cap (announcements keep coming while the peer does not read), we give up on the peer so
# that one stalled socket cannot exhaust the memory shared by a thousand nodes.
MAX_SEND_BUFFER = 16 * 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024  # net.h DEFAULT_MAXSENDBUFFER 1000 kB
# An orderly close (transport.close()) waits until the send buffer drains, and a peer that stops
# reading never lets it: its socket, its Peer and its buffered megabytes would stay for ever. Core
# closes the socket at once (CloseSocketDisconnect drops what is unsent). We let a close flush for
# this long (a final message to a peer that does read), then abort; a full buffer aborts at once.
CLOSE_GRACE = 1.0  # seconds


class WriteBatch:
    """The connections of one node with frames queued in this loop iteration, flushed by one
    callback at its end: a flood relay hands one received tx to ~15 peers in a row, and a
    `call_soon` per connection was ~6 % of relay's CPU."""

    __slots__ = ("loop", "conns")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conns: list[Connection] = []

    def add(self, conn: "Connection") -> None:
        if not self.conns:
            self.loop.call_soon(self.run)
        self.conns.append(conn)

    def run(self) -> None:
        conns, self.conns = self.conns, []
        for i, conn in enumerate(conns):
            try:
                conn._flush()
            except Exception:
                # one connection's failure must not leave the others' frames unsent (their
                # _pending would stay non-empty and never be queued again): they go in a new batch
                for rest in conns[i + 1:]:
                    self.add(rest)
                raise


def framing_error_kind(e: FramingError) -> str:
    return "bad-magic" if "magic" in str(e) else "oversized-message"


class ConnectionEvents(Protocol):
    """What a Connection reports to, and reads from, its owner (the node)."""

    loop: asyncio.AbstractEventLoop
    magic: bytes
    rng: random.Random
    stats: NodeStats
    shaper: Shaper
    capture: MessageCapture | None  # None unless capture is on: the hot path tests only this
    write_batch: WriteBatch  # the owner's, made when it starts

    def attach(self, conn: "Connection", addr: tuple[str, int], local: tuple[str, int]) -> Peer | None: ...
    def detach(self, peer: Peer, exc: Exception | None) -> None: ...


class Connection(asyncio.Protocol):
    # two per link in one host process: slots instead of an instance dict (`__dict__` stays for
    # what a test or an attacker attaches)
    __slots__ = ("owner", "inbound", "kind", "target", "transport", "peer", "decoder", "linkem", "closing", "frozen",
                 "rx_paced", "bytes_in", "bytes_out", "_pending", "lost", "_closed", "_abort_timer", "__dict__")  # fmt: skip

    def __init__(self, owner: ConnectionEvents, inbound: bool, kind: str = "inbound",
                 target: tuple[str, int] | None = None) -> None:
        self.owner = owner
        self.inbound = inbound
        self.kind = kind
        self.target = target  # the endpoint we dialled (outbound)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.decoder = FrameDecoder(owner.magic)
        self.linkem: LinkEmulator | None = None
        self.closing = False
        self.frozen = False  # node paused: nothing read or sent, as if the process were stopped
        self.rx_paced = False  # reading paused until the download bucket has passed the last chunk
        self.bytes_in = 0
        self.bytes_out = 0
        # Frames queued this loop iteration, written together at its end (_flush, from the owner's
        # WriteBatch): a relay burst sends one peer several messages in a row, and one write per
        # message is one syscall each. Between flushes: the shared empty tuple, not a list each.
        self._pending: list[bytes] | tuple[()] = ()
        self.lost = False  # connection_lost has run (or abandon reported the loss)
        self._closed: asyncio.Future[None] | None = None  # made when someone waits (see closed)
        self._abort_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's TCP transport is not a subclass of asyncio.Transport
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.linkem = LinkEmulator(self.owner.shaper, self.owner.rng, self.owner.loop)
        peername = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        if peername is None:  # closed before we got here
            transport.close()
            return
        self.peer = self.owner.attach(self, peername[:2], sockname[:2])

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.bytes_in += len(data)
        shaper = self.owner.shaper
        if shaper.down is None:  # no download cap (the common case): nothing to pace
            self._process(data)
            return
        now = self.owner.loop.time()
        done = shaper.download_done(len(data), now)
        if done > now and self.transport is not None:
            # The download cap: this chunk "arrives" when the node's bucket has passed it; reading
            # stops until then, so later chunks of this link queue behind it in the kernel.
            self.rx_paced = True
            self.transport.pause_reading()
            self.owner.loop.call_at(done, self._paced, data)
            return
        self._process(data)

    def _paced(self, data: bytes) -> None:
        self.rx_paced = False
        if self.closing:
            return
        if self.transport is not None and not self.frozen:
            self.transport.resume_reading()
        self._process(data)

    def _process(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FramingError as e:
            self.owner.stats.protocol_errors[framing_error_kind(e)] += 1
            self.close(f"framing: {e}")
            return
        owner = self.owner
        peer, stats, capture = self.peer, owner.stats, owner.capture
        started = perf_counter()
        for header, payload, valid in frames:
            if self.closing or peer is None:
                return
            if not valid:
                stats.protocol_errors["bad-checksum"] += 1
                continue
            command = header.command_name
            if command is None:
                stats.protocol_errors["bad-command"] += 1
                continue
            if capture is not None:
                capture.record(peer.address, "recv", command, payload)
                started = perf_counter()  # writing the capture file is not handling the message
            # Handling is synchronous on the host's one thread, so its wall time is the CPU the node spent
            # (plus any time the OS took the CPU away). perf_counter costs ~0.3 us; thread_time ~5 us here,
            # a sixth of handling a message. One reading a frame: where the last frame's handling ended
            # is where this one's starts (the few checks above are counted with it).
            try:
                peer.receive(command, payload)
            finally:
                ended = perf_counter()
                stats.count_received(command, HEADER_SIZE + len(payload), ended - started)
                started = ended

    @property
    def closed(self) -> asyncio.Future[None]:
        """Done once the connection is lost. Made on first use: only a stopping node waits for it,
        and a future per connection end is 140 B that 20,000 links a process would carry idle."""
        if self._closed is None:
            self._closed = self.owner.loop.create_future()
            if self.lost:
                self._closed.set_result(None)
        return self._closed

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:  # reported already (abandon): the peer is detached once
            return
        self.lost = True
        self.closing = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self.linkem is not None:
            self.linkem.cancel()
        if self.peer is not None:
            self.owner.detach(self.peer, exc)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def abandon(self, exc: BaseException | None) -> None:
        """The dial that made this connection was given up (its timeout, or the node stopping). If
        the socket had connected just before, connection_made has run and a Peer holds an outbound
        slot, but uvloop, cancelled inside create_connection, neither closes the transport nor calls
        connection_lost: the peer never hears our version and keeps its slot until the handshake
        timeout (60 s), its socket for ever (seen as the last nodes of 10,000 missing one peer for a
        minute). So: abort, and report the loss here (connection_lost ignores a second report)."""
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(exc if isinstance(exc, Exception) else None)

    def pause_writing(self) -> None:
        # The peer does not read: stop processing what it sends (Core's fPauseSend).
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing and not self.frozen and not self.rx_paced:
            self.transport.resume_reading()

    def pause(self) -> None:
        self.frozen = True
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume(self) -> None:
        self.frozen = False
        if self.transport is not None and not self.closing and not self.rx_paced:
            self.transport.resume_reading()

    # --- sending -------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self.send_payload(msg.command, msg.serialize())

    def send_payload(self, command: str, payload: bytes) -> None:
        self.send_frame(command, payload, frame_shared(self.owner.magic, command, payload))

    def send_frame(self, command: str, payload: bytes, data: bytes) -> None:
        """Send `payload` framed already as `data` (flood relay frames one inv for all its peers)."""
        if self.closing or self.transport is None or self.frozen:
            return
        owner, peer = self.owner, self.peer
        owner.stats.count_sent(command, len(data))
        if peer is not None:
            peer.last_send = owner.loop.time()
            capture = owner.capture
            if capture is not None:
                capture.record(peer.address, "sent", command, payload)
        ip = peer.ip if peer is not None else (self.target[0] if self.target else "")
        em = self.linkem
        if em is not None and (em.busy or owner.shaper.shapes(ip)):
            em.send(data, self._write, ip)
            if em.held_bytes > MAX_SEND_BUFFER:
                self.close("send-buffer-full")
        else:
            self._write(data)

    @staticmethod
    def send_frame_to_all(conns: list["Connection"], command: str, payload: bytes, data: bytes) -> None:
        """send_frame(command, payload, data) on each of `conns`, all of one node: flood relay's one
        inv for a new tx to its ~15 peers, at every node for every tx. What is the same for every
        peer (the counters, the clock, whether anything shapes) is done once, and a peer that needs
        nothing special has its frame queued straight away."""
        if not conns:
            return
        owner = conns[0].owner
        if owner.capture is not None or not owner.shaper.idle:
            for conn in conns:  # captured or shaped: every peer goes the whole way
                conn.send_frame(command, payload, data)
            return
        now, size, sent = owner.loop.time(), len(data), 0
        for conn in conns:
            if conn.closing or conn.transport is None or conn.frozen:
                continue
            peer = conn.peer
            if peer is None or (conn.linkem is not None and conn.linkem.busy):
                conn.send_frame(command, payload, data)  # frames held behind a delay keep their order
                continue
            sent += 1
            peer.last_send = now
            conn._write(data)
        owner.stats.count_sent(command, size, sent)

    def release(self) -> None:
        """The peer is reachable again (a partition healed): send what was held for it."""
        if self.linkem is not None and self.peer is not None and not self.closing:
            self.linkem.release(self.peer.ip)

    def _write(self, data: bytes) -> None:
        # A transport the other side closed is caught by _flush (is_closing there, once per batch,
        # not once per message: 0.5 % of a burst's CPU at 10,000 nodes, perf)
        if self.closing or self.transport is None:
            return
        if not self._pending:
            self.owner.write_batch.add(self)
            self._pending = [data]
        else:
            self._pending.append(data)  # type: ignore[union-attr]  (non-empty: a list)
        self.bytes_out += len(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, ()
        transport = self.transport
        if not pending or self.closing or transport is None or transport.is_closing():
            return
        try:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        except RuntimeError:
            # uvloop closes a reset socket's handle before connection_lost arrives, and its
            # is_closing() is still False then: the write has nowhere to go, as after a close.
            return
        if transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            self.close("send-buffer-full", abort=True)

    def close(self, reason: str, abort: bool = False) -> None:
        """Close: the peer layer records `reason` before the socket goes. What is still unsent gets
        CLOSE_GRACE seconds to flush (none with `abort`); then the transport is aborted."""
        if self.peer is not None and self.peer.disconnect_reason is None:
            self.peer.disconnect_reason = reason
        transport = self.transport
        if abort and transport is not None:
            transport.abort()  # also after an earlier orderly close that is still flushing
        if self.closing:
            return
        self._flush()  # what we sent before deciding to close still goes out (a reject, a last pong)
        self.closing = True
        if transport is None or abort:
            return
        transport.close()
        if transport.get_write_buffer_size() > 0:
            self._abort_timer = self.owner.loop.call_later(CLOSE_GRACE, transport.abort)
