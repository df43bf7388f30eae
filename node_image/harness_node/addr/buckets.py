"""How addrman stores what it knows: one entry per address (Core's AddrInfo) and a sparse bucket
table (Core's vvNew / vvTried), sized for a host process that holds up to 1,000 nodes.

A node of a 10,000-node testnet knows a few hundred addresses spread over 1,024 buckets, nearly
one per bucket, so a table keeps no list per bucket and no dict: the occupied slots in order, the
entries alongside, and the non-empty buckets in order (~25 B an entry). Drawing uniformly among the
non-empty buckets is exactly Core's "pick a random bucket, retry if empty" distribution, without
the empty retries. A table of 50,000 entries pays a memmove per insert (bench/bench_addrman.py).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from random import Random
from typing import Iterator

from ..wire.codec import NetAddr

__all__ = ["AddrInfo", "BucketTable", "BUCKET_SIZE", "Tries", "below"]

BUCKET_SIZE = 64  # ADDRMAN_BUCKET_SIZE (1 << 6)


def below(rng: Random, n: int) -> int:
    """rng.randrange(n) for n >= 1, the same draws from the same stream (what randrange does for
    one positive argument: Random._randbelow_with_getrandbits), without randrange's argument
    checks and two calls: select draws twice a try and takes ~7 tries a dial while a network forms
    (Core's chance of an entry tried in the last 10 minutes is 1 %), ~2 % of forming's CPU."""
    k = n.bit_length()
    r = rng.getrandbits(k)
    while r >= n:
        r = rng.getrandbits(k)
    return r


class Tries:
    """An entry's connection history (Core's nLastTry, nLastSuccess, nLastCountAttempt,
    nAttempts). Most entries are never dialled: they share no record at all (AddrInfo.tries None)."""

    __slots__ = ("last_try", "last_success", "last_count_attempt", "attempts")

    def __init__(self) -> None:
        self.last_try = 0.0
        self.last_success = 0.0
        self.last_count_attempt = 0.0
        self.attempts = 0


def _history_field(name: str, zero: float | int) -> property:
    """A read-only view of one field of AddrInfo.tries: `zero` while there is none."""
    return property(lambda e: zero if e.tries is None else getattr(e.tries, name))


class AddrInfo:
    """One known address: Core's AddrInfo. `time` is Core's nTime (last seen, as gossiped).

    Sized for ~300 entries in each of 10,000 nodes (issue 17): 96 B with its 8 slots. The address's
    fields are the entry's own (a NetAddr inside would be 64 B more an entry); `addr` builds the
    NetAddr when one is handed out (select, getaddr answers). The four fields of the connection
    history live in a `Tries` made on the first dial or success (four slots here were 32 B an entry,
    and most entries are never dialled). Whether the entry is in tried is `_new_slots is None`."""

    __slots__ = ("ip", "port", "services", "time", "source", "tries", "_new_slots", "random_pos")

    def __init__(self, ip: str, port: int, services: int, time: int, source: str) -> None:
        self.ip, self.port, self.services, self.time = ip, port, services, time
        self.source = source  # ip of the peer that first told us (decides the primary new bucket)
        self.tries: Tries | None = None  # None: never dialled nor connected
        self._new_slots: int | tuple[int, ...] | None = ()  # see new_slots; None while in tried
        self.random_pos = -1  # index in AddrTables._random (Core's nRandomPos)

    @property
    def addr(self) -> NetAddr:
        return NetAddr(ip=self.ip, port=self.port, services=self.services, time=self.time)

    @property
    def in_tried(self) -> bool:
        return self._new_slots is None

    @in_tried.setter
    def in_tried(self, value: bool) -> None:
        # an entry enters tried with no new slot left (AddrTables._make_tried clears them first)
        if value:
            self._new_slots = None
        elif self._new_slots is None:
            self._new_slots = ()

    @property
    def new_slots(self) -> tuple[int, ...]:
        """The new-table slots (bucket * 64 + position) holding this entry. Most entries have
        exactly one, stored as the bare int (a 1-tuple is 48 B more an entry)."""
        s = self._new_slots
        if s is None:
            return ()
        return (s,) if s.__class__ is int else s  # type: ignore[return-value]

    @new_slots.setter
    def new_slots(self, slots: tuple[int, ...]) -> None:
        self._new_slots = slots[0] if len(slots) == 1 else slots

    def add_new_slot(self, slot: int) -> None:
        """One more new-table slot holds this entry (it is not in tried)."""
        s = self._new_slots
        if s.__class__ is int:
            self._new_slots = (s, slot)  # type: ignore[assignment]
        else:
            self._new_slots = s + (slot,) if s else slot  # type: ignore[operator]

    @property
    def refcount(self) -> int:
        """How many new-table slots reference this entry (Core's nRefCount; 0 when in tried)."""
        s = self._new_slots
        if s is None:
            return 0
        return 1 if s.__class__ is int else len(s)  # type: ignore[arg-type]

    def history(self) -> Tries:
        """The entry's connection history, made on first use (to be written)."""
        t = self.tries
        if t is None:
            t = self.tries = Tries()
        return t

    # Read-only views of the history (0 for an entry never dialled), for the cold paths and tests;
    # the hot ones (AddrTables._terrible, _chance) read `tries` once.
    last_try = _history_field("last_try", 0.0)
    last_success = _history_field("last_success", 0.0)
    last_count_attempt = _history_field("last_count_attempt", 0.0)
    attempts = _history_field("attempts", 0)

    def __repr__(self) -> str:
        where = "tried" if self.in_tried else f"new x{self.refcount}"
        return f"AddrInfo({self.ip}:{self.port}, {where}, attempts={self.attempts})"


class BucketTable:
    """A sparse bucket table (see the module docstring): slot = bucket * 64 + position."""

    __slots__ = ("occupied", "entries", "nonempty")

    def __init__(self) -> None:
        self.occupied: list[int] = []  # sorted slots (bucket * 64 + position)
        self.entries: list[AddrInfo] = []  # entries[i] sits in occupied[i]
        self.nonempty = array("l")  # sorted buckets holding at least one slot

    def __len__(self) -> int:
        return len(self.occupied)

    def items(self) -> Iterator[tuple[int, AddrInfo]]:
        return zip(self.occupied, self.entries)

    def get(self, slot: int) -> AddrInfo | None:
        return self.locate(slot)[1]

    def locate(self, slot: int) -> tuple[int, AddrInfo | None]:
        """Where `slot` is or would go in the order, and its entry if occupied: `put_at` that
        index then needs no second search (addrman's add reads a slot and then fills it)."""
        occ = self.occupied
        i = bisect_left(occ, slot)
        return i, (self.entries[i] if i < len(occ) and occ[i] == slot else None)

    def _shares_bucket(self, i: int, bucket: int) -> bool:
        """Whether a neighbour of position i (i - 1 or i) is in `bucket`."""
        occ = self.occupied
        return (i < len(occ) and occ[i] // BUCKET_SIZE == bucket) or (i > 0 and occ[i - 1] // BUCKET_SIZE == bucket)

    def put(self, slot: int, entry: AddrInfo) -> None:
        """Occupy a free slot."""
        self.put_at(bisect_left(self.occupied, slot), slot, entry)

    def put_at(self, i: int, slot: int, entry: AddrInfo) -> None:
        """Occupy a free slot whose index in the order `locate` gave (and nothing moved since)."""
        bucket = slot // BUCKET_SIZE
        if not self._shares_bucket(i, bucket):
            insort(self.nonempty, bucket)
        self.occupied.insert(i, slot)
        self.entries.insert(i, entry)

    def remove(self, slot: int) -> None:
        """Free an occupied slot."""
        i = bisect_left(self.occupied, slot)
        del self.occupied[i]
        del self.entries[i]
        bucket = slot // BUCKET_SIZE
        if not self._shares_bucket(i, bucket):
            del self.nonempty[bisect_left(self.nonempty, bucket)]

    def pick(self, rng: Random) -> AddrInfo:
        """Core's draw: a random non-empty bucket, a random start position, the next occupied one
        (wrapping round to the bucket's first)."""
        bucket = self.nonempty[below(rng, len(self.nonempty))]
        occ, first = self.occupied, bucket * BUCKET_SIZE
        i = bisect_left(occ, first + below(rng, BUCKET_SIZE))
        if i == len(occ) or occ[i] >= first + BUCKET_SIZE:
            i = bisect_left(occ, first)
        return self.entries[i]
