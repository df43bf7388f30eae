"""The seeder's address database, modelled on sipa/bitcoin-seeder's CAddrDb (db.h, db.cpp).

Nodes are new (never tried), tracked (tried, queued by last try), good (a subset of tracked) or
banned. Unlike sipa, addresses outside the sandbox allowlist are stored (they count as known) but
never queued for a connection (testbed adaptation 6). Pure bookkeeping: the crawler does the I/O.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..net.sandbox import Sandbox
from .reliability import OLD_VERSION, GoodRule, NodeRecord

Endpoint = tuple[str, int]

# A node never seen up is retried after 2, 4, 8 ... s (wall time: how long a host takes to start,
# capped by retry_seconds), for its first BOOT_TRIES failures; then as sipa (_fail).
BOOT_RETRY = 2.0
BOOT_TRIES = 8
# Guards memory against an addr flood; sipa has no cap, a testbed has at most thousands of hosts.
MAX_KNOWN = 200_000


@dataclass(frozen=True, slots=True)
class DbStats:
    known: int  # every stored endpoint, dialable or not
    new: int  # dialable, never tried
    tracked: int  # tried at least once
    good: int
    banned: int
    undialable: int  # outside the allowlist: stored, never dialled
    attempts: int  # probes started, ever


class NodeDb:
    def __init__(self, rule: GoodRule, retry_seconds: float, sandbox: Sandbox,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.rule = rule
        self.retry_seconds = retry_seconds
        self.sandbox = sandbox
        self.clock = clock
        self._rng = rng or random.Random()
        self.records: dict[Endpoint, NodeRecord] = {}
        self.banned: dict[Endpoint, float] = {}  # endpoint -> unban time
        self.good: set[Endpoint] = set()
        self._new: deque[Endpoint] = deque()
        self._tracked: deque[Endpoint] = deque()  # ordered by our_last_try, oldest first
        self._in_flight: set[Endpoint] = set()
        self._booting: list[tuple[float, Endpoint]] = []  # heap by due time: never seen up (_fail)
        self.attempts = 0
        # adaptation 13's warm-up: the endpoints ever judged, and how many of them ever answered
        self.judged: set[Endpoint] = set()
        self.seen_up: set[Endpoint] = set()
        self._undialable = 0  # never probed, so never banned or removed: a plain count suffices
        self.generation = 0  # bumped whenever a node leaves the good set (DNS answer caches watch it)

    # --- adding ---------------------------------------------------------------------------

    def is_dialable(self, ip: str) -> bool:
        return self.sandbox.allows(ip)

    def add(self, ip: str, port: int, services: int = 0, seen: float = 0.0, force: bool = False) -> bool:
        """Learn an endpoint (db.cpp Add_). Returns True if it was new. `force` is for configured seeds."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if port == 0 or addr.is_unspecified or addr.is_multicast:
            return False
        ep = (str(addr), port)
        until = self.banned.get(ep)
        if until is not None:
            # A banned node comes back only when forced, or when re-announced after its ban ends.
            if force or (until < self.clock() and seen > until):
                del self.banned[ep]
            else:
                return False
        rec = self.records.get(ep)
        if rec is not None:
            # Services stay as the node's own version message said; gossip only refreshes the time.
            rec.last_seen = max(rec.last_seen, seen)
            if force:
                rec.ignore_till = 0.0
            return False
        if len(self.records) >= MAX_KNOWN:
            return False
        self.records[ep] = NodeRecord(ip=ep[0], port=port, services=services, last_seen=seen)
        if self.is_dialable(ep[0]):
            self._new.append(ep)
        else:
            self._undialable += 1
        return True

    def add_many(self, addrs: Iterable[tuple[str, int, int, float]]) -> int:
        return sum(self.add(ip, port, services, seen) for ip, port, services, seen in addrs)

    # --- choosing what to try -------------------------------------------------------------

    def next_to_try(self) -> NodeRecord | None:
        """Pick a node to probe and mark it in flight (db.cpp Get_), or None if nothing is due.

        A node never seen up whose retry is due goes first (adaptation 11). Then, like sipa, choose
        between new and tracked nodes in proportion to their numbers; tracked nodes are due
        `retry_seconds` after their last try and skipped while ignored.
        """
        now = self.clock()
        ep = self._pop_booting(now) or self._pop_new_or_due(now)
        if ep is None:
            return None
        self._in_flight.add(ep)
        self.attempts += 1
        return self.records[ep]

    def _pop_new_or_due(self, now: float) -> Endpoint | None:
        n_new, n_tracked = len(self._new), len(self._tracked)
        if n_new + n_tracked == 0:
            return None
        order = ("new", "tracked") if self._rng.randrange(n_new + n_tracked) < n_new else ("tracked", "new")
        for which in order:
            ep = self._pop_new() if which == "new" else self._pop_due(now)
            if ep is not None:
                return ep
        return None

    def _pop_booting(self, now: float) -> Endpoint | None:
        while self._booting and self._booting[0][0] <= now:
            ep = heapq.heappop(self._booting)[1]
            if ep in self.records and ep not in self._in_flight:
                return ep
        return None

    def _pop_new(self) -> Endpoint | None:
        while self._new:
            ep = self._new.popleft()
            if ep in self.records:
                return ep
        return None

    def _pop_due(self, now: float) -> Endpoint | None:
        for _ in range(len(self._tracked)):
            ep = self._tracked[0]
            rec = self.records.get(ep)
            if rec is None:
                self._tracked.popleft()
                continue
            if now - rec.our_last_try < self.retry_seconds:
                return None  # the queue is in last-try order: nothing behind it is due either
            self._tracked.popleft()
            if rec.ignore_till > now:
                self._tracked.append(ep)
                continue
            return ep
        return None

    def seconds_until_due(self) -> float | None:
        """When the next node becomes due (a starting one or the oldest tracked); None if nothing is queued."""
        if self._new:
            return 0.0
        now = self.clock()
        soonest: float | None = self._booting[0][0] if self._booting else None
        for ep in self._tracked:
            rec = self.records.get(ep)
            if rec is None:
                continue
            due = max(rec.our_last_try + self.retry_seconds, rec.ignore_till)
            soonest = due if soonest is None else min(soonest, due)
            if rec.ignore_till <= now:
                break  # the queue is in last-try order: nodes behind this one are due later
        return None if soonest is None else max(0.0, soonest - now)

    def skip(self, ep: Endpoint) -> None:
        """Put a node back without a verdict (db.cpp Skipped_), e.g. when a probe is cancelled."""
        self._in_flight.discard(ep)
        rec = self.records.get(ep)
        if rec is None:
            return
        if rec.our_last_try == 0:
            self._new.appendleft(ep)
        else:
            self._tracked.append(ep)

    # --- results --------------------------------------------------------------------------

    def record_success(self, ep: Endpoint, version: int, user_agent: str, height: int, services: int) -> None:
        """A completed handshake (db.cpp Good_). Versions below 31900 are failures with a ban."""
        self._in_flight.discard(ep)
        rec = self.records.get(ep)
        if rec is None:
            return
        rec.client_version, rec.user_agent, rec.height, rec.services = version, user_agent, height, services
        self.judged.add(ep)
        if rec.success == 0 and rec.total:
            # Testbed adaptation 11: failures before a node's first answer were its start, not its
            # unreliability; kept, they left it "not good" once up (2,057 of 10,000 good after 97 s
            # when the seeder started before the nodes, docs/benchmarks.md, issue 17)
            rec.forget_history()
        if version and version < OLD_VERSION:
            # sipa would only ban this node after a later failure; Core drops it at once (< 31800).
            self._fail(rec, 0.0)
            return
        rec.record(True, self.clock(), self.retry_seconds, self.rule)
        self.seen_up.add(ep)
        self.banned.pop(ep, None)
        if rec.is_good(self.rule):
            # no generation bump: a new good node reaches the answers at the cache's next refresh
            # (sipa's rule); dropping every cache at each of 10,000 first successes made each DNS
            # answer during a crawl sample the whole good set
            self.good.add(ep)
        self._tracked.append(ep)

    def record_failure(self, ep: Endpoint, ban_seconds: float = 0.0) -> None:
        """A failed probe (db.cpp Bad_): out of the good set at once, banned if the history says so."""
        self._in_flight.discard(ep)
        rec = self.records.get(ep)
        if rec is not None:
            self._fail(rec, ban_seconds)

    def ban(self, ep: Endpoint, seconds: float) -> None:
        """Ban a node judged good whose probe went bad after the handshake (a bad header while
        the crawler waited for its addr answer): as the failed probe would have."""
        rec = self.records.get(ep)
        if rec is not None and seconds > 0:
            self._fail(rec, seconds)

    def _fail(self, rec: NodeRecord, ban_seconds: float) -> None:
        now = self.clock()
        self.judged.add(rec.endpoint)
        rec.record(False, now, self.retry_seconds, self.rule)
        ep = rec.endpoint
        ban = max(ban_seconds, rec.ban_seconds(self.rule))
        if ep in self.good:
            self.good.discard(ep)
            self.generation += 1
        if ban > 0:
            self.banned[ep] = now + ban
            del self.records[ep]
        elif rec.success == 0 and rec.total <= BOOT_TRIES:
            # Testbed adaptation 11: a testnet's nodes start together with its seeder, so a node never
            # seen up is most likely still starting; sipa would retry it after retry_seconds (1000 s)
            due = now + min(self.retry_seconds, BOOT_RETRY * 2 ** (rec.total - 1))
            heapq.heappush(self._booting, (due, ep))
        else:
            self._tracked.append(ep)

    # --- views ----------------------------------------------------------------------------

    def good_records(self) -> list[NodeRecord]:
        return [self.records[ep] for ep in self.good if ep in self.records]

    def failed_records(self) -> list[NodeRecord]:
        """Tracked nodes whose newest probe failed: hosts that are down (stale mode serves them)."""
        return [r for r in self.records.values() if r.last_ok is False]

    def stats(self) -> DbStats:
        return DbStats(known=len(self.records), new=len(self._new), tracked=len(self._tracked),
                       good=len(self.good), banned=len(self.banned), undialable=self._undialable,
                       attempts=self.attempts)
