"""The seeder role: crawler + authoritative DNS server + control API, from one SeederConfig.

A rogue seeder (one that takes over the honest seeder's address after the harness stops it) is the
same service started with `crawl: false`, `static_nodes` and any mode.

Entry points: `Seeder` (start/stop, for tests and embedding), `run_seeder(config)` (runs until
cancelled) and `main_from_args(argv)` for `harness-node seeder --config FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..net.sandbox import Sandbox
from ..procutil import new_event_loop
from ..tokenfile import read_token_file
from .args import build_parser
from .config import WARMUP_SAMPLE, SeederConfig, SeederConfigError
from .control import ControlServer
from .crawler import Crawler
from .dnsserver import DnsServer, Responder
from .metrics import SeederCollector, SeederCounters, make_registry
from .modes import AnswerContext, GoodCache, Mode, ServedNode, make_mode
from .nodedb import NodeDb
from .reliability import GoodRule

log = logging.getLogger("harness_node.seeder")


class DbNodeSource:
    """Serves the crawler's good set, plus any static nodes from the config.

    Testbed adaptation 13 (docs/protocol.md): with a warm-up (`share` > 0), the crawled good set is
    served only once `share` of the nodes judged so far have answered, judged over `sample` nodes at
    least, or once the seconds given to `start_warmup` (called as the seeder starts) have passed. A
    testnet's seeder is told every node while their host processes still start, and while some
    hosts are not up yet its good set holds only the others' nodes: answering from it named the
    nodes of the process that started first to every node asking, whose slots those few then
    filled and kept evicting from (docs/benchmarks.md, issue 17, twenty-fourth round). Once the
    nodes it tries do answer, the good set is a sample of the whole testnet however small it still
    is.
    """

    def __init__(self, db: NodeDb, static: Sequence[ServedNode] = (), share: float = 0.0, sample: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.static = list(static)
        self.share, self.sample = share, sample
        self.clock = clock
        self._open_at = math.inf  # no deadline until start_warmup
        self._warm = share <= 0

    def start_warmup(self, seconds: float) -> None:
        """The crawl begins now: the wait for the nodes ends in `seconds` at the latest."""
        self._open_at = self.clock() + seconds

    @property
    def warm(self) -> bool:
        if not self._warm:
            judged, up = len(self.db.judged), len(self.db.seen_up)
            if (judged >= self.sample and up >= self.share * judged) or self.clock() >= self._open_at:
                self._warm = True
                log.info("seeder warm: %d of the %d nodes judged answered", up, judged)
        return self._warm

    @property
    def generation(self) -> int:
        return self.db.generation

    def good_nodes(self) -> list[ServedNode]:
        crawled = [ServedNode(r.ip, r.services) for r in self.db.good_records()] if self.warm else []
        return crawled + self.static

    def failed_nodes(self) -> list[ServedNode]:
        return [ServedNode(r.ip, r.services) for r in self.db.failed_records()]


class Seeder:
    def __init__(self, config: SeederConfig) -> None:
        self.config = config
        self.counters = SeederCounters()
        rule = GoodRule(default_port=config.default_port, required_height=config.required_height,
                        required_version=config.required_version, time_scale=config.time_scale)
        self.db = NodeDb(rule, config.retry_seconds, Sandbox(config.allowlist))
        static = [ServedNode(ip, config.static_services) for ip, _ in config.static_endpoints]
        share = config.warmup_share if config.crawl and config.seeds else 0.0
        self.source = DbNodeSource(self.db, static, share, min(len(config.seeds), WARMUP_SAMPLE))
        rng = random.Random()
        ctx = AnswerContext(self.source, GoodCache(self.source, config.cache_max_age, rng), rng)
        self.responder = Responder(config, make_mode(config.mode, config.mode_params), ctx, self.counters)
        self.crawler = Crawler(config, self.db, self.counters) if config.crawl else None
        self.dns = DnsServer(self.responder, config.dns_host, config.dns_port)
        self.registry = make_registry(SeederCollector(self.counters, self.db.stats, lambda: self.responder.mode.name))
        self.control = ControlServer(self, config.control_host, config.control_port, config.control_token)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.dns.start()
            await self.control.start()
            if self.crawler is not None:
                self.source.start_warmup(self.config.warmup_seconds)
                self.crawler.add_seeds(self.config.seed_endpoints)
                await self.crawler.start()
        except BaseException:
            await self.stop()
            raise
        log.info("seeder for %s serving DNS on %s:%d, control on %s:%d, mode %s, crawler %s",
                 self.config.zone, self.config.dns_host, self.dns.port, self.config.control_host,
                 self.control.port, self.mode.name, "on" if self.crawler else "off")

    async def stop(self) -> None:
        if self.crawler is not None:
            await self.crawler.stop()
        await self.control.stop()
        await self.dns.stop()

    async def __aenter__(self) -> "Seeder":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- control ----------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self.responder.mode

    def set_mode(self, name: str, params: dict[str, Any] | None = None) -> Mode:
        """Switch the answer policy; raises ModeError (nothing changes) for a bad name or parameters."""
        mode = make_mode(name, params)
        self.responder.mode = mode
        self.counters.mode_switches += 1
        log.info("seeder mode -> %s %s", mode.name, mode.params())
        return mode

    def status(self) -> dict[str, Any]:
        s = self.db.stats()
        good = sorted(f"{r.ip}:{r.port}" for r in self.db.good_records())
        good += [f"{ip}:{port}" for ip, port in self.config.static_endpoints]
        return {
            "zone": self.config.zone, "mode": self.mode.name, "params": self.mode.params(),
            "crawler": self.crawler is not None, "good": good, "warm": self.source.warm, "known": s.known, "new": s.new,
            "tracked": s.tracked, "banned": s.banned, "undialable": s.undialable, "attempts": s.attempts,
            "dns": f"{self.config.dns_host}:{self.dns.port}",
        }


class SeederThread:
    """A Seeder on its own event loop in a daemon thread, for in-process use (tests, benchmarks,
    a local backend). `call` runs a function on the seeder's loop, where its state lives."""

    def __init__(self, config: SeederConfig) -> None:
        self.seeder = Seeder(config)
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="seeder", daemon=True)

    def start(self, timeout: float = 10.0) -> Seeder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.seeder.start(), self._loop).result(timeout)
        return self.seeder

    def call(self, fn: Any, *args: Any, timeout: float = 10.0) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.seeder.stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()

    def __enter__(self) -> Seeder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def run_seeder(config: SeederConfig) -> None:
    """Run a seeder until cancelled (or SIGTERM/SIGINT when run as the main program)."""
    seeder = Seeder(config)
    await seeder.start()
    try:
        await asyncio.Event().wait()
    finally:
        await seeder.stop()


def main_from_args(argv: Sequence[str]) -> int:
    """`harness-node seeder --config FILE`: returns the process exit code (2 for a bad config)."""
    return run_from_args(build_parser().parse_args(list(argv)))


def run_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = SeederConfig.from_file(args.config)
        if getattr(args, "token_file", None):
            config.control_token = read_token_file(args.token_file)
        config.require_token_off_loopback()
    except (SeederConfigError, ValueError) as e:
        log.error("bad seeder config: %s", e)
        return 2
    # uvloop when available, as the node hosts: asyncio's own loop reads one datagram per socket and
    # loop turn, and with hundreds of probes a turn it read ~4 DNS queries a second while 10,000
    # nodes asked (libuv reads up to 32 a turn)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_main(config))


async def _main(config: SeederConfig) -> int:
    task = asyncio.create_task(run_seeder(config))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return 0
    except OSError as e:
        log.error("seeder failed: %s", e)
        return 1
    return 0
