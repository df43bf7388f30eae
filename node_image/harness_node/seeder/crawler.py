"""The crawler: probes known nodes the way sipa/bitcoin-seeder's CNode does (bitcoin.cpp).

One probe = connect, `version` (services 0, relay 0, our user agent, start height = required
height), `verack`, then `getaddr` if the node has not answered one for a day (scaled), collect
`addr`/`addrv2` until the answer is in (1 s after a multi-address message, scaled) or the timeout,
disconnect. Results go to the NodeDb; learnt addresses are stored, and dialled only inside the
sandbox allowlist (testbed adaptation 6). Every dial is written to `attempts`, so tests (and a
curious operator) can check that nothing outside the allowlist was ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

from ..wire.codec import DecodeError, FrameDecoder, FramingError, NetAddr, frame
from ..wire.messages import (
    WTXID_RELAY_VERSION,
    msg_addr,
    msg_addrv2,
    msg_getaddr,
    msg_sendaddrv2,
    msg_verack,
    msg_version,
)
from ..wire.messages import decode as decode_message
from .config import SeederConfig
from .metrics import SeederCounters
from .nodedb import Endpoint, NodeDb

log = logging.getLogger("harness_node.seeder.crawler")

GETADDR_INTERVAL = 86400.0  # main.cpp ThreadCrawler: getaddr only if the last success is > 24 h old
ADDR_LINGER = 1.0  # bitcoin.cpp: stop 1 s after an addr message with more than one entry
MAX_ADDRS_PER_PROBE = 1000  # bitcoin.cpp: stop collecting after > 1000 addresses
ADDR_MAX_AGE = 7 * 86400.0  # bitcoin.cpp: keep addresses seen in the last 7 days
ADDR_FUTURE_SLACK = 600.0  # bitcoin.cpp: nTime > now + 10 min is treated as bogus ...
ADDR_BOGUS_AGE = 5 * 86400.0  # ... and replaced with now - 5 days
BOGUS_TIME_FLOOR = 100_000_000  # bitcoin.cpp: nTime <= 1e8 is bogus too
BAD_HEADER_BAN = 100_000.0  # bitcoin.cpp: an invalid message header sets ban = 100000 s
ATTEMPT_LOG_SIZE = 100_000
READ_CHUNK = 65536
RECANCEL_INTERVAL = 0.1  # stop(): how long to wait before cancelling a worker that ignored a cancel


@dataclass
class ProbeResult:
    ok: bool
    version: int = 0
    services: int = 0
    user_agent: str = ""
    height: int = 0
    ban_seconds: float = 0.0  # unscaled; the crawler scales it
    reason: str = ""
    addrs: list[NetAddr] = field(default_factory=list)


@dataclass(frozen=True)
class ProbeSettings:
    magic: bytes
    timeout: float
    linger: float
    user_agent: str
    start_height: int


async def probe(ip: str, port: int, settings: ProbeSettings, want_addrs: bool) -> ProbeResult:
    """Handshake with one node and, if asked, collect its addresses. Never raises for network trouble."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.timeout  # handshake must finish by then (bitcoin.cpp HANDSHAKE_TIMEOUT)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), settings.timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return ProbeResult(False, reason=f"connect: {e or 'timeout'}")
    result = ProbeResult(False)
    try:
        await _converse(reader, writer, settings, want_addrs, deadline, result)
    except (OSError, asyncio.IncompleteReadError) as e:
        result.ok, result.reason = False, f"connection error: {e}"
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return result


async def _converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: ProbeSettings,
                    want_addrs: bool, deadline: float, result: ProbeResult) -> None:
    loop = asyncio.get_running_loop()
    peer_ip, peer_port = writer.get_extra_info("peername")[:2]

    def send(msg: object) -> None:
        writer.write(frame(settings.magic, msg.command, msg.serialize()))  # type: ignore[attr-defined]

    send(msg_version(services=0, timestamp=int(time.time()), addr_recv=NetAddr(peer_ip, peer_port),
                     nonce=random.getrandbits(64), user_agent=settings.user_agent,
                     start_height=settings.start_height, relay=False))
    await writer.drain()
    decoder = FrameDecoder(settings.magic)
    got_version = got_verack = False
    done_after: float | None = None  # set once the handshake is done: success from then on
    while True:
        now = loop.time()
        until = done_after if done_after is not None else deadline
        if now >= until:
            if done_after is None:
                result.reason = "handshake timeout"
            else:
                result.ok = True
            return
        try:
            data = await asyncio.wait_for(reader.read(READ_CHUNK), until - now)
        except asyncio.TimeoutError:
            continue
        if not data:
            result.reason = "closed by peer"  # bitcoin.cpp: "connection closed prematurely", a failure
            return
        try:
            frames = decoder.feed(data)
        except FramingError as e:
            result.reason, result.ban_seconds = f"bad header: {e}", BAD_HEADER_BAN
            return
        for header, payload, valid in frames:
            if not valid:
                result.reason = "bad checksum"  # bitcoin.cpp closes the socket: a failed probe
                return
            command = header.command_name
            try:
                msg = decode_message(command, payload) if command else None
            except DecodeError as e:
                result.reason = f"undecodable {command}: {e}"
                return
            if isinstance(msg, msg_version):
                if got_version:
                    continue
                got_version = True
                result.version, result.services = msg.version, msg.services
                result.user_agent, result.height = msg.user_agent, msg.start_height
                if msg.version >= WTXID_RELAY_VERSION:
                    send(msg_sendaddrv2())  # BIP155: only valid between version and verack
                send(msg_verack())
            elif not got_version:
                continue  # bitcoin.cpp ignores everything before version
            elif isinstance(msg, msg_verack) and not got_verack:
                got_verack = True
                if want_addrs:
                    send(msg_getaddr())
                    done_after = loop.time() + settings.timeout
                else:
                    done_after = loop.time()
            elif isinstance(msg, (msg_addr, msg_addrv2)) and got_verack and want_addrs:
                fresh = _sanitise(msg.addrs)
                result.addrs.extend(fresh)
                if len(msg.addrs) > 1 and done_after is not None:
                    done_after = min(done_after, loop.time() + settings.linger)
                if len(result.addrs) > MAX_ADDRS_PER_PROBE:
                    result.ok = True
                    return
        await writer.drain()


def _sanitise(addrs: list[NetAddr]) -> list[NetAddr]:
    """bitcoin.cpp: fix bogus timestamps, keep what was seen in the last week."""
    now = time.time()
    out = []
    for a in addrs:
        t = a.time
        if t <= BOGUS_TIME_FLOOR or t > now + ADDR_FUTURE_SLACK:
            t = int(now - ADDR_BOGUS_AGE)
        if t > now - ADDR_MAX_AGE:
            out.append(NetAddr(a.ip, a.port, a.services, t))
    return out


class Crawler:
    """`concurrency` workers pulling due nodes from the NodeDb, optionally rate limited."""

    def __init__(self, config: SeederConfig, db: NodeDb, counters: SeederCounters) -> None:
        self.config = config
        self.db = db
        self.counters = counters
        self.settings = ProbeSettings(magic=config.magic_bytes, timeout=config.timeout_seconds,
                                      linger=ADDR_LINGER * config.time_scale, user_agent=config.user_agent,
                                      start_height=config.required_height)
        self.getaddr_interval = GETADDR_INTERVAL * config.time_scale
        self.attempts: deque[tuple[float, str, int]] = deque(maxlen=ATTEMPT_LOG_SIZE)
        # Wake-ups: a sequence number plus a fresh event per round, so that a worker that found
        # nothing to do cannot miss addresses added between its check and its wait.
        self._wake_seq = 0
        self._wake_event = asyncio.Event()
        self._workers: list[asyncio.Task] = []
        self._next_slot = 0.0
        self._slot_lock = asyncio.Lock()

    def add_seeds(self, endpoints: list[Endpoint]) -> None:
        for ip, port in endpoints:
            self.db.add(ip, port, seen=time.time(), force=True)
        self._notify()

    def _notify(self) -> None:
        self._wake_seq += 1
        event, self._wake_event = self._wake_event, asyncio.Event()
        event.set()

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._worker(), name=f"seeder-crawl-{i}")
                         for i in range(self.config.concurrency)]

    async def stop(self) -> None:
        # Before Python 3.12, asyncio.wait_for swallows a cancellation that arrives in the loop turn
        # in which the awaited future completes (CPython gh-86296): a worker woken by _notify() just
        # as stop() cancels it carries on crawling. So cancel again until every worker is gone.
        pending = set(self._workers)
        while pending:
            for t in pending:
                t.cancel()
            done, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    log.error("crawler worker failed", exc_info=t.exception())
        self._workers = []

    async def _worker(self) -> None:
        while True:
            seq = self._wake_seq
            rec = self.db.next_to_try()
            if rec is None:
                await self._idle(seq)
                continue
            ep = rec.endpoint
            want_addrs = rec.our_last_success + self.getaddr_interval < time.time()
            try:
                await self._rate_limit()
                result = await self._dial(ep, want_addrs)
            except asyncio.CancelledError:
                self.db.skip(ep)  # shutting down: no verdict on this node, just put it back
                raise
            self._record(ep, result)

    async def _idle(self, seq: int) -> None:
        if seq != self._wake_seq:
            return  # new work arrived while we looked
        wait = self.db.seconds_until_due()
        # Nothing queued at all: sleep until new addresses arrive; else until the next node is due.
        timeout = None if wait is None else max(wait, 0.01)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake_event.wait(), timeout)

    async def _rate_limit(self) -> None:
        if self.config.crawl_rate <= 0:
            return
        async with self._slot_lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.config.crawl_rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _dial(self, ep: Endpoint, want_addrs: bool) -> ProbeResult:
        self.db.sandbox.check(ep[0])  # raises SandboxError; the db never queues such a node anyway
        self.attempts.append((time.time(), ep[0], ep[1]))
        return await probe(ep[0], ep[1], self.settings, want_addrs)

    def _record(self, ep: Endpoint, result: ProbeResult) -> None:
        if result.ok:
            self.counters.probes["ok"] += 1
            self.db.record_success(ep, result.version, result.user_agent, result.height, result.services)
        else:
            self.counters.probes["failed"] += 1
            self.db.record_failure(ep, result.ban_seconds * self.config.time_scale)
        log.debug("probe %s:%d ok=%s version=%d reason=%s addrs=%d", ep[0], ep[1], result.ok, result.version,
                  result.reason, len(result.addrs))
        if result.addrs:
            # addrman applies a 2 h penalty to relayed times; sipa does not, nor do we.
            self.db.add_many((a.ip, a.port, a.services, float(a.time)) for a in result.addrs)
        # Wake idle workers: there may be new addresses, and the node just tried is queued again,
        # which changes when the next one is due.
        self._notify()
