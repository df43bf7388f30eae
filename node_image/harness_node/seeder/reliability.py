"""Per-node reliability as sipa/bitcoin-seeder keeps it (db.h CAddrStat / CAddrInfo), time-scaled.

Pure bookkeeping, no I/O. Each probe result updates five exponentially decayed averages (2 h, 8 h,
1 d, 1 w, 1 month). A node is "good" when its version/services/port/height qualify and either it is
young (≤3 tries, ≥50 % success) or one window is reliable enough with enough samples (protocol.md §6).
All windows, ban and ignore periods are multiplied by `time_scale` (testbed adaptation 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..wire.messages import NODE_NETWORK

DAY = 86400.0

# (name, decay time constant tau in seconds, good if reliability > threshold, and count > samples)
# db.cpp CAddrInfo::Update taus; db.h IsGood thresholds and counts.
WINDOWS: tuple[tuple[str, float, float, int], ...] = (
    ("2h", 2 * 3600.0, 0.85, 2),
    ("8h", 8 * 3600.0, 0.70, 4),
    ("1d", DAY, 0.55, 8),
    ("1w", 7 * DAY, 0.45, 16),
    ("1m", 30 * DAY, 0.35, 32),
)

# db.h GetBanTime: (window, reliability - weight + 1 below, count above, ban seconds)
BAN_RULES: tuple[tuple[str, float, int, float], ...] = (
    ("1m", 0.15, 32, 30 * DAY),
    ("1w", 0.10, 16, 7 * DAY),
    ("1d", 0.05, 8, 1 * DAY),
)
OLD_VERSION = 31900  # db.h GetBanTime: clientVersion < 31900 -> banned for a week
OLD_VERSION_BAN = 7 * DAY

# db.h GetIgnoreTime: (window, score below, count above, ignore seconds)
IGNORE_RULES: tuple[tuple[str, float, int, float], ...] = (
    ("1m", 0.20, 2, 10 * DAY),
    ("1w", 0.16, 2, 3 * DAY),
    ("1d", 0.12, 2, 8 * 3600.0),
    ("8h", 0.08, 2, 2 * 3600.0),
)

YOUNG_TRIES = 3  # db.h IsGood: total <= 3 && success * 2 >= total


@dataclass(slots=True)
class DecayedStat:
    """One window: `reliability` is the decayed success share, `weight` how much of the window is covered."""

    weight: float = 0.0
    count: float = 0.0
    reliability: float = 0.0

    def update(self, good: bool, age: float, tau: float) -> None:
        f = math.exp(-age / tau)
        self.reliability = self.reliability * f + ((1.0 - f) if good else 0.0)
        self.count = self.count * f + 1.0
        self.weight = self.weight * f + (1.0 - f)

    @property
    def failure_score(self) -> float:
        """reliability - weight + 1: low when the covered part of the window was mostly failures."""
        return self.reliability - self.weight + 1.0


@dataclass(frozen=True, slots=True)
class GoodRule:
    """What a node must offer to be served (db.h IsGood), with testbed values."""

    default_port: int
    required_height: int = 0
    required_version: int = 70001
    time_scale: float = 1.0


def _fresh_windows() -> dict[str, DecayedStat]:
    """One empty statistic per window: a record's history before its first probe."""
    return {w[0]: DecayedStat() for w in WINDOWS}


@dataclass(slots=True)
class NodeRecord:
    """Everything the seeder knows about one endpoint."""

    ip: str
    port: int
    services: int = 0  # from gossip until a version message says otherwise
    last_seen: float = 0.0  # newest gossiped time or our last try
    our_last_try: float = 0.0  # 0 = never tried
    our_last_success: float = 0.0
    ignore_till: float = 0.0
    client_version: int = 0
    user_agent: str = ""
    height: int = 0
    total: int = 0
    success: int = 0
    last_ok: bool | None = None  # result of the newest probe
    stats: dict[str, DecayedStat] = field(default_factory=_fresh_windows)

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def record(self, good: bool, now: float, retry: float, rule: GoodRule) -> None:
        """Fold one probe result into the windows (db.cpp CAddrInfo::Update)."""
        if self.our_last_try == 0:
            # The first try counts as one retry interval of history, as sipa does.
            self.our_last_try = now - retry
        age = max(0.0, now - self.our_last_try)
        self.last_seen = self.our_last_try = now
        self.total += 1
        self.last_ok = good
        if good:
            self.success += 1
            self.our_last_success = now
        for name, tau, _, _ in WINDOWS:
            self.stats[name].update(good, age, tau * rule.time_scale)
        ignore = self.ignore_seconds(rule)
        if ignore:
            self.ignore_till = max(self.ignore_till, now + ignore)

    def forget_history(self) -> None:
        """As if never tried: the next result is the first (the seeder's own knowledge, not gossip,
        is what goes)."""
        self.our_last_try = self.ignore_till = 0.0
        self.total = self.success = 0
        self.last_ok = None
        self.stats = _fresh_windows()

    def is_good(self, rule: GoodRule) -> bool:
        if self.port != rule.default_port or not self.services & NODE_NETWORK:
            return False
        # sipa also requires IsRoutable(); in the testbed every address is routable (adaptation 1).
        if self.client_version and self.client_version < rule.required_version:
            return False
        if self.height < rule.required_height:
            return False
        if self.total <= YOUNG_TRIES and self.success * 2 >= self.total:
            return True
        return any(self.stats[name].reliability > threshold and self.stats[name].count > samples
                   for name, _, threshold, samples in WINDOWS)

    def ban_seconds(self, rule: GoodRule) -> float:
        """How long to ban after a failure (0 = no ban), db.h GetBanTime, scaled."""
        if self.is_good(rule):
            return 0.0
        if self.client_version and self.client_version < OLD_VERSION:
            return OLD_VERSION_BAN * rule.time_scale
        for name, below, samples, seconds in BAN_RULES:
            s = self.stats[name]
            if s.failure_score < below and s.count > samples:
                return seconds * rule.time_scale
        return 0.0

    def ignore_seconds(self, rule: GoodRule) -> float:
        """How long to skip this node in the crawl (0 = not ignored), db.h GetIgnoreTime, scaled."""
        if self.is_good(rule):
            return 0.0
        for name, below, samples, seconds in IGNORE_RULES:
            s = self.stats[name]
            if s.failure_score < below and s.count > samples:
                return seconds * rule.time_scale
        return 0.0

    def uptimes(self) -> dict[str, float]:
        return {name: round(self.stats[name].reliability, 4) for name, *_ in WINDOWS}
