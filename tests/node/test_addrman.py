"""addrman behaves like Bitcoin Core's (protocol.md §2.2): keyed bucketing that caps what one
netgroup can occupy, terrible entries making room, test-before-evict, the 50/50 tried/new draw,
getaddr's 23 % / 1000 cap, and tables that survive a restart."""

from __future__ import annotations

import itertools
import random

import pytest

from harness_node.addr.addrman import (
    BUCKET_SIZE,
    NEW_BUCKET_COUNT,
    TRIED_BUCKET_COUNT,
    AddrMan,
    AddrManCorruptError,
)
from harness_node.addr.addrman_store import decode, encode, snapshot
from harness_node.wire.codec import NetAddr
from harness_node.addr.netgroup import NetGroups

START = 1_700_000_000.0
DAY = 86_400.0
KEY = bytes(range(32))


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(
    clock: FakeClock, key: bytes = KEY, seed: int = 1, netgroups: NetGroups | None = None, **kw
) -> AddrMan:
    return AddrMan(key, netgroups or NetGroups(), random.Random(seed), clock, **kw)


def addr(ip: str, port: int = 8333, age: float = 3600.0, now: float = START) -> NetAddr:
    return NetAddr(ip=ip, port=port, services=1, time=int(now - age))


def spread(n: int, first_octet: int = 127) -> list[NetAddr]:
    """n addresses over many /16 groups."""
    return [addr(f"{first_octet}.{i % 250}.{i // 250 % 250}.{1 + i // 62500}") for i in range(n)]


def fill(am: AddrMan, addrs: list[NetAddr], sources: int = 200) -> None:
    """Add addresses 10 at a time from `sources` different source groups."""
    for i in range(0, len(addrs), 10):
        am.add(addrs[i : i + 10], source_ip=f"127.{(i // 10) % sources}.9.9")


def key_of(a: NetAddr) -> tuple[str, int]:
    return (a.ip, a.port)


def tried_set(am: AddrMan) -> set[tuple[str, int]]:
    return set(am.tried_slots().values())


def check_consistent(am: AddrMan) -> None:
    """Core's CheckAddrman: every entry is in tried xor referenced from new; slots agree with the key."""
    new_refs: dict[tuple[str, int], int] = {}
    for slot, k in am.new_slots().items():
        assert slot < NEW_BUCKET_COUNT * BUCKET_SIZE
        new_refs[k] = new_refs.get(k, 0) + 1
    tried = am.tried_slots()
    assert all(s < TRIED_BUCKET_COUNT * BUCKET_SIZE for s in tried)
    assert set(new_refs).isdisjoint(tried.values())
    for slot, k in tried.items():
        e = am.find(*k)
        assert e.in_tried and e.refcount == 0 and am._tried_slot(e.addr) == slot
    for k, n in new_refs.items():
        e = am.find(*k)
        assert not e.in_tried and e.refcount == n <= 8
    assert am.counts() == (len(new_refs), len(tried))
    assert am.size() == len(new_refs) + len(tried)


# --- bucketing ---------------------------------------------------------------------------------


def test_addresses_of_one_netgroup_never_span_more_than_8_tried_buckets(clock):
    am = make(clock, test_before_evict=False)
    one_group = [addr(f"127.42.{i // 250}.{i % 250 + 1}") for i in range(600)]
    fill(am, one_group)
    for a in one_group:
        am.good(a.ip, a.port)
    buckets = {slot // BUCKET_SIZE for slot in am.tried_slots()}
    assert am.counts()[1] > 100
    assert 1 < len(buckets) <= 8

    many_groups = make(clock, test_before_evict=False)
    others = spread(600)
    fill(many_groups, others)
    for a in others:
        many_groups.good(a.ip, a.port)
    assert len({slot // BUCKET_SIZE for slot in many_groups.tried_slots()}) > 100


def test_one_source_groups_addresses_never_span_more_than_64_new_buckets(clock):
    am = make(clock)
    for i, a in enumerate(spread(5000)):
        am.add([a], source_ip=f"127.7.{i % 250}.{i // 250 + 1}")  # many sources, all in 127.7/16
    buckets = {slot // BUCKET_SIZE for slot in am.new_slots()}
    assert am.counts()[0] > 2000
    assert 32 < len(buckets) <= 64

    many_sources = make(clock)
    fill(many_sources, spread(5000), sources=250)
    assert len({slot // BUCKET_SIZE for slot in many_sources.new_slots()}) > 256


def test_same_key_places_identically_and_another_key_elsewhere(clock):
    addrs = spread(2000)
    a, b, other = make(clock, seed=1), make(clock, seed=1), make(clock, key=bytes(32), seed=1)
    for am in (a, b, other):
        fill(am, addrs)
        for x in addrs[:300]:
            am.good(x.ip, x.port)
    assert a.new_slots() == b.new_slots() and a.tried_slots() == b.tried_slots()
    assert a.new_slots() != other.new_slots() and a.tried_slots() != other.tried_slots()
    for am in (a, other):
        check_consistent(am)


def test_core_rule_refuses_unroutable_addresses(clock):
    am = make(clock, netgroups=NetGroups(all_routable=False))
    assert am.add([addr("10.0.0.1"), addr("127.0.0.1"), addr("192.168.1.1"), addr("8.8.8.8")], "1.1.1.1") == 1
    assert [e for e in (am.find("10.0.0.1", 8333), am.find("8.8.8.8", 8333))][1] is not None
    assert am.size() == 1


# --- adding --------------------------------------------------------------------------------------


def test_gossiped_addresses_pay_the_time_penalty_but_self_announcements_do_not(clock):
    am = make(clock)
    penalty = am.windows.time_penalty
    assert penalty == 2 * 3600
    am.add([addr("127.1.0.1", age=0), addr("127.1.0.2", age=0)], source_ip="127.1.0.2", time_penalty=penalty)
    assert am.find("127.1.0.1", 8333).addr.time == int(START - penalty)
    assert am.find("127.1.0.2", 8333).addr.time == int(START)


def test_extra_copies_in_new_get_exponentially_harder_and_stop_at_8(clock):
    am = make(clock, seed=7)
    first = addr("127.200.0.1", age=100)
    am.add([first], source_ip="127.0.0.1")
    newer = addr("127.200.0.1", age=99)  # fresher nTime: the only case in which Core adds a copy
    for i in range(1, 1000):
        am.add([newer], source_ip=f"127.{i % 250}.{i // 250}.1")
        assert am.find("127.200.0.1", 8333).refcount <= 8
    assert am.find("127.200.0.1", 8333).refcount >= 6

    # After 16 offers, 2^n difficulty leaves about 4 copies (1 + 1 + 2 + 4 + 8 offers for 1..4).
    counts = []
    for j in range(60):
        a = addr(f"127.201.{j}.1", age=100)
        am.add([a], source_ip="127.0.0.1")
        for i in range(16):
            am.add([addr(a.ip, age=99)], source_ip=f"127.{i + 1}.{j}.1")
        counts.append(am.find(a.ip, 8333).refcount)
    assert 3.0 <= sum(counts) / len(counts) <= 5.5
    check_consistent(am)


def _colliding_new_pair(am: AddrMan, source: str) -> tuple[NetAddr, NetAddr]:
    """Two addresses that the key sends to the same new-table slot from `source`."""
    seen: dict[int, NetAddr] = {}
    for i in itertools.count():
        a = addr(f"127.{i % 250}.{i // 250}.1")
        slot = am._new_slot(a, source)
        if slot in seen:
            return seen[slot], a
        seen[slot] = a


def test_a_terrible_occupant_is_overwritten_and_a_good_one_is_not(clock):
    am = make(clock)
    occupant, newcomer = _colliding_new_pair(am, "127.9.9.9")
    am.add([occupant], "127.9.9.9")
    assert am.add([newcomer], "127.9.9.9") == 0
    assert am.find(*key_of(newcomer)) is None and am.find(*key_of(occupant)) is not None

    stale = make(clock)
    stale.add([addr(occupant.ip, age=31 * DAY)], "127.9.9.9")  # older than the 30-day horizon
    assert stale.is_terrible(stale.find(*key_of(occupant)))
    assert stale.add([newcomer], "127.9.9.9") == 1
    assert stale.find(*key_of(occupant)) is None and stale.find(*key_of(newcomer)) is not None


def test_terrible_entries_are_too_old_from_the_future_or_failed_three_times_and_not_gossiped(clock):
    am = make(clock)
    fine, failing = addr("127.1.0.1"), addr("127.4.0.1")
    old, future = addr("127.2.0.1", age=31 * DAY), addr("127.3.0.1", age=-3600)
    am.add([fine, old, future, failing], "127.9.0.1")
    other = addr("127.5.0.1")
    am.add([other], "127.9.0.1")
    for _ in range(3):
        am.attempt(failing.ip, failing.port)
        clock.now += 100
        am.attempt(failing.ip, failing.port)  # a second failure before any success elsewhere: not counted
        am.good(other.ip, other.port)  # Core counts a failure at most once per success of anyone
        clock.now += 100
    assert am.find(*key_of(failing)).attempts == 3
    terrible = {k for k in map(key_of, (fine, old, future, failing)) if am.is_terrible(am.find(*k))}
    assert terrible == {key_of(old), key_of(future), key_of(failing)}

    am.attempt(old.ip, old.port, count_failure=False)
    assert not am.is_terrible(am.find(*key_of(old)))  # tried in the last minute: exempt
    clock.now += 61
    assert am.is_terrible(am.find(*key_of(old)))
    gossip = set(map(key_of, am.get_addr(max_pct=100)))
    assert gossip == {key_of(fine), key_of(other)}


def test_time_windows_follow_time_scale(clock):
    am = make(clock, time_scale=0.001)  # horizon 30 d -> 43.2 min
    am.add([addr("127.1.0.1", age=3600), addr("127.2.0.1", age=600)], "127.9.0.1")
    assert am.is_terrible(am.find("127.1.0.1", 8333))
    assert not am.is_terrible(am.find("127.2.0.1", 8333))


def test_connected_refreshes_ntime_at_most_every_20_minutes(clock):
    am = make(clock)
    am.add([addr("127.1.0.1", age=10 * 60), addr("127.2.0.1", age=30 * 60)], "127.9.0.1")
    am.connected("127.1.0.1", 8333)
    am.connected("127.2.0.1", 8333)
    assert am.find("127.1.0.1", 8333).addr.time == int(START - 600)
    assert am.find("127.2.0.1", 8333).addr.time == int(START)


# --- tried and test-before-evict -------------------------------------------------------------------


def _colliding_tried_pair(clock: FakeClock) -> tuple[AddrMan, NetAddr, NetAddr]:
    """An addrman with A in tried (5 h ago) and B in new, B's tried slot being A's."""
    am = make(clock)
    seen: dict[int, NetAddr] = {}
    for i in itertools.count():
        b = addr(f"127.77.{i // 250}.{i % 250 + 1}")
        slot = am._tried_slot(b)
        if slot in seen:
            a = seen[slot]
            break
        seen[slot] = b
    am.add([a, b], "127.9.9.9")
    assert am.good(a.ip, a.port)
    clock.now += 5 * 3600
    return am, a, b


def test_test_before_evict_keeps_an_old_tried_entry_that_answers(clock):
    am, a, b = _colliding_tried_pair(clock)
    assert not am.good(b.ip, b.port)
    assert am.collisions() == [key_of(b)] and tried_set(am) == {key_of(a)}
    assert am.select_tried_collision() == am.find(*key_of(a)).addr  # the feeler tests A

    am.attempt(a.ip, a.port, count_failure=False)
    am.good(a.ip, a.port)  # A answered
    am.resolve_collisions()
    assert tried_set(am) == {key_of(a)} and not am.find(*key_of(b)).in_tried
    assert am.collisions() == [] and am.select_tried_collision() is None
    check_consistent(am)


def test_test_before_evict_replaces_an_old_tried_entry_that_fails(clock):
    am, a, b = _colliding_tried_pair(clock)
    am.good(b.ip, b.port)
    am.attempt(a.ip, a.port)  # the feeler to A fails
    clock.now += 30
    am.resolve_collisions()
    assert am.collisions() == [key_of(b)]  # less than a minute: A still gets its chance
    clock.now += 31
    am.resolve_collisions()
    assert tried_set(am) == {key_of(b)}
    assert am.find(*key_of(a)).refcount == 1  # evicted back into new, not forgotten
    assert am.collisions() == []
    check_consistent(am)


def test_an_untested_collision_is_resolved_after_the_40_minute_window(clock):
    am, a, b = _colliding_tried_pair(clock)
    am.good(b.ip, b.port)
    clock.now += 39 * 60
    am.resolve_collisions()
    assert tried_set(am) == {key_of(a)}
    clock.now += 2 * 60
    am.resolve_collisions()
    assert tried_set(am) == {key_of(b)}


def test_without_test_before_evict_a_collision_evicts_directly(clock):
    am, a, b = _colliding_tried_pair(clock)
    am.test_before_evict = False
    assert am.good(b.ip, b.port)
    assert tried_set(am) == {key_of(b)} and am.find(*key_of(a)).refcount == 1
    assert am.collisions() == []
    check_consistent(am)


def test_the_collision_set_holds_at_most_10(clock):
    am = make(clock)
    group = [addr(f"127.88.{i // 250}.{i % 250 + 1}") for i in range(3000)]
    fill(am, group)
    for a in group:
        am.good(a.ip, a.port)
    assert len(am.collisions()) == 10


# --- selection --------------------------------------------------------------------------------------


def test_select_returns_only_stored_addresses_split_about_half_tried_half_new(clock):
    am = make(clock)
    addrs = spread(1000)
    fill(am, addrs)
    for a in addrs[:300]:
        am.good(a.ip, a.port)
    clock.now += 3600  # past the 10-minute "recently tried" penalty
    n_new, n_tried = am.counts()
    assert n_tried > 200 and n_new > 500
    tried, stored = tried_set(am), set(am.new_slots().values()) | tried_set(am)
    picks = [am.select() for _ in range(4000)]
    assert all(key_of(p) in stored for p in picks)
    share = sum(key_of(p) in tried for p in picks) / len(picks)
    assert 0.44 < share < 0.56
    assert all(key_of(am.select(new_only=True)) not in tried for _ in range(500))


def test_use_tried_false_never_selects_from_tried(clock):
    am = make(clock, use_tried=False)
    addrs = spread(400)
    fill(am, addrs)
    for a in addrs[:200]:
        am.good(a.ip, a.port)
    tried = tried_set(am)
    assert len(tried) > 100
    picks = [am.select() for _ in range(2000)]
    assert all(p is not None and key_of(p) not in tried for p in picks)


def test_select_on_empty_tables_returns_none(clock):
    am = make(clock)
    assert am.select() is None and am.select(new_only=True) is None
    a = addr("127.1.0.1")
    am.add([a], "127.9.0.1")
    am.good(a.ip, a.port)
    assert am.select() == am.find(*key_of(a)).addr
    assert am.select(new_only=True) is None


def test_select_avoids_entries_that_keep_failing(clock):
    am = make(clock)
    flaky, healthy = addr("127.1.0.1"), addr("127.2.0.1")
    am.add([flaky, healthy], "127.9.0.1")
    for _ in range(8):
        am.attempt(flaky.ip, flaky.port)
        clock.now += 1
        am.good("127.250.0.1", 1)  # unknown address: only advances Core's last-good time
        clock.now += 1
    assert am.find(*key_of(flaky)).attempts == 8
    clock.now += 3600
    picks = [key_of(am.select()) for _ in range(2000)]
    assert picks.count(key_of(flaky)) < 0.15 * len(picks)


def test_select_rarely_returns_an_address_tried_in_the_last_10_minutes(clock):
    am = make(clock)
    just_tried, other = addr("127.1.0.1"), addr("127.2.0.1")
    am.add([just_tried, other], "127.9.0.1")
    am.attempt(just_tried.ip, just_tried.port, count_failure=False)
    clock.now += 9 * 60
    picks = [key_of(am.select()) for _ in range(2000)]
    assert picks.count(key_of(just_tried)) < 0.1 * len(picks)
    clock.now += 2 * 60
    picks = [key_of(am.select()) for _ in range(2000)]
    assert 0.4 < picks.count(key_of(just_tried)) / len(picks) < 0.6


# --- getaddr -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, expected", [(1000, lambda size: size * 23 // 100), (6000, lambda size: 1000)])
def test_get_addr_returns_23_percent_capped_at_1000_distinct_addresses(clock, n, expected):
    am = make(clock)
    fill(am, spread(n), sources=250)
    got = am.get_addr()
    assert len(got) == expected(am.size())
    assert len(set(map(key_of, got))) == len(got)
    assert all(am.find(*key_of(a)) is not None for a in got)


# --- persistence -------------------------------------------------------------------------------------


def _populated(clock: FakeClock, seed: int = 3) -> AddrMan:
    am = make(clock, seed=seed)
    addrs = spread(3000)
    fill(am, addrs)
    for a in addrs[:800]:
        am.good(a.ip, a.port)
    for a in addrs[800:900]:
        am.attempt(a.ip, a.port)
    return am


def test_a_restarted_node_comes_back_with_identical_tables(clock, tmp_path):
    am = _populated(clock)
    path = tmp_path / "peers.json"
    am.save(path)
    restarted = make(clock, key=bytes(32), seed=99)  # its own key is replaced by the file's
    restarted.load(path)
    assert restarted.counts() == am.counts()
    assert restarted.new_slots() == am.new_slots() and restarted.tried_slots() == am.tried_slots()
    for k in am.tried_slots().values():
        x, y = am.find(*k), restarted.find(*k)
        fields = ("addr", "source", "last_try", "last_success", "last_count_attempt", "attempts")
        assert [getattr(x, f) for f in fields] == [getattr(y, f) for f in fields]
    check_consistent(restarted)
    # Same key, same tables: new information lands in the same places.
    more = spread(200, first_octet=128)
    am.add(more, "127.3.3.3")
    restarted.add(more, "127.3.3.3")
    assert restarted.new_slots() == am.new_slots()
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was renamed into place


def test_loading_with_a_changed_netgroup_rule_rebuckets_instead_of_failing(clock, tmp_path):
    am = _populated(clock)
    am.save(tmp_path / "peers.json")
    wider = make(clock, netgroups=NetGroups(bits=24))
    wider.load(tmp_path / "peers.json")
    check_consistent(wider)
    assert 0 < wider.size() <= am.size()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "checksum"),
        (lambda b: b[:-10] + bytes([b[-10] ^ 1]) + b[-9:], "checksum"),
        (lambda b: b"\x00garbage\n" + b, "header"),
        (lambda b: b"", "header"),
    ],
)
def test_a_corrupt_file_raises_a_clear_error_and_keeps_the_tables(clock, tmp_path, damage, message):
    am = _populated(clock)
    path = tmp_path / "peers.json"
    am.save(path)
    path.write_bytes(damage(path.read_bytes()))
    victim = _populated(clock, seed=5)
    before = victim.new_slots(), victim.tried_slots()
    with pytest.raises(AddrManCorruptError, match=message) as err:
        victim.load(path)
    assert str(path) in str(err.value)
    assert (victim.new_slots(), victim.tried_slots()) == before
    check_consistent(victim)


def test_a_well_formed_file_with_misplaced_entries_is_corrupt(clock, tmp_path):
    am = _populated(clock)
    state = snapshot(am)
    slot, i = state["new"][0]
    state["new"][0] = [slot - slot % BUCKET_SIZE + (slot + 1) % BUCKET_SIZE, i]
    path = tmp_path / "peers.json"
    path.write_bytes(encode(state))
    assert decode(path.read_bytes())  # structurally fine
    with pytest.raises(AddrManCorruptError, match="position|claim"):
        make(clock).load(path)


def test_a_missing_file_is_not_corruption(clock, tmp_path):
    with pytest.raises(FileNotFoundError):
        make(clock).load(tmp_path / "absent.json")


# --- invariants under random use -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_tables_stay_consistent_under_random_operations(clock, seed):
    rng = random.Random(seed)
    am = make(clock, seed=seed, test_before_evict=bool(seed % 2))
    pool = [
        addr(f"127.{rng.randrange(8)}.{rng.randrange(4)}.{rng.randrange(1, 6)}",
             port=8333 + rng.randrange(2), age=rng.uniform(-1200, 40 * DAY))
        for _ in range(400)
    ]  # fmt: skip
    for _ in range(3000):
        op = rng.random()
        a = rng.choice(pool)
        if op < 0.5:
            am.add(rng.sample(pool, 5), f"127.{rng.randrange(20)}.0.1", time_penalty=rng.choice((0, 7200)))
        elif op < 0.65:
            am.good(a.ip, a.port)
        elif op < 0.8:
            am.attempt(a.ip, a.port, count_failure=rng.random() < 0.8)
        elif op < 0.85:
            am.connected(a.ip, a.port)
        elif op < 0.9:
            am.resolve_collisions()
            am.select_tried_collision()
        else:
            pick = am.select(new_only=rng.random() < 0.3)
            assert pick is None or am.find(*key_of(pick)) is not None
        clock.now += rng.uniform(0, 600)
    check_consistent(am)
    assert am.size() > 0
