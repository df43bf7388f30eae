"""What a node knows about an injected item (a tx or a block): when it first saw it, from whom,
and how late that was. One record function per kind, used by `GET /tx/{id}`, `GET /block/{id}` and
the batch `GET /items`: the harness asks every node about every item, and one request per item and
node (tens of thousands at the end of a 100-node run) cost more than the run itself (issue 11).
"""

from __future__ import annotations

from typing import Any

from ..names import MAX_ITEMS_PER_REQUEST
from ..node import Node
from ..wire.codec import hash_to_hex
from ..wire.synthetic import origin_of

__all__ = ["MAX_ITEMS_PER_REQUEST", "block_record", "records", "tx_record"]


def tx_record(node: Node, txid: bytes) -> dict[str, Any] | None:
    rec = node.mempool.record(txid)
    if rec is None:
        return None
    return {
        "txid": hash_to_hex(txid), "first_seen_ns": rec.first_seen_ns, "from_peer": rec.from_peer,
        "in_mempool": txid in node.mempool, "harness_id": rec.harness_id.hex() if rec.harness_id else None,
        "origin_ns": rec.origin_ns, "propagation_delay_s": rec.delay_s,
    }


def block_record(node: Node, h: bytes) -> dict[str, Any] | None:
    seen = node.block_seen.get(h)
    if seen is None:
        return None
    block = node.chain.get(h)
    origin = origin_of(block) if block is not None else None
    first_seen_ns, from_peer = seen
    return {
        "hash": hash_to_hex(h), "first_seen_ns": first_seen_ns, "from_peer": from_peer,
        "height": node.chain.heights.get(h), "harness_id": origin[0].hex() if origin else None,
        "origin_ns": origin[1] if origin else None,
        "propagation_delay_s": max(0.0, (first_seen_ns - origin[1]) / 1e9) if origin else None,
    }


def records(node: Node, wanted: dict[str, list[tuple[str, bytes]]]) -> dict[str, dict[str, Any]]:
    """{kind: {id as asked: record}} for `wanted` {kind: [(id as asked, hash)]}; an unseen item is
    absent (GET /items answers this for one node, GET /host/items for each node of the process)."""
    record = {"tx": tx_record, "block": block_record}
    out: dict[str, dict[str, Any]] = {}
    for kind, ids in wanted.items():
        found = ((i, record[kind](node, h)) for i, h in ids)
        out[kind] = {i: rec for i, rec in found if rec is not None}
    return out
