"""addrman's file format: a checksummed JSON snapshot, written atomically.

Layout: one ASCII header line ``HARNESS-ADDRMAN <version> <sha256 of body, hex>\\n`` then the JSON
body. The checksum catches truncation and bit flips (Core's peers.dat ends with a hash for the
same reason). `decode` checks the structure; `restore` rebuilds the tables and checks the
semantics (every entry where the key says it belongs, refcounts, no orphans).

Body (format version 1)::

    {"key": <64 hex>, "netgroups": {"bits": 16, "all_routable": true},
     "entries": [[ip, port, services, time, source, last_try, last_success,
                  last_count_attempt, attempts, in_tried], ...],
     "new": [[slot, entry_index], ...]}      # slot = bucket * 64 + position

As in Core, tried positions are not stored (they follow from the key and the address) while new
positions are (they depend on which peer told us the address).

This module reaches into AddrMan's private tables on purpose: it is addrman's persistence half,
split off to keep each file small.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..atomicfile import write_bytes_atomic
from .tables import (
    BUCKET_SIZE,
    NEW_BUCKET_COUNT,
    NEW_BUCKETS_PER_ADDRESS,
    AddrInfo,
    AddrManCorruptError,
    AddrTables,
    _addr_key,
)

MAGIC = b"HARNESS-ADDRMAN"
FORMAT_VERSION = 1
ENTRY_FIELDS = (
    "ip", "port", "services", "time", "source",
    "last_try", "last_success", "last_count_attempt", "attempts", "in_tried",
)  # fmt: skip


def encode(state: dict[str, Any]) -> bytes:
    body = json.dumps(state, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    return MAGIC + f" {FORMAT_VERSION} {digest}\n".encode() + body


def decode(data: bytes, where: str = "addrman data") -> dict[str, Any]:
    """The state dict from `encode`'s output; AddrManCorruptError naming `where` if it is damaged."""
    header, sep, body = data.partition(b"\n")
    parts = header.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != MAGIC:
        raise AddrManCorruptError(f"{where}: not an addrman file (bad header)")
    if parts[1] != str(FORMAT_VERSION).encode():
        version = parts[1].decode(errors="replace")
        raise AddrManCorruptError(f"{where}: unsupported format version {version}, expected {FORMAT_VERSION}")
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise AddrManCorruptError(f"{where}: checksum mismatch (truncated or modified file)")
    try:
        state = json.loads(body)
    except ValueError as e:
        raise AddrManCorruptError(f"{where}: body is not valid JSON: {e}") from None
    _check_structure(state, where)
    return state


def save(am: AddrTables, path: str | os.PathLike[str]) -> None:
    write_bytes_atomic(path, encode(snapshot(am)))


def load(am: AddrTables, path: str | os.PathLike[str]) -> None:
    """Replace `am`'s tables with the file's; on any error `am` is left as it was.
    FileNotFoundError passes through (a fresh node has no file)."""
    state = decode(Path(path).read_bytes(), where=str(path))
    previous = am.__dict__.copy()
    try:
        restore(am, state, where=str(path))
    except BaseException:
        am.__dict__.clear()
        am.__dict__.update(previous)
        raise


def snapshot(am: AddrTables) -> dict[str, Any]:
    """The plain, JSON-able state of `am`: key, grouping rule, entries and new-table slots."""
    index = {id(e): i for i, e in enumerate(am._random)}
    rows = [
        [e.ip, e.port, e.services, e.time, e.source,
         e.last_try, e.last_success, e.last_count_attempt, e.attempts, e.in_tried]
        for e in am._random
    ]  # fmt: skip
    new = [[slot, index[id(e)]] for slot, e in am._new.items()]
    return {"key": am._key.hex(), "netgroups": am._netgroups.config, "entries": rows, "new": new}


def restore(am: AddrTables, state: dict[str, Any], where: str = "addrman data") -> None:
    """Rebuild `am` from a structurally checked state. With an unchanged grouping rule every entry
    must land exactly where it was (else AddrManCorruptError); with a changed rule, entries are
    re-bucketed (new ones by their primary source) and collisions are dropped, as in Core."""

    def corrupt(msg: str) -> AddrManCorruptError:
        return AddrManCorruptError(f"{where}: {msg}")

    am._set_key(bytes.fromhex(state["key"]))
    am._reset()
    same_grouping = state["netgroups"] == am._netgroups.config
    entries = [_entry(row, am._shared_port) for row in state["entries"]]
    if len({(e.ip, e.port) for e in entries}) != len(entries):
        raise corrupt("duplicate address entries")
    try:
        for e in entries:
            if e.in_tried:
                slot = am._tried_slot(e)
                if am._tried.get(slot) is not None:
                    if same_grouping:
                        raise corrupt(f"two tried entries claim slot {slot}")
                    continue  # lost to re-bucketing
                am._tried.put(slot, e)
                _register(am, e)
        for slot, i in state["new"]:
            if i >= len(entries) or slot >= NEW_BUCKET_COUNT * BUCKET_SIZE:
                raise corrupt(f"new-table reference {[slot, i]} out of range")
            e = entries[i]
            if e.in_tried or e.refcount >= NEW_BUCKETS_PER_ADDRESS:
                raise corrupt(f"bad new-table reference to {e!r}")
            if not same_grouping:
                slot = am._new_slot(e, e.source)
            elif slot % BUCKET_SIZE != am._position(b"N", slot // BUCKET_SIZE, _addr_key(e.ip, e.port)):
                raise corrupt(f"{e!r} stored at the wrong position (slot {slot})")
            if am._new.get(slot) is not None:
                if same_grouping:
                    raise corrupt(f"two new entries claim slot {slot}")
                continue
            am._new.put(slot, e)
            if not e.new_slots:
                _register(am, e)
            e.new_slots += (slot,)
    except AddrManCorruptError:
        raise
    except (ValueError, OSError) as exc:  # an unparsable ip or source address
        raise corrupt(f"bad address in entry: {exc}") from None
    if same_grouping and len(am._random) != len(entries):
        raise corrupt("an entry is in neither table")


def _entry(row: list[Any], shared_port: Callable[[int], int]) -> AddrInfo:
    ip, port, services, t, source, last_try, last_success, last_count, attempts, in_tried = row
    e = AddrInfo(sys.intern(ip), shared_port(port), services, t, sys.intern(source))
    if last_try or last_success or last_count or attempts:  # a never-dialled entry keeps no history
        t = e.history()
        t.last_try, t.last_success, t.last_count_attempt, t.attempts = last_try, last_success, last_count, attempts
    e.in_tried = in_tried
    return e


def _register(am: AddrTables, e: AddrInfo) -> None:
    e.random_pos = len(am._random)
    am._random.append(e)
    am._by_key[am._entry_key(e.ip, e.port)] = e
    if e.in_tried:
        am._n_tried += 1
    else:
        am._n_new += 1


def _check_structure(state: Any, where: str) -> None:
    def bad(msg: str) -> AddrManCorruptError:
        return AddrManCorruptError(f"{where}: {msg}")

    if not isinstance(state, dict) or not {"key", "netgroups", "entries", "new"} <= state.keys():
        raise bad("body must be an object with key, netgroups, entries and new")
    key = state["key"]
    if not isinstance(key, str) or len(key) != 64:
        raise bad("key must be 64 hex characters")
    try:
        bytes.fromhex(key)
    except ValueError:
        raise bad("key is not hex") from None
    ng = state["netgroups"]
    if not (isinstance(ng, dict) and type(ng.get("bits")) is int and type(ng.get("all_routable")) is bool):
        raise bad("netgroups must hold bits (int) and all_routable (bool)")
    entries = state["entries"]
    if not isinstance(entries, list):
        raise bad("entries must be a list")
    for i, row in enumerate(entries):
        if not _valid_entry(row):
            raise bad(f"entry {i} is malformed: {row!r:.200}")
    new = state["new"]
    if not isinstance(new, list) or not all(
        isinstance(r, list) and len(r) == 2 and all(type(x) is int and x >= 0 for x in r) for r in new
    ):
        raise bad("new must be a list of [slot, entry_index] pairs of non-negative ints")


def _valid_entry(row: Any) -> bool:
    if not isinstance(row, list) or len(row) != len(ENTRY_FIELDS):
        return False
    ip, port, services, t, source, last_try, last_success, last_count, attempts, in_tried = row
    numbers = (last_try, last_success, last_count)
    return (
        isinstance(ip, str)
        and isinstance(source, str)
        and type(port) is int and 0 <= port <= 0xFFFF
        and type(services) is int and 0 <= services < 1 << 64
        and type(t) is int and 0 <= t < 1 << 32
        and all(type(x) in (int, float) and x >= 0 for x in numbers)
        and type(attempts) is int and attempts >= 0
        and type(in_tried) is bool
    )  # fmt: skip
