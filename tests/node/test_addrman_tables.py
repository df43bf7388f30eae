"""addrman's compact storage keeps Core's behaviour: the sparse bucket table draws exactly as
"a random non-empty bucket, a random start position, the next occupied slot" over a plain
bucket -> positions model, and entries keyed by ip alone on the common port stay distinct from
the same ip on another port (protocol.md §2.2; node.md, memory)."""

from __future__ import annotations

import hashlib
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


def test_below_draws_what_randrange_draws_from_the_same_stream():
    """The draw behind `pick` and `get_addr` takes randrange's values, in order, so a seeded node
    chooses the same addresses as before it was written out (1 and the powers of two included)."""
    from harness_node.addr.buckets import below

    sizes = [1, 2, 3, 63, 64, 65, 1000, 1 << 20, (1 << 40) + 7] * 50
    ours, theirs = random.Random(11), random.Random(11)
    assert [below(ours, n) for n in sizes] == [theirs.randrange(n) for n in sizes]
    assert [below(ours, n - 5) + 5 for n in range(6, 300)] == [theirs.randrange(5, n) for n in range(6, 300)]


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



def test_only_dialled_entries_carry_a_history_and_a_restart_keeps_each_kind():
    """An entry keeps its connection history (Core's nLastTry, nLastSuccess, nLastCountAttempt,
    nAttempts) in a record made on its first dial: the ~300 entries of each of 10,000 nodes are
    mostly never dialled and pay nothing for it (node.md, memory). What the history says must not
    depend on that: an undialled entry reads as all zero, a dialled one as Core counts it, and a
    snapshot and restore keeps both, and where each entry is (new, tried)."""
    clock = [NOW]
    am = AddrMan(bytes(range(32)), NetGroups(), random.Random(1), lambda: clock[0], common_port=8333)
    addrs = [NetAddr(f"127.{i}.0.1", 8333, 1, int(NOW - 3600)) for i in range(1, 40)]
    am.add(addrs, source_ip="127.200.0.1")
    never, failing, good = am.find("127.1.0.1", 8333), am.find("127.2.0.1", 8333), am.find("127.3.0.1", 8333)
    assert never.tries is None and (never.last_try, never.last_success, never.attempts) == (0.0, 0.0, 0)
    for _ in range(3):  # counted once per `good` of any address (Core's nLastCountAttempt rule)
        am.attempt(failing.ip, failing.port)
    assert failing.attempts == 1 and failing.last_try > 0 and failing.last_success == 0
    clock[0] += 60
    am.good("127.9.0.1", 8333)  # a success elsewhere lets the next failure count
    clock[0] += 60
    am.attempt(failing.ip, failing.port)
    assert failing.attempts == 2
    assert am.good(good.ip, good.port) and good.in_tried and good.refcount == 0 and good.new_slots == ()
    assert good.attempts == 0 and good.last_success == good.last_try > 0
    assert not failing.in_tried and failing.refcount == 1
    restarted = make(8333)
    restore(restarted, decode(encode(snapshot(am))))
    for e in (never, failing, good):
        r = restarted.find(e.ip, e.port)
        assert (r.in_tried, r.refcount, r.attempts, r.last_try, r.last_success, r.last_count_attempt) == (
            e.in_tried, e.refcount, e.attempts, e.last_try, e.last_success, e.last_count_attempt)
    assert restarted.find(never.ip, never.port).tries is None
    assert restarted.tried_slots() == am.tried_slots() and restarted.new_slots() == am.new_slots()


# --- placement: Core's keyed hashes, written out plainly -------------------------------------


def core_cheap_hash(key: bytes, *parts: bytes) -> int:
    """CHashWriter(key, parts...).GetCheapHash(): SHA256d of the serialised fields, first 8 bytes LE."""
    return int.from_bytes(hashlib.sha256(hashlib.sha256(key + b"".join(parts)).digest()).digest()[:8], "little")


def core_group_vector(ip: str) -> bytes:
    """GetGroup() of an IPv4 address under the /16 rule, serialised as a vector: length, then bytes."""
    group = bytes([1]) + bytes(int(o) for o in ip.split(".")[:2])  # NET_IPV4, the first two octets
    return bytes([len(group)]) + group


def core_service_key(ip: str, port: int) -> bytes:
    """CService::GetKey(): the IPv4-mapped 16 bytes, then the port big-endian."""
    return bytes(10) + b"\xff\xff" + bytes(int(o) for o in ip.split(".")) + port.to_bytes(2, "big")


def core_new_slot(key: bytes, ip: str, port: int, source: str) -> int:
    """GetNewBucket, then GetBucketPosition(fNew=true)."""
    h1 = core_cheap_hash(key, core_group_vector(ip), core_group_vector(source)) % 64
    bucket = core_cheap_hash(key, core_group_vector(source), h1.to_bytes(8, "little")) % 1024
    return bucket * 64 + core_cheap_hash(key, b"N", bucket.to_bytes(4, "little"), core_service_key(ip, port)) % 64


def core_tried_slot(key: bytes, ip: str, port: int) -> int:
    """GetTriedBucket, then GetBucketPosition(fNew=false)."""
    h1 = core_cheap_hash(key, core_service_key(ip, port)) % 8
    bucket = core_cheap_hash(key, core_group_vector(ip), h1.to_bytes(8, "little")) % 256
    return bucket * 64 + core_cheap_hash(key, b"K", bucket.to_bytes(4, "little"), core_service_key(ip, port)) % 64


def test_addresses_land_in_the_slots_cores_keyed_hashes_give() -> None:
    rng = random.Random(5)
    key = rng.randbytes(32)
    am = AddrMan(key, NetGroups(), random.Random(1), lambda: NOW, common_port=8333)
    for _ in range(300):
        ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        port = rng.choice([8333, 18444])
        source = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.0.1"
        assert am._new_slot(NetAddr(ip, port, 1, 0), source) == core_new_slot(key, ip, port, source)
        assert am._tried_slot(NetAddr(ip, port, 1, 0)) == core_tried_slot(key, ip, port)
    # and `add`, which looks the source's group up once for a whole message, places each the same
    source = "10.20.0.1"
    batch = [NetAddr(f"10.{30 + i}.{i}.{i + 1}", 8333, 1, int(NOW) - 60) for i in range(40)]
    fresh = AddrMan(key, NetGroups(), random.Random(1), lambda: NOW, common_port=8333)
    assert fresh.add(batch, source_ip=source) == len(fresh.new_slots())
    for slot, (ip, port) in fresh.new_slots().items():
        assert slot == core_new_slot(key, ip, port, source)


def test_an_entry_in_slot_0_keeps_it_when_it_gains_a_second_slot() -> None:
    """Slot 0 (bucket 0, position 0) is a slot like any other: a falsy int must not read as 'none'."""
    entry = AddrInfo("127.0.0.1", 8333, 1, 0, "127.0.0.2")
    entry.add_new_slot(0)
    assert entry.new_slots == (0,) and entry.refcount == 1
    entry.add_new_slot(70)
    assert entry.new_slots == (0, 70) and entry.refcount == 2
    entry.add_new_slot(5)
    assert entry.new_slots == (0, 70, 5) and entry.refcount == 3
