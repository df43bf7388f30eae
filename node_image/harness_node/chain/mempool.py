"""The mempool: opaque transactions keyed by txid, with first-seen time, sender and origin.

Bounded by bytes like Core's -maxmempool (default 300 MB; the bound is per node, so a host running
many nodes multiplies it). With no fee rates to compare, the oldest transactions go first.

No script or UTXO validation (the testbed relays structure, not money). Every accepted tx gets a
sequence number so that relay.py can apply Core's rule "serve a tx by getdata only if it was in the
mempool before the last inv we sent that peer".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..wire.primitives import Tx

DEFAULT_MAX_MEMPOOL_SIZE_MB = 300  # policy/policy.h DEFAULT_MAX_MEMPOOL_SIZE_MB
MB = 1_000_000
MAX_SEEN_RECORDS = 200_000  # first-seen records outlive mempool entries (mined txs stay queryable)


@dataclass(slots=True)
class TxRecord:
    txid: bytes
    first_seen_ns: int
    from_peer: str | None  # "ip:port" of the sender, None if injected locally
    sequence: int
    harness_id: bytes | None = None
    origin_ns: int | None = None

    @property
    def delay_s(self) -> float | None:
        """Propagation delay: first seen here minus the origin time carried by a synthetic tx."""
        if self.origin_ns is None:
            return None
        return (self.first_seen_ns - self.origin_ns) / 1e9


class Mempool:
    def __init__(self, max_mb: float = DEFAULT_MAX_MEMPOOL_SIZE_MB) -> None:
        self.max_bytes = int(max_mb * MB)
        self.bytes = 0  # serialized sizes of the txs in the pool
        self.txs: OrderedDict[bytes, Tx] = OrderedDict()
        self.by_wtxid: dict[bytes, bytes] = {}
        self.seen: OrderedDict[bytes, TxRecord] = OrderedDict()
        self.sequence = 0

    def __len__(self) -> int:
        return len(self.txs)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.txs

    def known(self, h: bytes) -> bool:
        """Seen before (in the pool or mined), by txid or wtxid."""
        return h in self.seen or h in self.by_wtxid

    def add(self, tx: Tx, first_seen_ns: int, from_peer: str | None,
            origin: tuple[bytes, int] | None = None) -> TxRecord | None:
        """Add a new tx; None if it was seen before."""
        if tx.txid in self.seen:
            return None
        self.sequence += 1
        rec = TxRecord(tx.txid, first_seen_ns, from_peer, self.sequence,
                       origin[0] if origin else None, origin[1] if origin else None)
        self.seen[tx.txid] = rec
        if len(self.seen) > MAX_SEEN_RECORDS:
            self.seen.popitem(last=False)
        self.txs[tx.txid] = tx
        self.by_wtxid[tx.wtxid] = tx.txid
        self.bytes += len(tx.raw)
        while self.bytes > self.max_bytes and self.txs:
            self.remove(next(iter(self.txs)))
        return rec

    def get(self, txid: bytes) -> Tx | None:
        return self.txs.get(txid)

    def get_by_wtxid(self, wtxid: bytes) -> Tx | None:
        txid = self.by_wtxid.get(wtxid)
        return self.txs.get(txid) if txid is not None else None

    def record(self, txid: bytes) -> TxRecord | None:
        return self.seen.get(txid)

    def remove(self, txid: bytes) -> None:
        tx = self.txs.pop(txid, None)
        if tx is not None:
            self.by_wtxid.pop(tx.wtxid, None)
            self.bytes -= len(tx.raw)
