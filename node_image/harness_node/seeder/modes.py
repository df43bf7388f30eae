"""Answer policies: what the seeder puts in an A/AAAA answer for a seed name.

`honest` draws from the good set as sipa does (a per-flag cache of half the good nodes, refreshed
on use, main.cpp cacheHit/GetIPList). The malicious twins lie in the ways a real attacker-run seeder
could: only attacker addresses (`poison`), a share of them (`mixed`), dead hosts (`stale`), nothing
(`empty`, `nxdomain`) or late (`slow`). A rogue seeder that takes over the honest one's address is
just a seeder started in any mode with static nodes and no crawler (service.py).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

MAX_SLOW_DELAY = 60.0  # longer than any resolver waits; a bigger value is a typo
GOOD_CACHE_MAX = 1000  # main.cpp cacheHit: db.GetIPs(..., 1000, ...)


class ModeError(ValueError):
    """An unknown mode or bad parameters; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ServedNode:
    ip: str
    services: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4


class NodeSource(Protocol):
    """What the answer policies read: the crawler's database or a static list."""

    generation: int  # changes whenever a node leaves the good set

    def good_nodes(self) -> Sequence[ServedNode]: ...

    def failed_nodes(self) -> Sequence[ServedNode]: ...


@dataclass(frozen=True, slots=True)
class AnswerQuery:
    families: tuple[int, ...]  # (4,), (6,) or (4, 6) for ANY
    flags: int  # requested service flags; 0 = the zone apex
    max_records: int  # how many records fit in this answer


@dataclass(frozen=True, slots=True)
class Answer:
    addresses: list[str]
    nxdomain: bool = False
    delay: float = 0.0


class GoodCache:
    """sipa's per-flag answer cache: min(1000, good/2) random good nodes, refreshed when hit often.

    The half-of-good cap means one answer never reveals the whole good set. The cache is also
    dropped when a node leaves the source's good set, so a node that went bad is never served again;
    nodes that become good are served from the next refill.
    """

    def __init__(self, source: NodeSource, max_age: float, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.max_age = max_age
        self.rng = rng
        self.clock = clock
        self._flags: dict[int, _Cached] = {}
        self._generation = -1

    def ips(self, flags: int, families: tuple[int, ...]) -> list[str]:
        """The cached pool's addresses of these families; each answer samples from it."""
        entry = self._entry(flags)
        ips = entry.ips.get(families)
        if ips is None:  # once per refill, not per answer: at 10,000 nodes this filter was a quarter of the seeder
            ips = entry.ips[families] = [n.ip for n in entry.nodes if n.family in families]
        return ips

    def _entry(self, flags: int) -> _Cached:
        if self.source.generation != self._generation:
            self._flags.clear()
            self._generation = self.source.generation
        now = self.clock()
        entry = self._flags.get(flags)
        if entry is None:
            entry = self._flags[flags] = _Cached(self._refill(flags), now)
            return entry
        entry.hits += 1
        size = len(entry.nodes)
        # main.cpp cacheHit: refill after ~size^2/400 hits, or when a little used cache is old.
        if entry.hits * 400 > size * size or (entry.hits * entry.hits * 20 > size and now - entry.made > self.max_age):
            entry = self._flags[flags] = _Cached(self._refill(flags), now)
        return entry

    def _refill(self, flags: int) -> list[ServedNode]:
        matching = [n for n in self.source.good_nodes() if n.services & flags == flags]
        if not matching:
            return []
        size = max(1, min(GOOD_CACHE_MAX, len(matching) // 2))
        return self.rng.sample(matching, size)


@dataclass(slots=True)
class _Cached:
    nodes: list[ServedNode]
    made: float
    hits: int = 0
    ips: dict[tuple[int, ...], list[str]] = field(default_factory=dict)  # families -> addresses


@dataclass
class AnswerContext:
    """Shared inputs of every policy."""

    source: NodeSource
    cache: GoodCache
    rng: random.Random

    def honest(self, q: AnswerQuery, limit: int | None = None) -> list[str]:
        pool = self.cache.ips(q.flags, q.families)
        return self.rng.sample(pool, min(len(pool), q.max_records if limit is None else limit))

    def failed(self, families: tuple[int, ...]) -> list[str]:
        return [n.ip for n in self.source.failed_nodes() if n.family in families]


def _sample(rng: random.Random, ips: Sequence[str], families: tuple[int, ...], n: int) -> list[str]:
    pool = [ip for ip in ips if (6 if ":" in ip else 4) in families]
    return rng.sample(pool, min(n, len(pool)))


# --- parameter checks ------------------------------------------------------------------------


def _addresses(params: dict[str, Any], mode: str, required: bool = True) -> list[str]:
    raw = params.get("addresses")
    if raw is None and not required:
        return []
    if not isinstance(raw, list) or (required and not raw):
        raise ModeError(f"mode {mode!r} needs 'addresses': a non-empty list of IP addresses")
    out = []
    for a in raw:
        try:
            out.append(str(ipaddress.ip_address(str(a))))
        except ValueError:
            raise ModeError(f"mode {mode!r}: {a!r} in 'addresses' is not an IP address") from None
    return out


def _number(params: dict[str, Any], key: str, mode: str, lo: float, hi: float) -> float:
    v = params.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ModeError(f"mode {mode!r} needs {key!r}: a number in [{lo}, {hi}], got {v!r}")
    return float(v)


# --- the policies ----------------------------------------------------------------------------


class Mode:
    name: ClassVar[str] = ""
    allowed: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: dict[str, Any]) -> None:
        extra = set(params) - self.allowed
        if extra:
            raise ModeError(f"mode {self.name!r} takes {sorted(self.allowed) or 'no parameters'}, "
                            f"not {sorted(extra)}")

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}


class HonestMode(Mode):
    name = "honest"

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        return Answer(ctx.honest(q))


class PoisonMode(Mode):
    """Only attacker addresses, whatever flags were asked for."""

    name = "poison"
    allowed = frozenset({"addresses"})

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.addresses = _addresses(params, self.name)

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        return Answer(_sample(ctx.rng, self.addresses, q.families, q.max_records))

    def params(self) -> dict[str, Any]:
        return {"addresses": self.addresses}


class MixedMode(Mode):
    """A `fraction` of each answer are attacker addresses, the rest honest good nodes.

    The answer shrinks rather than break the ratio when either side runs short, so every answer
    carries the configured share (to within rounding of one record).
    """

    name = "mixed"
    allowed = frozenset({"addresses", "fraction"})

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.addresses = _addresses(params, self.name)
        self.fraction = _number(params, "fraction", self.name, 0.0, 1.0)

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        honest = ctx.honest(q)
        attackers = _sample(ctx.rng, self.addresses, q.families, q.max_records)
        total = min(q.max_records, len(honest) + len(attackers))
        while total > 0:
            n_att = round(self.fraction * total)
            if n_att <= len(attackers) and total - n_att <= len(honest):
                break
            total -= 1
        n_att = round(self.fraction * total)
        chosen = attackers[:n_att] + honest[: total - n_att]
        ctx.rng.shuffle(chosen)
        return Answer(chosen)

    def params(self) -> dict[str, Any]:
        return {"addresses": self.addresses, "fraction": self.fraction}


class StaleMode(Mode):
    """Addresses of hosts that are down: a configured list, else nodes the crawler saw fail."""

    name = "stale"
    allowed = frozenset({"addresses"})

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.addresses = _addresses(params, self.name, required=False)

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        pool = self.addresses or ctx.failed(q.families)
        return Answer(_sample(ctx.rng, pool, q.families, q.max_records))

    def params(self) -> dict[str, Any]:
        return {"addresses": self.addresses} if self.addresses else {}


class EmptyMode(Mode):
    name = "empty"

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        return Answer([])


class NxdomainMode(Mode):
    name = "nxdomain"

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        return Answer([], nxdomain=True)


class SlowMode(Mode):
    """Honest answers, sent `delay` seconds late (past a resolver's timeout if large enough)."""

    name = "slow"
    allowed = frozenset({"delay"})

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.delay = _number(params, "delay", self.name, 0.0, MAX_SLOW_DELAY)

    def answer(self, q: AnswerQuery, ctx: AnswerContext) -> Answer:
        return Answer(ctx.honest(q), delay=self.delay)

    def params(self) -> dict[str, Any]:
        return {"delay": self.delay}


MODES: dict[str, type[Mode]] = {m.name: m for m in (HonestMode, PoisonMode, MixedMode, StaleMode, EmptyMode,
                                                    NxdomainMode, SlowMode)}


def make_mode(name: str, params: dict[str, Any] | None = None) -> Mode:
    """Build a policy from its name and parameters; raises ModeError with a message a user can act on."""
    cls = MODES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModeError(f"unknown mode {name!r}; known: {sorted(MODES)}")
    if params is not None and not isinstance(params, dict):
        raise ModeError(f"mode parameters must be a mapping, got {type(params).__name__}")
    return cls(dict(params or {}))
