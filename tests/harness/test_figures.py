"""The derived figures of a run, on hand-built observations whose answers are known."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.analysis.figures import compute_figures
from harness.analysis.figures.bans import bans_by_reason, bans_over_time, honest_nodes_banned, host_of, time_to_ban
from harness.analysis.figures.eclipse import victim_eclipse
from harness.analysis.figures.propagation import (
    item_propagation,
    kind_propagation,
    nodes_needed,
    propagation_curve,
    time_to_reach,
)
from harness.analysis.model import (
    AttackerStart,
    BanEvent,
    ItemObservation,
    OutboundSample,
    Report,
    ReportInputError,
    VictimSeries,
)

T0 = 1_700_000_000.0


def ten_nodes_one_second_apart(kind: str = "tx", item_id: str = "tx1") -> ItemObservation:
    """n0 is the origin at T0; n1..n9 see the item 1..9 s later: the k-th arrival is at k-1 seconds."""
    seen = {f"n{i}": T0 + i for i in range(10)}
    return ItemObservation(kind, item_id, T0, "n0", seen, honest_node_count=10)


# --- propagation -----------------------------------------------------------------------------------


def test_ten_nodes_p50_is_the_fifth_arrival_p90_the_ninth_p100_the_tenth():
    p = item_propagation(ten_nodes_one_second_apart())
    assert (p.t50, p.t90, p.t100) == (4.0, 8.0, 9.0)
    assert p.reached == 10 and p.coverage == 1.0


def test_the_origin_counts_as_having_the_item_at_origin_time():
    # The origin never reported the item itself, yet it is the first of the 10 arrivals.
    seen = {f"n{i}": T0 + i for i in range(1, 10)} | {"n0": None}
    p = item_propagation(ItemObservation("tx", "tx1", T0, "n0", seen, 10))
    assert p.reached == 10
    assert (p.t50, p.t90, p.t100) == (4.0, 8.0, 9.0)


def test_an_origin_that_reports_a_later_first_seen_still_counts_at_origin_time():
    seen = {"n0": T0 + 7, "n1": T0 + 1}
    assert time_to_reach(ItemObservation("tx", "t", T0, "n0", seen, 2), 50) == 0.0


def test_an_attacker_origin_does_not_count_among_honest_nodes():
    seen = {f"n{i}": T0 + 1 + i for i in range(10)}
    p = item_propagation(ItemObservation("tx", "t", T0, "attacker-0", seen, 10, origin_honest=False))
    assert (p.t50, p.t90, p.t100) == (5.0, 9.0, 10.0)


def test_nodes_that_never_saw_the_item_leave_the_high_quantiles_unreached():
    seen = {f"n{i}": (T0 + i if i < 8 else None) for i in range(10)}
    p = item_propagation(ItemObservation("block", "b", T0, "n0", seen, 10))
    assert p.t50 == 4.0
    assert p.t90 is None and p.t100 is None
    assert p.reached == 8 and p.coverage == 0.8


def test_honest_nodes_missing_from_the_mapping_count_as_never_seen():
    seen = {f"n{i}": T0 + i for i in range(5)}  # 5 of 10 honest nodes reported at all
    p = item_propagation(ItemObservation("tx", "t", T0, "n0", seen, 10))
    assert p.t50 == 4.0 and p.t90 is None and p.coverage == 0.5


def test_a_node_whose_clock_is_behind_the_origin_counts_at_delay_zero():
    seen = {"n0": T0, "n1": T0 - 0.3}
    assert item_propagation(ItemObservation("tx", "t", T0, "n0", seen, 2)).t100 == 0.0


def test_quantile_node_counts_use_exact_integer_ceilings():
    assert nodes_needed(70, 10) == 7  # 0.7 * 10 in floating point is 7.000000000000001
    assert nodes_needed(50, 3) == 2
    assert nodes_needed(90, 1) == 1
    assert nodes_needed(100, 7) == 7
    with pytest.raises(ValueError):
        nodes_needed(0, 10)


@given(st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=100))
def test_nodes_needed_is_the_smallest_count_reaching_the_share(n, percent):
    k = nodes_needed(percent, n)
    assert 100 * k >= percent * n and (k == 1 or 100 * (k - 1) < percent * n)


def test_aggregate_takes_median_and_max_over_reaching_items_and_counts_the_rest():
    fast = ten_nodes_one_second_apart(item_id="fast")  # p50 4, p90 8, p100 9
    slow = ItemObservation("tx", "slow", T0, "n0", {f"n{i}": T0 + 2 * i for i in range(10)}, 10)  # 8, 16, 18
    stalled = ItemObservation("tx", "stalled", T0, "n0", {f"n{i}": (T0 + i if i < 6 else None) for i in range(10)}, 10)
    block = ten_nodes_one_second_apart("block", "b")
    items = [item_propagation(o) for o in (fast, slow, stalled, block)]
    tx = kind_propagation("tx", items)
    assert tx.items == 3
    assert (tx.p50.median, tx.p50.max, tx.p50.reached_items) == (4.0, 8.0, 3)
    assert (tx.p90.median, tx.p90.max, tx.p90.reached_items) == (12.0, 16.0, 2)
    assert (tx.p100.median, tx.p100.max) == (13.5, 18.0)
    assert (tx.never_reached_90, tx.never_reached_100) == (1, 1)
    assert tx.median_coverage == 1.0
    assert kind_propagation("block", items).items == 1


def test_aggregate_of_no_items_has_no_medians():
    agg = kind_propagation("block", [])
    assert agg.items == 0 and agg.p50.median is None and agg.median_coverage is None


def test_cdf_curve_has_one_point_per_arrival_time_with_cumulative_shares():
    seen = {"n0": T0, "n1": T0 + 1, "n2": T0 + 1, "n3": None}
    assert propagation_curve(ItemObservation("tx", "t", T0, "n0", seen, 4)) == [(0.0, 0.25), (1.0, 0.75)]


def test_observations_that_contradict_themselves_are_refused():
    with pytest.raises(ReportInputError, match="honest_node_count"):
        ItemObservation("tx", "t", T0, "n0", {"n1": T0, "n2": T0}, honest_node_count=2)  # 3 nodes named
    with pytest.raises(ReportInputError, match="kind"):
        ItemObservation("header", "t", T0, "n0", {}, 1)
    with pytest.raises(ReportInputError, match="first_seen"):
        ItemObservation("tx", "t", T0, "n0", {"n1": float("nan")}, 2)


# --- bans ------------------------------------------------------------------------------------------


def ban(t: float, by: str, addr: str, reason: str, attacker: bool = True, name: str | None = None) -> BanEvent:
    return BanEvent(T0 + t, by, addr, reason, attacker, name)


def test_bans_over_time_are_cumulative_step_series_per_reason():
    events = [
        ban(12, "n1", "127.9.0.1:18444", "inv-too-large"),
        ban(10, "n2", "127.9.0.1:18444", "inv-too-large"),
        ban(11, "n1", "127.9.0.2", "addr-too-large"),
    ]
    assert bans_over_time(events, T0) == {
        "addr-too-large": [(0.0, 0), (11.0, 1)],
        "inv-too-large": [(0.0, 0), (10.0, 1), (12.0, 2)],
    }
    assert bans_by_reason(events) == {"inv-too-large": 2, "addr-too-large": 1}
    assert bans_over_time([], T0) == {}


def test_time_to_ban_is_the_first_ban_by_any_honest_node_after_the_attacker_started():
    attackers = [
        AttackerStart("attacker-0", T0 + 5, ("127.9.0.1",)),
        AttackerStart("attacker-1", T0 + 5, ("127.9.0.2", "127.9.0.3")),
        AttackerStart("attacker-2", T0 + 5, ("127.9.0.4",)),
    ]
    events = [
        ban(2, "n3", "127.9.0.1:1", "tx-invalid"),  # before attacker-0 started: not its ban
        ban(20, "n1", "127.9.0.1:18444", "inv-too-large"),
        ban(15, "n2", "10.0.0.1", "addr-too-large", name="attacker-0"),  # matched by name
        ban(30, "n4", "127.9.0.3:5555", "tx-invalid"),  # matched by its second address
    ]
    by_name = {t.attacker: t for t in time_to_ban(events, attackers)}
    a0, a1, a2 = by_name["attacker-0"], by_name["attacker-1"], by_name["attacker-2"]
    assert (a0.seconds_to_ban, a0.first_banned_by, a0.first_ban_reason, a0.banned_by_nodes) == (
        10.0,
        "n2",
        "addr-too-large",
        2,
    )
    assert (a1.seconds_to_ban, a1.first_banned_by) == (25.0, "n4")
    assert (a2.seconds_to_ban, a2.first_ban_time, a2.banned_by_nodes) == (None, None, 0)


def test_honest_nodes_banned_lists_only_false_positives_in_time_order():
    events = [
        ban(9, "n1", "127.0.0.3", "headers-unconnecting", attacker=False, name="n3"),
        ban(1, "n1", "127.9.0.1", "inv-too-large"),
        ban(4, "n2", "127.0.0.5", "tx-invalid", attacker=False, name="n5"),
    ]
    assert [e.banned_node for e in honest_nodes_banned(events)] == ["n5", "n3"]


def test_host_of_strips_ports_from_ipv4_and_bracketed_ipv6():
    assert host_of("127.1.2.3:18444") == "127.1.2.3"
    assert host_of("127.1.2.3") == "127.1.2.3"
    assert host_of("[::1]:8333") == "::1"
    assert host_of("fd00::1") == "fd00::1"


# --- eclipse ---------------------------------------------------------------------------------------


def samples(*rows: tuple[float, int, int]) -> VictimSeries:
    return VictimSeries("victim", [OutboundSample(T0 + t, total, att) for t, total, att in rows])


def test_a_victim_is_eclipsed_while_attackers_hold_all_of_its_outbound_peers():
    series = samples((0, 8, 0), (10, 8, 4), (20, 8, 8), (30, 8, 8), (40, 8, 7))
    e = victim_eclipse(series, T0, end_time=T0 + 50)
    assert e.share_series == [(0.0, 0.0), (10.0, 0.5), (20.0, 1.0), (30.0, 1.0), (40.0, 0.875)]
    assert e.max_share == 1.0
    assert e.eclipsed and e.first_eclipsed_at == 20.0
    assert e.eclipsed_seconds == 20.0  # from 20 s until the 40 s sample
    assert not e.eclipsed_at_end


def test_the_last_eclipsed_sample_holds_until_the_end_time():
    series = samples((30, 2, 2), (0, 8, 1))  # unsorted on purpose
    assert victim_eclipse(series, T0, end_time=T0 + 45).eclipsed_seconds == 15.0
    assert victim_eclipse(series, T0).eclipsed_seconds == 0.0  # no end time: the last sample has no length
    assert victim_eclipse(series, T0).eclipsed_at_end


def test_a_node_without_outbound_peers_is_isolated_not_eclipsed():
    e = victim_eclipse(samples((0, 0, 0), (5, 0, 0)), T0, T0 + 10)
    assert not e.eclipsed and e.max_share == 0.0 and e.eclipsed_seconds == 0.0


def test_a_victim_without_samples_has_no_share():
    e = victim_eclipse(VictimSeries("v", []), T0, T0 + 10)
    assert e.max_share is None and not e.eclipsed and e.share_series == []


def test_an_attacker_count_above_the_total_is_refused():
    with pytest.raises(ReportInputError, match="outbound_attacker"):
        OutboundSample(T0, 2, 3)


# --- all together ----------------------------------------------------------------------------------


def test_compute_figures_covers_both_kinds_even_without_items():
    figures = compute_figures(Report("s", 1, "d", "local", 3, T0, T0 + 10))
    assert set(figures.by_kind) == {"tx", "block"}
    assert figures.items == [] and figures.eclipse == [] and figures.bans_series == {}
