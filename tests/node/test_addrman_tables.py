"""addrman's compact storage keeps Core's behaviour: the sparse bucket table draws exactly as
"a random non-empty bucket, a random start position, the next occupied slot" over a plain
bucket -> positions model, and entries keyed by ip alone on the common port stay distinct from
the same ip on another port (protocol.md §2.2; node.md, memory)."""

from __future__ import annotations

import random
from bisect import bisect_left

from harness_node.addr.addrman import BUCKET_SIZE, AddrMan
from harness_node.addr.addrman_store import decode, encode, restore, snapshot
from harness_node.addr.netgroup import NetGroups
from harness_node.addr.buckets import AddrInfo, BucketTable
from harness_node.wire.codec import NetAddr

NOW = 1_700_000_000.0


def reference_pick(buckets: dict[int, list[int]], order: list[int], rng: random.Random) -> int:
    """Core's draw over a plain model: `order` is the non-empty buckets, in ascending order."""
    bucket = order[rng.randrange(len(order))]
    positions = buckets[bucket]
    i = bisect_left(positions, rng.randrange(BUCKET_SIZE))
    return bucket * BUCKET_SIZE + positions[i % len(positions)]


def test_the_sparse_table_draws_as_the_plain_model_through_puts_and_removes():
    rng = random.Random(7)
    table, model = BucketTable(), {}  # model: slot -> entry
    entries = {}
    # few buckets, so buckets hold several slots and the wrap-round case is common
    for step in range(3000):
        slot = rng.randrange(40) * BUCKET_SIZE + rng.randrange(BUCKET_SIZE)
        if slot in model and rng.random() < 0.5:
            table.remove(slot)
            del model[slot]
        elif slot not in model:
            entries[slot] = model[slot] = AddrInfo(f"127.0.{slot // 256}.{slot % 256}", 1, 1, 0, "127.1.1.1")
            table.put(slot, model[slot])
        buckets: dict[int, list[int]] = {}
        for s in sorted(model):
            buckets.setdefault(s // BUCKET_SIZE, []).append(s % BUCKET_SIZE)
        assert list(table.occupied) == sorted(model) and dict(table.items()) == model
        assert list(table.nonempty) == sorted(buckets)
        assert all(table.get(s) is e for s, e in model.items())
        if model:
            seed = rng.randrange(1 << 30)
            for k in range(3):
                got = table.pick(random.Random(seed + k))
                assert got is model[reference_pick(buckets, sorted(buckets), random.Random(seed + k))]


def test_the_draw_reaches_every_slot_of_a_bucket_including_by_wrapping():
    table = BucketTable()
    slots = [5 * BUCKET_SIZE + 10, 5 * BUCKET_SIZE + 60, 9 * BUCKET_SIZE + 0]
    for s in slots:
        table.put(s, AddrInfo("127.0.0.1", s, 1, 0, "127.1.1.1"))
    rng = random.Random(1)
    seen = {table.pick(rng).addr.port for _ in range(2000)}
    assert seen == set(slots)
    table.remove(9 * BUCKET_SIZE)
    assert list(table.nonempty) == [5]
    table.remove(5 * BUCKET_SIZE + 10)
    assert {table.pick(rng).addr.port for _ in range(50)} == {5 * BUCKET_SIZE + 60}


def make(common_port: int) -> AddrMan:
    return AddrMan(bytes(range(32)), NetGroups(), random.Random(1), lambda: NOW, common_port=common_port)


def test_the_same_ip_on_the_common_port_and_another_port_are_two_entries():
    am = make(8333)
    a = NetAddr("127.3.0.1", 8333, 1, int(NOW - 3600))
    b = NetAddr("127.3.0.1", 8334, 1, int(NOW - 3600))
    am.add([a, b], source_ip="127.9.0.1")
    assert am.size() == 2
    assert am.find("127.3.0.1", 8333).addr.port == 8333
    assert am.find("127.3.0.1", 8334).addr.port == 8334
    assert am.find("127.3.0.1", 8335) is None
    assert am.good("127.3.0.1", 8334) and am.find("127.3.0.1", 8334).in_tried
    assert not am.find("127.3.0.1", 8333).in_tried
    am.attempt("127.3.0.1", 8333)
    assert am.find("127.3.0.1", 8333).attempts == 1 and am.find("127.3.0.1", 8334).attempts == 0


def test_the_common_port_changes_no_placement_and_survives_a_restart():
    plain, keyed = make(0), make(8333)
    addrs = [NetAddr(f"127.{i % 200}.{i // 200}.1", 8333 + i % 3, 1, int(NOW - 3600)) for i in range(600)]
    for i in range(0, len(addrs), 10):
        for am in (plain, keyed):
            am.add(addrs[i:i + 10], source_ip=f"127.{i // 10}.9.9", time_penalty=7200)
    for a in addrs[::7]:
        for am in (plain, keyed):
            am.good(a.ip, a.port)
    assert keyed.new_slots() == plain.new_slots() and keyed.tried_slots() == plain.tried_slots()
    restarted = make(8333)
    restore(restarted, decode(encode(snapshot(keyed))))
    assert restarted.new_slots() == keyed.new_slots() and restarted.tried_slots() == keyed.tried_slots()
    assert all(restarted.find(a.ip, a.port) is not None for a in addrs if keyed.find(a.ip, a.port))

