"""Bans expire, survive a restart and cover subnets; discouragement is in memory only
(protocol.md §3.1)."""

from __future__ import annotations

import json
import os

import pytest

from harness_node.peering.banman import DISCOURAGED_CAPACITY, BanListError, BanMan

BANTIME = 86_400.0  # banman.h DEFAULT_MISBEHAVING_BANTIME


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def banlist(tmp_path) -> str:
    return str(tmp_path / "banlist.json")


def test_a_ban_lasts_the_default_bantime_and_then_expires(clock, banlist):
    bans = BanMan(banlist, clock, BANTIME)
    bans.ban("127.0.3.4", "inv-too-large")
    assert bans.is_banned("127.0.3.4")
    assert not bans.is_banned("127.0.3.5")
    clock.now += BANTIME - 1
    assert bans.is_banned("127.0.3.4")
    clock.now += 1
    assert not bans.is_banned("127.0.3.4")
    assert bans.list() == []  # listing sweeps the expired ban out


def test_a_ban_with_its_own_duration_expires_after_that_duration(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("10.0.0.1", "manual", duration=60)
    clock.now += 59.9
    assert bans.is_banned("10.0.0.1")
    clock.now += 0.1
    assert not bans.is_banned("10.0.0.1")
    assert bans.sweep() == 1
    assert bans.banned_count == 0


def test_banning_again_only_ever_extends_a_ban(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("10.0.0.1", "manual", duration=1000)
    bans.ban("10.0.0.1", "manual", duration=10)
    clock.now += 500
    assert bans.is_banned("10.0.0.1")
    bans.ban("10.0.0.1", "manual", duration=2000)
    clock.now += 1000
    assert bans.is_banned("10.0.0.1")


def test_a_persisted_ban_survives_a_restart_from_the_same_file(clock, banlist):
    BanMan(banlist, clock, BANTIME).ban("127.0.9.9", "block-invalid", duration=3600)
    created = clock.now
    clock.now += 10
    restarted = BanMan(banlist, clock, BANTIME)
    assert restarted.is_banned("127.0.9.9")
    assert restarted.list() == [
        {"address": "127.0.9.9/32", "reason": "block-invalid", "created": created, "until": created + 3600}
    ]


def test_a_ban_that_expired_while_the_node_was_down_is_dropped_on_load(clock, banlist):
    BanMan(banlist, clock, BANTIME).ban("127.0.9.9", "manual", duration=60)
    clock.now += 61
    restarted = BanMan(banlist, clock, BANTIME)
    assert not restarted.is_banned("127.0.9.9")
    assert json.load(open(banlist))["banned"] == []


def test_unban_lifts_a_ban_and_the_file_follows(clock, banlist):
    bans = BanMan(banlist, clock, BANTIME)
    bans.ban("127.0.9.9", "manual")
    assert bans.unban("127.0.9.9") is True
    assert bans.unban("127.0.9.9") is False
    assert not bans.is_banned("127.0.9.9")
    assert not BanMan(banlist, clock, BANTIME).is_banned("127.0.9.9")


def test_the_ban_file_is_replaced_atomically_without_leftover_temp_files(clock, banlist, tmp_path):
    bans = BanMan(banlist, clock, BANTIME)
    for i in range(5):
        bans.ban(f"127.0.0.{i}", "manual")
    assert os.listdir(tmp_path) == ["banlist.json"]
    assert len(json.load(open(banlist))["banned"]) == 5


def test_discouragement_is_not_persisted_and_does_not_ban(clock, banlist):
    bans = BanMan(banlist, clock, BANTIME)
    bans.discourage("127.0.5.5")
    assert bans.is_discouraged("127.0.5.5")
    assert not bans.is_banned("127.0.5.5")
    assert bans.list() == []
    clock.now += 10 * BANTIME  # no expiry
    assert bans.is_discouraged("127.0.5.5")
    assert not BanMan(banlist, clock, BANTIME).is_discouraged("127.0.5.5")


def test_discouragement_forgets_the_oldest_address_beyond_fifty_thousand(clock):
    bans = BanMan(None, clock, BANTIME)
    for i in range(DISCOURAGED_CAPACITY + 1):
        bans.discourage(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert DISCOURAGED_CAPACITY == 50_000
    assert not bans.is_discouraged("10.0.0.0")
    assert bans.is_discouraged("10.0.0.1")
    assert bans.discouraged_count == DISCOURAGED_CAPACITY


def test_a_subnet_ban_covers_every_address_in_it(clock, banlist):
    bans = BanMan(banlist, clock, BANTIME)
    bans.ban("127.7.0.0/16", "manual")
    assert bans.is_banned("127.7.0.1")
    assert bans.is_banned("127.7.255.254")
    assert not bans.is_banned("127.8.0.1")
    bans.ban("fd00:1::/32", "manual")
    assert bans.is_banned("fd00:1:2::3")
    assert not bans.is_banned("fd00:2::3")
    assert BanMan(banlist, clock, BANTIME).is_banned("127.7.3.3")


def test_host_bits_of_a_subnet_are_ignored_like_setban(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("10.1.2.3/16", "manual")
    assert bans.list()[0]["address"] == "10.1.0.0/16"
    assert bans.is_banned("10.1.200.200")


def test_an_ipv4_mapped_ipv6_peer_address_matches_an_ipv4_ban(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("127.0.3.4", "manual")
    assert bans.is_banned("::ffff:127.0.3.4")


def test_unban_of_a_host_inside_a_banned_subnet_leaves_the_subnet_ban(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("10.1.0.0/16", "manual")
    assert bans.unban("10.1.2.3") is False
    assert bans.is_banned("10.1.2.3")
    assert bans.unban("10.1.0.0/16") is True
    assert not bans.is_banned("10.1.2.3")


def test_clear_removes_bans_and_discouragement_from_memory_and_disk(clock, banlist):
    bans = BanMan(banlist, clock, BANTIME)
    bans.ban("127.0.1.1", "manual")
    bans.ban("127.2.0.0/16", "manual")
    bans.discourage("127.0.1.2")
    bans.clear()
    assert not bans.is_banned("127.0.1.1")
    assert not bans.is_banned("127.2.0.1")
    assert not bans.is_discouraged("127.0.1.2")
    assert bans.list() == []
    assert BanMan(banlist, clock, BANTIME).list() == []


def test_counters_count_bans_by_reason_and_bans_in_force(clock):
    bans = BanMan(None, clock, BANTIME)
    bans.ban("10.0.0.1", "inv-too-large")
    bans.ban("10.0.0.2", "inv-too-large")
    bans.ban("10.0.0.3", "manual", duration=5)
    bans.discourage("10.0.0.4")
    assert bans.bans_by_reason == {"inv-too-large": 2, "manual": 1}
    assert bans.banned_count == 3
    clock.now += 5
    assert bans.banned_count == 2
    assert bans.discouraged_total == 1


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 1}',
        '{"version": 99, "banned": []}',
        '{"version": 1, "banned": [{"address": "not-an-ip", "reason": "x", "created": 0, "until": 1}]}',
        '{"version": 1, "banned": [{"address": "10.0.0.1", "created": 0, "until": 1}]}',
    ],
)
def test_a_corrupt_ban_file_raises_an_error_that_names_the_file(clock, banlist, content):
    with open(banlist, "w") as f:
        f.write(content)
    with pytest.raises(BanListError, match="banlist.json"):
        BanMan(banlist, clock, BANTIME)


def test_bad_parameters_are_refused_with_a_message_naming_them(clock):
    with pytest.raises(ValueError, match="default_bantime"):
        BanMan(None, clock, 0)
    bans = BanMan(None, clock, BANTIME)
    with pytest.raises(ValueError, match="duration"):
        bans.ban("10.0.0.1", "manual", duration=-1)
    with pytest.raises(ValueError, match="without a port"):
        bans.ban("10.0.0.1:8333", "manual")
    with pytest.raises(ValueError, match="not-an-ip"):
        bans.is_banned("not-an-ip")
