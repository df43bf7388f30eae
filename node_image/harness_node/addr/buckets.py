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

__all__ = ["AddrInfo", "BucketTable", "BUCKET_SIZE"]

BUCKET_SIZE = 64  # ADDRMAN_BUCKET_SIZE (1 << 6)


class AddrInfo:
    """One known address: Core's AddrInfo. `time` is Core's nTime (last seen, as gossiped).

    The address's fields are the entry's own (a NetAddr inside would be 64 B more an entry);
    `addr` builds the NetAddr when one is handed out (select, getaddr answers)."""

    __slots__ = ("ip", "port", "services", "time", "source", "last_try", "last_success",
                 "last_count_attempt", "attempts", "_new_slots", "in_tried", "random_pos")  # fmt: skip

    def __init__(self, ip: str, port: int, services: int, time: int, source: str) -> None:
        self.ip, self.port, self.services, self.time = ip, port, services, time
        self.source = source  # ip of the peer that first told us (decides the primary new bucket)
        self.last_try = 0.0
        self.last_success = 0.0
        self.last_count_attempt = 0.0
        self.attempts = 0
        self._new_slots: int | tuple[int, ...] = ()  # see new_slots
        self.in_tried = False
        self.random_pos = -1  # index in AddrTables._random (Core's nRandomPos)

    @property
    def addr(self) -> NetAddr:
        return NetAddr(ip=self.ip, port=self.port, services=self.services, time=self.time)

    @property
    def new_slots(self) -> tuple[int, ...]:
        """The new-table slots (bucket * 64 + position) holding this entry. Most entries have
        exactly one, stored as the bare int (a 1-tuple is 48 B more an entry)."""
        s = self._new_slots
        return (s,) if s.__class__ is int else s  # type: ignore[return-value]

    @new_slots.setter
    def new_slots(self, slots: tuple[int, ...]) -> None:
        self._new_slots = slots[0] if len(slots) == 1 else slots

    @property
    def refcount(self) -> int:
        """How many new-table slots reference this entry (Core's nRefCount; 0 when in tried)."""
        s = self._new_slots
        return 1 if s.__class__ is int else len(s)  # type: ignore[arg-type]

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
        occ = self.occupied
        i = bisect_left(occ, slot)
        return self.entries[i] if i < len(occ) and occ[i] == slot else None

    def _shares_bucket(self, i: int, bucket: int) -> bool:
        """Whether a neighbour of position i (i - 1 or i) is in `bucket`."""
        occ = self.occupied
        return (i < len(occ) and occ[i] // BUCKET_SIZE == bucket) or (i > 0 and occ[i - 1] // BUCKET_SIZE == bucket)

    def put(self, slot: int, entry: AddrInfo) -> None:
        """Occupy a free slot."""
        i = bisect_left(self.occupied, slot)
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
        bucket = self.nonempty[rng.randrange(len(self.nonempty))]
        occ, first = self.occupied, bucket * BUCKET_SIZE
        i = bisect_left(occ, first + rng.randrange(BUCKET_SIZE))
        if i == len(occ) or occ[i] >= first + BUCKET_SIZE:
            i = bisect_left(occ, first)
        return self.entries[i]
