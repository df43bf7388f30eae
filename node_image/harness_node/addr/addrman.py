"""The address manager a node uses: the tables (tables.py) plus persistence (addrman_store.py).

Split in three so that imports run one way: tables.py is pure in-memory logic, addrman_store.py
writes and rebuilds those tables, and this module joins them.
"""

from __future__ import annotations

import os

from . import addrman_store
from .tables import (  # noqa: F401  (re-exported: the names callers know addrman by)
    BUCKET_SIZE,
    NEW_BUCKET_COUNT,
    NEW_BUCKETS_PER_ADDRESS,
    TRIED_BUCKET_COUNT,
    AddrInfo,
    AddrManCorruptError,
    AddrTables,
    Windows,
)

__all__ = ["AddrMan", "AddrInfo", "AddrManCorruptError", "Windows"]


class AddrMan(AddrTables):
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tables atomically (atomicfile: temp file, fsync, rename), with a checksum."""
        addrman_store.save(self, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the tables (and key) with a saved file; AddrManCorruptError if it is damaged,
        leaving the tables untouched. If the netgroup rule changed since saving, entries are
        re-bucketed as Core does when its bucketing changes."""
        addrman_store.load(self, path)
