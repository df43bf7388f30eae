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
import time
from collections import deque
from dataclasses import dataclass, field, replace

from ..net.client import ClientPeer
from ..wire.codec import DecodeError, FramingError, NetAddr
from ..wire.messages import msg_addr, msg_addrv2, msg_getaddr, msg_verack, msg_version
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
# Testbed adaptation 10 (docs/protocol.md): a probe's verdict is recorded once its handshake is
# done, and its wait for the addr answer (up to the 30 s timeout: a node in initial download has
# nothing to say) goes on without holding a crawl worker, at most this many at a time; beyond that
# a probe does not ask. sipa's thread waits, which crawls ~3 silent nodes a second: a fresh
# 10,000-node testnet would get its first answers after an hour.
MAX_COLLECTING = 1024
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


class _Prober(ClientPeer):
    """One probe on the client peer: sipa's handshake (services 0, relay 0, sendaddrv2 only, no
    pongs), then addr collection; any bad traffic fails the probe, as bitcoin.cpp closes the socket."""

    def __init__(self, settings: ProbeSettings, want_addrs: bool) -> None:
        super().__init__(settings.magic, services=0, relay=False, user_agent=settings.user_agent,
                         start_height=settings.start_height, negotiate=("sendaddrv2",), answer_pings=False)
        self.settings = settings
        self.want_addrs = want_addrs
        self.result = ProbeResult(False)
        self.done_after: float | None = None  # set once the handshake is done: success from then on
        self.finished = False  # enough addresses: success now
        self.failure = ""

    def fail(self, reason: str, ban_seconds: float = 0.0) -> None:
        self.failure, self.result.ban_seconds = reason, ban_seconds
        self.abort(reason)

    def on_framing_error(self, error: FramingError) -> None:
        self.fail(f"bad header: {error}", BAD_HEADER_BAN)

    def on_bad_checksum(self, command: str, payload: bytes) -> None:
        self.fail("bad checksum")

    def on_undecodable(self, command: str, payload: bytes, error: DecodeError) -> None:
        self.fail(f"undecodable {command}: {error}")

    def on_version(self, msg: msg_version) -> None:
        if msg is self.their_version:  # the first one; bitcoin.cpp ignores repeats
            r = self.result
            r.version, r.services, r.user_agent, r.height = msg.version, msg.services, msg.user_agent, msg.start_height

    def on_verack(self, msg: msg_verack) -> None:
        if not self.verack_received or self.done_after is not None:
            return  # before version (ignored) or a repeat
        now = asyncio.get_running_loop().time()
        if self.want_addrs:
            self.send(msg_getaddr())
            self.done_after = now + self.settings.timeout
        else:
            self.done_after = now

    def on_addr(self, msg: msg_addr | msg_addrv2) -> None:
        if not self.verack_received or not self.want_addrs or self.finished:
            return
        self.result.addrs.extend(_sanitise(msg.addrs))
        if len(msg.addrs) > 1 and self.done_after is not None:
            self.done_after = min(self.done_after, asyncio.get_running_loop().time() + self.settings.linger)
        if len(self.result.addrs) > MAX_ADDRS_PER_PROBE:
            self.finished = True

    on_addrv2 = on_addr


async def probe(ip: str, port: int, settings: ProbeSettings, want_addrs: bool) -> ProbeResult:
    """Handshake with one node and, if asked, collect its addresses. Never raises for network trouble."""
    verdict, rest = await start_probe(ip, port, settings, want_addrs)
    return verdict if rest is None else await rest.finish()


class PendingProbe:
    """What is left of a probe whose handshake is done: sipa's wait for the addr answer."""

    def __init__(self, prober: _Prober, deadline: float) -> None:
        self.prober = prober
        self.deadline = deadline

    async def finish(self) -> ProbeResult:
        """The whole probe's result: the addresses, and not ok if the peer misbehaved meanwhile
        (with `ban_seconds` for a bad header)."""
        try:
            await _drive(self.prober, self.deadline, handshake_only=False)
        finally:
            await self.prober.close()
        return self.prober.result

    async def close(self) -> None:
        await self.prober.close()


async def start_probe(ip: str, port: int, settings: ProbeSettings,
                      want_addrs: bool) -> tuple[ProbeResult, PendingProbe | None]:
    """The probe up to its verdict: the result once the handshake is done (ok) or failed, and what
    is left of it (PendingProbe), None when nothing is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.timeout  # handshake must finish by then (bitcoin.cpp HANDSHAKE_TIMEOUT)
    p = _Prober(settings, want_addrs)
    try:
        await p.connect(ip, port, settings.timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return ProbeResult(False, reason=f"connect: {e or 'timeout'}"), None
    try:
        p.send_version()
        await p.drain()
        over = await _drive(p, deadline, handshake_only=True)
    except BaseException:
        await p.close()
        raise
    if over:
        await p.close()
        return p.result, None
    return replace(p.result, ok=True, addrs=[]), PendingProbe(p, deadline)


async def _drive(p: _Prober, deadline: float, handshake_only: bool) -> bool:
    """Run the probe until it is over (True, p.result final) or, with `handshake_only`, until the
    handshake is done (False)."""
    loop = asyncio.get_running_loop()
    result = p.result
    while not p.finished:
        if handshake_only and p.done_after is not None:
            return False
        now = loop.time()
        until = p.done_after if p.done_after is not None else deadline
        if now >= until:
            if p.done_after is None:
                result.reason = "handshake timeout"
            else:
                result.ok = True
            return True
        before = p.done_after
        try:
            await p.wait_until(lambda: p.finished or p.done_after != before, until - now, what="probe step")
        except TimeoutError:
            continue
        except ConnectionError:
            # a failed check, or the peer left (bitcoin.cpp: "connection closed prematurely")
            result.reason = p.failure or p.close_reason
            return True
        await p.drain()
    result.ok = True
    return True


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
        self._collecting: dict[asyncio.Task, PendingProbe] = {}  # addr collections of judged probes
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
        pending = set(self._workers) | set(self._collecting)
        while pending:
            for t in pending:
                t.cancel()
            done, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    log.error("crawler worker failed", exc_info=t.exception())
        self._workers = []
        # a collection cancelled before its first step never ran its own close
        await asyncio.gather(*(rest.close() for rest in self._collecting.values()))
        self._collecting.clear()

    async def _worker(self) -> None:
        while True:
            seq = self._wake_seq
            rec = self.db.next_to_try()
            if rec is None:
                await self._idle(seq)
                continue
            ep = rec.endpoint
            want_addrs = rec.our_last_success + self.getaddr_interval < time.time() and \
                len(self._collecting) < MAX_COLLECTING
            try:
                await self._rate_limit()
                verdict, rest = await self._dial(ep, want_addrs)
                if rest is not None and not want_addrs:
                    verdict = await rest.finish()  # its linger: nothing more to wait for
                    rest = None
            except asyncio.CancelledError:
                self.db.skip(ep)  # shutting down: no verdict on this node, just put it back
                raise
            self._record(ep, verdict)
            if rest is not None:
                task = asyncio.create_task(self._collect(ep, rest), name=f"seeder-addrs-{ep[0]}")
                self._collecting[task] = rest
                task.add_done_callback(lambda t: self._collecting.pop(t, None))

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

    async def _collect(self, ep: Endpoint, rest: PendingProbe) -> None:
        """The rest of a probe already judged good: learn its addresses; a bad header meanwhile
        bans the node as it would have failed the probe (other trouble after the handshake, like
        the peer leaving, does not undo the verdict)."""
        result = await rest.finish()
        if not result.ok and result.ban_seconds:
            self.counters.probes["failed"] += 1
            self.db.ban(ep, result.ban_seconds * self.config.time_scale)
        self._learn(result.addrs)

    async def _dial(self, ep: Endpoint, want_addrs: bool) -> tuple[ProbeResult, PendingProbe | None]:
        self.db.sandbox.check(ep[0])  # raises SandboxError; the db never queues such a node anyway
        self.attempts.append((time.time(), ep[0], ep[1]))
        dial = self.config.endpoints.get(ep[0])
        host, port = (dial.rsplit(":", 1)[0], int(dial.rsplit(":", 1)[1])) if dial else ep
        return await start_probe(host, port, self.settings, want_addrs)

    def _record(self, ep: Endpoint, result: ProbeResult) -> None:
        if result.ok:
            self.counters.probes["ok"] += 1
            self.db.record_success(ep, result.version, result.user_agent, result.height, result.services)
        else:
            self.counters.probes["failed"] += 1
            self.db.record_failure(ep, result.ban_seconds * self.config.time_scale)
        log.debug("probe %s:%d ok=%s version=%d reason=%s addrs=%d", ep[0], ep[1], result.ok, result.version,
                  result.reason, len(result.addrs))
        # the node just tried is queued again, which changes when the next one is due
        self._learn(result.addrs)

    def _learn(self, addrs: list[NetAddr]) -> None:
        if addrs:
            # addrman applies a 2 h penalty to relayed times; sipa does not, nor do we.
            self.db.add_many((a.ip, a.port, a.services, float(a.time)) for a in addrs)
        self._notify()  # wake idle workers: there may be new addresses, or a node due sooner
