"""Bitcoin Core's address manager: the new and tried tables an eclipse attacker tries to fill.

Follows Core's addrman.cpp / addrman_impl.h (v23-25, protocol.md §2.2): keyed SHA256d bucket
placement, refcounted new-table copies, terrible-entry overwriting, test-before-evict with a
collision set, and Select's 50/50 tried/new draw with GetChance and the 1.2 chance factor.
Pure: time comes from `clock`, randomness from `rng`; no disk (addrman.py adds save/load).

Testbed additions: every time window is multiplied by `time_scale` (adaptation 5), and
`use_tried=False` makes `select` draw from the new table only (a countermeasure switch).

Memory: up to 1,000 nodes share one process, so entries and tables are compact (buckets.py), and
entries on the common port are indexed by their ip alone.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass
from random import Random
from typing import Any, Callable

from ..wire.codec import NetAddr, ip_to_bytes16
from .buckets import BUCKET_SIZE, AddrInfo, BucketTable, below
from .netgroup import NetGroups

__all__ = ["AddrTables", "AddrInfo", "AddrManCorruptError", "Windows"]

# --- Core's constants (addrman_impl.h / addrman.cpp unless noted) ---------------------------
NEW_BUCKET_COUNT = 1024  # ADDRMAN_NEW_BUCKET_COUNT (1 << 10)
TRIED_BUCKET_COUNT = 256  # ADDRMAN_TRIED_BUCKET_COUNT (1 << 8)
TRIED_BUCKETS_PER_GROUP = 8  # ADDRMAN_TRIED_BUCKETS_PER_GROUP
NEW_BUCKETS_PER_SOURCE_GROUP = 64  # ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP
NEW_BUCKETS_PER_ADDRESS = 8  # ADDRMAN_NEW_BUCKETS_PER_ADDRESS: max refcount in new
RETRIES = 3  # ADDRMAN_RETRIES: failed attempts before a never-successful entry is terrible
MAX_FAILURES = 10  # ADDRMAN_MAX_FAILURES ...
SET_TRIED_COLLISION_SIZE = 10  # ADDRMAN_SET_TRIED_COLLISION_SIZE
CHANCE_FACTOR_GROWTH = 1.2  # Select_: the acceptance factor grows after each rejection
RECENT_TRY_CHANCE = 0.01  # GetChance: x0.01 if tried in the last 10 min
FAILURE_CHANCE = 0.66  # GetChance: x0.66 per failed attempt ...
MAX_CHANCE_FAILURES = 8  # ... counting at most 8
_FAILURE_FACTORS = tuple(FAILURE_CHANCE**n for n in range(MAX_CHANCE_FAILURES + 1))

# Time windows in seconds at time_scale 1.0.
HORIZON = 30 * 86400.0  # ADDRMAN_HORIZON: older nTime is terrible
MIN_FAIL = 7 * 86400.0  # ADDRMAN_MIN_FAIL: ... MAX_FAILURES without success in this long
REPLACEMENT = 4 * 3600.0  # ADDRMAN_REPLACEMENT: a tried entry that succeeded this recently stays
TEST_WINDOW = 40 * 60.0  # ADDRMAN_TEST_WINDOW: give up testing a collision after this
TIME_PENALTY = 2 * 3600.0  # net_processing.cpp: nTime penalty on gossiped addrs (not self-ads)
FUTURE_SLACK = 10 * 60.0  # IsTerrible: nTime further in the future is terrible
TRY_GRACE = 60.0  # IsTerrible "never remove things tried in the last minute"; ResolveCollisions
RECENT_TRY = 10 * 60.0  # GetChance: deprioritise entries tried this recently
CONNECTED_UPDATE = 20 * 60.0  # Connected_: update nTime at most this often
ONLINE_WINDOW = 24 * 3600.0  # AddSingle: nTime this fresh counts as "currently online" ...
ONLINE_UPDATE = 3600.0  # ... then refresh a stored nTime that is 1 h stale,
OFFLINE_UPDATE = 24 * 3600.0  # ... otherwise only when it is 24 h stale


@dataclass(frozen=True, slots=True)
class Windows:
    """addrman's time windows in seconds, scaled by one factor (testbed adaptation 5)."""

    horizon: float
    min_fail: float
    replacement: float
    test_window: float
    time_penalty: float
    future_slack: float
    try_grace: float
    recent_try: float
    connected_update: float
    online_window: float
    online_update: float
    offline_update: float

    @classmethod
    def scaled(cls, time_scale: float = 1.0) -> "Windows":
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        base = (HORIZON, MIN_FAIL, REPLACEMENT, TEST_WINDOW, TIME_PENALTY, FUTURE_SLACK, TRY_GRACE,
                RECENT_TRY, CONNECTED_UPDATE, ONLINE_WINDOW, ONLINE_UPDATE, OFFLINE_UPDATE)  # fmt: skip
        return cls(*(v * time_scale for v in base))


def _one_block_sha256() -> Callable[[bytes], Any]:
    """SHA-256 for what addrman hashes: the 32-byte key and at most 23 bytes more (Core's groups of
    IPv4 and IPv6 addresses), then a 32-byte digest, each one 64-byte block. There CPython's own
    SHA-256 (the module hashlib falls back to: `_sha2` from 3.12, `_sha256` before) beats
    OpenSSL's, whose per-call setup outweighs one block: 0.70 against 0.86-0.94 us for both rounds
    (1.1 us, 9 %, of placing an address; docs/benchmarks.md). From two blocks on OpenSSL is
    faster, so nothing else uses this."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


_sha256 = _one_block_sha256()  # looked up once: _hash runs three times for every address placed
_from_bytes = int.from_bytes
# The little-endian encodings _new_slot and _tried_slot hash, made once: h1 < 64, bucket < 1024
_LE8 = tuple(i.to_bytes(8, "little") for i in range(NEW_BUCKETS_PER_SOURCE_GROUP))
_LE4 = tuple(b.to_bytes(4, "little") for b in range(NEW_BUCKET_COUNT))


class AddrManCorruptError(ValueError):
    """A saved addrman that cannot be trusted: bad header, checksum, JSON or content."""


def _addr_key(ip: str, port: int) -> bytes:
    """Core's CService::GetKey(): the 16-byte (IPv4-mapped) address, then the port big-endian.
    The address bytes come from the codec's per-process memo (the same ips recur in every node)."""
    return ip_to_bytes16(ip) + port.to_bytes(2, "big")


class AddrTables:
    """Core's address manager for one node. See the module docstring; methods mirror Core's."""

    def __init__(
        self,
        key: bytes,
        netgroups: NetGroups,
        rng: Random,
        clock: Callable[[], float],
        *,
        use_tried: bool = True,
        test_before_evict: bool = True,
        time_scale: float = 1.0,
        common_port: int = 0,
    ) -> None:
        self._netgroups = netgroups
        # Entries on this port are keyed by their ip string alone (no (ip, port) tuple: ~80 B an
        # entry, and a testnet's nodes mostly share one port); other ports by (ip, port).
        self._port = common_port
        self._rng = rng
        self._clock = clock
        self.use_tried = use_tried
        self.test_before_evict = test_before_evict
        self.windows = Windows.scaled(time_scale)
        self._set_key(key)
        self._reset()

    def _set_key(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("addrman key must be 32 bytes")
        self._key = key

    def _reset(self) -> None:
        self._new = BucketTable()
        self._tried = BucketTable()
        self._by_key: dict[str | tuple[str, int], AddrInfo] = {}  # see _entry_key
        self._random: list[AddrInfo] = []  # Core's vRandom: every entry, for get_addr
        self._n_new = 0
        self._n_tried = 0
        self._collisions: dict[tuple[str, int], None] = {}  # insertion-ordered set
        self._last_good = 1.0  # Core's m_last_good starts at 1 s

    # --- keyed placement (Core's GetTriedBucket / GetNewBucket / GetBucketPosition) ----------

    def _hash(self, data: bytes) -> int:
        """Core's CHashWriter(key, data...).GetCheapHash(): SHA256d, first 8 bytes little-endian."""
        # hashing key + data afresh beats copying a keyed state (1.1 against 1.5 us): three of these
        # place every new address, the largest part of a forming network's CPU (py-spy)
        return _from_bytes(_sha256(_sha256(self._key + data).digest()).digest()[:8], "little")

    def _tried_slot(self, addr: NetAddr | AddrInfo) -> int:
        akey = _addr_key(addr.ip, addr.port)
        h1 = self._hash(akey) % TRIED_BUCKETS_PER_GROUP
        bucket = self._hash(self._netgroups.group_key(addr.ip) + _LE8[h1]) % TRIED_BUCKET_COUNT
        return bucket * BUCKET_SIZE + self._position(b"K", bucket, akey)

    def _new_slot(self, addr: NetAddr | AddrInfo, source_ip: str) -> int:
        return self._new_slot_of(addr.ip, addr.port, self._netgroups.group_key(source_ip))

    def _new_slot_of(self, ip: str, port: int, src_group: bytes) -> int:
        """_new_slot with the source's group key (var_bytes of its netgroup) given: `add` places
        a whole addr message from one source, so it looks that up once."""
        h1 = self._hash(self._netgroups.group_key(ip) + src_group) % NEW_BUCKETS_PER_SOURCE_GROUP
        bucket = self._hash(src_group + _LE8[h1]) % NEW_BUCKET_COUNT
        return bucket * BUCKET_SIZE + self._position(b"N", bucket, _addr_key(ip, port))

    def _position(self, table: bytes, bucket: int, akey: bytes) -> int:
        return self._hash(table + _LE4[bucket] + akey) % BUCKET_SIZE

    # --- entry quality ---------------------------------------------------------------------

    def is_terrible(self, entry: AddrInfo) -> bool:
        """Core's IsTerrible: not worth keeping, gossiping or overwriting protection."""
        return self._terrible(entry, self._clock())

    def _terrible(self, e: AddrInfo, now: float) -> bool:
        w = self.windows
        tr = e.tries  # read once: getaddr answers ask this of every entry they walk
        last_try, last_success, attempts = (
            (0.0, 0.0, 0) if tr is None else (tr.last_try, tr.last_success, tr.attempts))
        if now - last_try <= w.try_grace:
            return False
        t = e.time
        return (
            t > now + w.future_slack
            or now - t > w.horizon
            or (last_success == 0 and attempts >= RETRIES)
            or (now - last_success > w.min_fail and attempts >= MAX_FAILURES)
        )

    def _chance(self, e: AddrInfo, now: float) -> float:
        """Core's GetChance: relative odds of `select` accepting this entry."""
        tr = e.tries
        attempts, last_try = (0, 0.0) if tr is None else (tr.attempts, tr.last_try)
        chance = _FAILURE_FACTORS[min(attempts, MAX_CHANCE_FAILURES)]
        if now - last_try < self.windows.recent_try:
            chance *= RECENT_TRY_CHANCE
        return chance

    # --- bookkeeping -----------------------------------------------------------------------

    def _create(self, entry: AddrInfo) -> AddrInfo:
        entry.random_pos = len(self._random)
        self._random.append(entry)
        self._by_key[self._entry_key(entry.ip, entry.port)] = entry
        self._n_new += 1
        return entry

    def _delete(self, entry: AddrInfo) -> None:
        """Forget a new entry that no slot references any more."""
        last = self._random.pop()
        if last is not entry:
            self._random[entry.random_pos] = last
            last.random_pos = entry.random_pos
        del self._by_key[self._entry_key(entry.ip, entry.port)]
        self._n_new -= 1

    def _clear_new(self, slot: int) -> None:
        occupant = self._new.get(slot)
        if occupant is not None:
            self._free_new(slot, occupant)

    def _free_new(self, slot: int, occupant: AddrInfo) -> None:
        """Empty `slot`, which `occupant` holds; forget the entry if it was its last slot."""
        self._new.remove(slot)
        occupant.new_slots = tuple(s for s in occupant.new_slots if s != slot)
        if not occupant.new_slots:
            self._delete(occupant)

    def _make_tried(self, entry: AddrInfo) -> None:
        for slot in entry.new_slots:
            self._new.remove(slot)
        entry.new_slots = ()
        self._n_new -= 1
        slot = self._tried_slot(entry)
        old = self._tried.get(slot)
        if old is not None:
            # The evicted tried entry goes back to new, in its primary source's bucket.
            self._tried.remove(slot)
            old.in_tried = False
            self._n_tried -= 1
            new_slot = self._new_slot(old, old.source)
            self._clear_new(new_slot)
            self._new.put(new_slot, old)
            old.new_slots = (new_slot,)
            self._n_new += 1
        self._tried.put(slot, entry)
        entry.in_tried = True
        self._n_tried += 1

    # --- Core's public operations ----------------------------------------------------------

    def _shared_port(self, port: int) -> int:
        """The common port as its one int object (an entry's own copy is 28 B)."""
        return self._port if port == self._port else port

    def _entry_key(self, ip: str, port: int) -> str | tuple[str, int]:
        return ip if port == self._port else (ip, port)

    def find(self, ip: str, port: int) -> AddrInfo | None:
        return self._by_key.get(ip if port == self._port else (ip, port))

    def add(self, addrs: list[NetAddr], source_ip: str, time_penalty: float = 0.0) -> int:
        """Learn `addrs` from the peer at `source_ip`; returns how many took a new-table slot.
        Gossiped addresses get `time_penalty` (Core: 2 h, `windows.time_penalty`)."""
        now = self._clock()
        # what every address of the message shares: an addr message comes from one source
        source, src_group, add_one = sys.intern(source_ip), self._netgroups.group_key(source_ip), self._add_one
        added = 0
        for a in addrs:
            added += add_one(a, source, src_group, time_penalty, now)
        return added

    def _add_one(self, addr: NetAddr, source: str, src_group: bytes, time_penalty: float, now: float) -> bool:
        ip = addr.ip
        if not self._netgroups.is_routable(ip):
            return False
        penalty = 0.0 if ip == source else time_penalty  # no penalty on self-announcements
        entry = self.find(ip, addr.port)
        if entry is not None:
            online = now - addr.time < self.windows.online_window
            interval = self.windows.online_update if online else self.windows.offline_update
            time = entry.time
            if time < addr.time - interval - penalty:
                time = entry.time = max(0, int(addr.time - penalty))
            entry.services |= addr.services
            refcount = entry.refcount
            if addr.time <= time or entry.in_tried or refcount >= NEW_BUCKETS_PER_ADDRESS:
                return False
            # Each extra copy is 2^refcount times harder to get (Core's stochastic test).
            if refcount and self._rng.randrange(1 << refcount) != 0:
                return False
        else:
            # Interned: the same few thousand address strings recur in every node of the process;
            # the common port is one int object, not one per entry.
            entry = self._create(AddrInfo(sys.intern(ip), self._shared_port(addr.port), addr.services,
                                          max(0, int(addr.time - penalty)), source))
            refcount = 0
        slot = self._new_slot_of(ip, addr.port, src_group)
        i, occupant = self._new.locate(slot)
        if occupant is entry:
            return False
        if occupant is None or self._terrible(occupant, now) or (occupant.refcount > 1 and refcount == 0):
            if occupant is not None:
                self._free_new(slot, occupant)  # frees index i, where the slot goes again
            self._new.put_at(i, slot, entry)
            entry.add_new_slot(slot)
            return True
        if refcount == 0:
            self._delete(entry)
        return False

    def good(self, ip: str, port: int) -> bool:
        """An outbound handshake with ip:port completed: move it to tried. With test-before-evict
        a collision with an occupied tried slot parks it in the collision set instead.
        Returns True if it moved to tried."""
        return self._good(ip, port, self._clock(), self.test_before_evict)

    def _good(self, ip: str, port: int, now: float, test_before_evict: bool) -> bool:
        self._last_good = now
        entry = self.find(ip, port)
        if entry is None:
            return False
        tries = entry.history()
        tries.last_success = now
        tries.last_try = now
        tries.attempts = 0
        # nTime is deliberately not updated: it would leak who we are connected to (Core).
        if entry.in_tried or entry.refcount == 0:
            return False
        if test_before_evict and self._tried.get(self._tried_slot(entry)) is not None:
            if len(self._collisions) < SET_TRIED_COLLISION_SIZE:
                self._collisions[(ip, port)] = None
            return False
        self._make_tried(entry)
        return True

    def attempt(self, ip: str, port: int, count_failure: bool = True) -> None:
        """We are trying to connect. A failure counts at most once per `good` of any address."""
        entry = self.find(ip, port)
        if entry is None:
            return
        now = self._clock()
        tries = entry.history()
        tries.last_try = now
        if count_failure and tries.last_count_attempt < self._last_good:
            tries.last_count_attempt = now
            tries.attempts += 1

    def connected(self, ip: str, port: int) -> None:
        """A connection to ip:port ended or is alive: refresh nTime, at most every 20 min."""
        entry = self.find(ip, port)
        if entry is None:
            return
        now = self._clock()
        if now - entry.time > self.windows.connected_update:
            entry.time = int(now)

    def select(self, new_only: bool = False) -> NetAddr | None:
        """An address to dial: tried or new at 50/50, weighted by GetChance (Core's Select)."""
        if not self._random:
            return None
        new_only = new_only or not self.use_tried
        if new_only and self._n_new == 0:
            return None
        from_tried = not new_only and self._n_tried > 0 and (self._n_new == 0 or self._rng.random() < 0.5)
        table = self._tried if from_tried else self._new
        now = self._clock()
        factor = 1.0
        while True:
            entry = table.pick(self._rng)
            if self._rng.random() < factor * self._chance(entry, now):
                return entry.addr
            factor *= CHANCE_FACTOR_GROWTH

    def select_tried_collision(self) -> NetAddr | None:
        """The tried entry a parked candidate would evict: what a feeler should test."""
        if not self._collisions:
            return None
        key = list(self._collisions)[self._rng.randrange(len(self._collisions))]
        entry = self.find(*key)
        if entry is None:
            del self._collisions[key]
            return None
        old = self._tried.get(self._tried_slot(entry))
        return None if old is None else old.addr

    def resolve_collisions(self) -> None:
        """Settle parked tried-table collisions (Core's ResolveCollisions): keep the old entry if
        it succeeded within `replacement`, replace it if it failed (more than a minute ago) or
        if the test window passed without an answer."""
        now = self._clock()
        w = self.windows
        for key in list(self._collisions):
            entry = self.find(*key)
            settled = True
            if entry is not None:
                old = self._tried.get(self._tried_slot(entry))
                if old is None:  # no longer a collision
                    self._good(*key, now, test_before_evict=False)
                elif now - old.last_success < w.replacement:
                    pass  # the old entry is alive: keep it, drop the candidate's claim
                elif now - old.last_try < w.replacement:
                    if now - old.last_try > w.try_grace:
                        self._good(*key, now, test_before_evict=False)
                    else:
                        settled = False  # its test is still running
                elif now - entry.last_success > w.test_window:
                    self._good(*key, now, test_before_evict=False)
                else:
                    settled = False
            if settled:
                del self._collisions[key]

    def get_addr(self, max_count: int = 1000, max_pct: int = 23) -> list[NetAddr]:
        """Random non-terrible addresses for a getaddr reply: at most max_pct % of all entries
        and at most max_count (0 disables either bound)."""
        n = len(self._random)
        wanted = max_pct * n // 100 if max_pct else n
        if max_count:
            wanted = min(wanted, max_count)
        now, rng = self._clock(), self._rng
        rnd = self._random
        out: list[NetAddr] = []
        for i in range(n):
            if len(out) >= wanted:
                break
            j = i + below(rng, n - i)  # partial Fisher-Yates over vRandom, as Core (randrange(i, n))
            if j != i:
                rnd[i], rnd[j] = rnd[j], rnd[i]
                rnd[i].random_pos, rnd[j].random_pos = i, j
            if not self._terrible(rnd[i], now):
                out.append(rnd[i].addr)
        return out

    def size(self) -> int:
        return len(self._random)

    def counts(self) -> tuple[int, int]:
        """(entries in new, entries in tried)."""
        return self._n_new, self._n_tried

    def collisions(self) -> list[tuple[str, int]]:
        """The parked test-before-evict candidates (at most 10)."""
        return list(self._collisions)

    def new_slots(self) -> dict[int, tuple[str, int]]:
        """Occupied new-table slots (bucket * 64 + position) -> (ip, port). For tests and metrics."""
        return {s: (e.ip, e.port) for s, e in self._new.items()}

    def tried_slots(self) -> dict[int, tuple[str, int]]:
        """Occupied tried-table slots (bucket * 64 + position) -> (ip, port)."""
        return {s: (e.ip, e.port) for s, e in self._tried.items()}
