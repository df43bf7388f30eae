"""Ban list and discouragement, after Bitcoin Core's BanMan (``banman.h``/``banman.cpp``;
protocol.md §3.1).

- **Bans** (≤0.20.0 misbehaviour, and manual ``setban`` in every era): an address or a CIDR subnet
  is refused inbound and never dialled until its expiry. Bans are persisted, so they survive a
  restart: Core writes ``banlist.dat`` (``banlist.json`` since 22.0); we write JSON, atomically
  (temp file + fsync + rename), and load it on construction. Every change calls ``on_change``:
  by default the list is written at once; the node batches a ban storm instead (peering/connman.py
  writes at most once per BANLIST_FLUSH_DELAY, off the event loop).
- **Discouragement** (0.20.1+): single addresses, no expiry, not persisted, not listed. Core keeps
  them in a ``CRollingBloomFilter(50000, 0.000001)``, which forgets the oldest entries once full
  and has a one-in-a-million false-positive rate. We keep an exact LRU set bounded at 50,000
  entries: the same capacity and "oldest forgotten first", without false positives.

The clock is injected (wall-clock seconds), so a test or a time-scaled scenario controls expiry.
"""

from __future__ import annotations

import builtins
import functools
import ipaddress
import json
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..atomicfile import write_json_atomic

DISCOURAGED_CAPACITY = 50_000  # banman.h: m_discouraged{50000, 0.000001}
BANLIST_VERSION = 1  # our file format; Core's banlist.json is {"banned_nets": [...]} version 1

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BanListError(ValueError):
    """The ban list file cannot be read or does not hold a ban list."""


@dataclass(slots=True)
class BanEntry:
    reason: str
    created: float  # clock() when banned (Core: nCreateTime)
    until: float  # clock() at which the ban ends (Core: nBanUntil)
    first_misbehaviour: float | None = None  # clock() of the peer's first scored event (not Core's: for time to ban)

    def to_dict(self, net: object) -> dict[str, object]:
        d: dict[str, object] = {"address": str(net), "reason": self.reason, "created": self.created, "until": self.until}
        if self.first_misbehaviour is not None:
            d["first_misbehaviour"] = self.first_misbehaviour
        return d


@functools.lru_cache(maxsize=1 << 14)  # every dial and inbound connection asks is_banned/is_discouraged
def _address(ip: str | IPAddress) -> IPAddress:
    """Parse one address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is treated as the IPv4 address, as a
    dual-stack socket reports IPv4 peers that way."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"not an IP address: {ip!r} (give the host only, without a port)") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _network(ip_or_cidr: str | IPAddress | IPNetwork) -> IPNetwork:
    """A subnet like Core's setban: "a.b.c.d" is a /32 (/128 for IPv6), "a.b.c.0/24" a subnet.
    Host bits are cleared ("10.1.2.3/16" bans 10.1.0.0/16), as CSubNet does."""
    if isinstance(ip_or_cidr, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return ip_or_cidr
    text = str(ip_or_cidr)
    if "/" not in text:
        return ipaddress.ip_network(_address(text))
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR subnet: {ip_or_cidr!r}") from None


class BanMan:
    """Bans (subnets, with expiry, persisted to `path`) and discouraged addresses (in memory)."""

    def __init__(self, path: str | None, clock: Callable[[], float], default_bantime: float,
                 on_change: Callable[[], None] | None = None) -> None:
        if default_bantime <= 0:
            raise ValueError(f"default_bantime must be > 0 seconds, got {default_bantime!r}")
        self.path = path
        self.clock = clock
        self.default_bantime = float(default_bantime)
        self._bans: dict[IPNetwork, BanEntry] = {}
        # Distinct prefix lengths among the bans, so is_banned() costs one dict lookup per
        # length instead of a scan of every ban (an attack scenario can ban thousands of hosts).
        self._prefixes: Counter[tuple[int, int]] = Counter()  # (ip version, prefixlen) -> bans
        self._discouraged: OrderedDict[IPAddress, None] = OrderedDict()
        # For metrics: bans issued by reason (a _total counter) and discouragements issued.
        self.bans_by_reason: Counter[str] = Counter()
        self.discouraged_total = 0
        self.on_change = on_change or self.flush  # the list changed: persist it (now, or batched)
        self.writes = 0  # files written (a ban storm must not mean one write per ban)
        self._version = 0  # bumped per change; a write of an older snapshot never replaces a newer one
        self._written = -1
        self._write_lock = threading.Lock()  # writes may run on executor threads
        if path is not None and os.path.exists(path):
            self._load()
            self.sweep()  # bans that expired while we were down (Core sweeps after loading too)

    # -- bans ---------------------------------------------------------------------------------

    def ban(self, ip_or_cidr: str, reason: str, duration: float | None = None,
            first_misbehaviour: float | None = None) -> None:
        """Ban an address or subnet for `duration` seconds (default: the bantime). Re-banning
        only ever extends a ban, as Core's BanMan::Ban does."""
        if duration is None:
            duration = self.default_bantime
        if duration <= 0:
            raise ValueError(f"ban duration must be > 0 seconds, got {duration!r}")
        net = _network(ip_or_cidr)
        now = self.clock()
        entry = BanEntry(reason, now, now + duration, first_misbehaviour)
        self.bans_by_reason[reason] += 1
        old = self._bans.get(net)
        if old is not None and old.until >= entry.until:
            return
        self._set(net, entry)
        self._save()

    def unban(self, ip: str) -> bool:
        """Lift the ban on exactly this address or subnet (not on subnets containing it, as Core's
        setban remove). Returns whether there was one."""
        net = _network(ip)
        if net not in self._bans:
            return False
        self._drop(net)
        self._save()
        return True

    @property
    def empty(self) -> bool:
        """Nothing banned or discouraged: a caller asking about many addresses it holds already (a
        getaddr answer's) can skip parsing each one."""
        return not self._prefixes and not self._discouraged

    def is_banned(self, ip: str) -> bool:
        """Whether `ip` falls in an unexpired banned address or subnet."""
        addr = _address(ip)
        now = self.clock()
        for version, prefixlen in self._prefixes:
            if version != addr.version:
                continue
            net_type = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
            entry = self._bans.get(net_type((int(addr), prefixlen), strict=False))
            if entry is not None and entry.until > now:
                return True
        return False

    def sweep(self) -> int:
        """Drop expired bans (Core's SweepBanned) and persist; returns how many were dropped."""
        now = self.clock()
        expired = [net for net, e in self._bans.items() if e.until <= now]
        for net in expired:
            self._drop(net)
        if expired:
            self._save()
        return len(expired)

    def list(self) -> builtins.list[dict[str, object]]:
        """Current bans, oldest first: address (CIDR), reason, created, until. Sweeps first, like
        Core's GetBanned."""
        self.sweep()
        return [e.to_dict(net) for net, e in sorted(self._bans.items(), key=lambda item: item[1].created)]

    @property
    def banned_count(self) -> int:
        """Bans in force now (a gauge), without sweeping."""
        now = self.clock()
        return sum(1 for e in self._bans.values() if e.until > now)

    # -- discouragement -----------------------------------------------------------------------

    def discourage(self, ip: str) -> None:
        """Discourage an address: no expiry, not persisted; the oldest is forgotten past 50,000."""
        addr = _address(ip)
        self.discouraged_total += 1
        self._discouraged[addr] = None
        self._discouraged.move_to_end(addr)
        if len(self._discouraged) > DISCOURAGED_CAPACITY:
            self._discouraged.popitem(last=False)

    def is_discouraged(self, ip: str) -> bool:
        return _address(ip) in self._discouraged

    def discouraged_addresses(self) -> builtins.list[str]:
        return [str(a) for a in self._discouraged]

    @property
    def discouraged_count(self) -> int:
        return len(self._discouraged)

    # -- both ---------------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every ban and every discouragement (Core's clearbanned clears bans only; we
        also reset discouragement so a scenario can start from a clean slate)."""
        self._bans.clear()
        self._prefixes.clear()
        self._discouraged.clear()
        self._save()

    # -- internals ----------------------------------------------------------------------------

    def _set(self, net: IPNetwork, entry: BanEntry) -> None:
        if net not in self._bans:
            self._prefixes[(net.version, net.prefixlen)] += 1
        self._bans[net] = entry

    def _drop(self, net: IPNetwork) -> None:
        del self._bans[net]
        key = (net.version, net.prefixlen)
        self._prefixes[key] -= 1
        if self._prefixes[key] == 0:
            del self._prefixes[key]

    def _save(self) -> None:
        if self.path is None:
            return
        self._version += 1
        self.on_change()

    def snapshot(self) -> tuple[int, dict[str, object]]:
        """(change number, file contents) of the list as it is now; cheap enough for the loop."""
        return self._version, {
            "version": BANLIST_VERSION,
            "banned": [e.to_dict(net) for net, e in self._bans.items()],
        }

    def write(self, snapshot: tuple[int, dict[str, object]]) -> bool:
        """Write a snapshot() (from any thread); skipped if a newer one is already on disk."""
        if self.path is None:
            return False
        version, doc = snapshot
        with self._write_lock:
            if version <= self._written:
                return False
            write_json_atomic(self.path, doc, indent=1)  # a crash leaves the old list or the new one
            self._written = version
            self.writes += 1
            return True

    def flush(self) -> None:
        """Write the current list now, on this thread."""
        self.write(self.snapshot())

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BanListError(f"ban list {self.path}: cannot read it as JSON ({e})") from e
        try:
            if doc.get("version") != BANLIST_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}, expected {BANLIST_VERSION}")
            for i, item in enumerate(doc["banned"]):
                try:
                    net = _network(item["address"])
                    first = item.get("first_misbehaviour")
                    entry = BanEntry(str(item["reason"]), float(item["created"]), float(item["until"]),
                                     None if first is None else float(first))
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(f"entry {i} ({item!r}) is invalid: {e}") from None
                self._set(net, entry)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            self._bans.clear()
            self._prefixes.clear()
            raise BanListError(f"ban list {self.path} is corrupt: {e}; fix or delete it") from e
