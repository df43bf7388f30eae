"""Malicious-bootstrap figures and checks (harness/analysis/figures/bootstrap.py, healed_within,
censored_share) on hand-made plans and observations: when the seeder turns honest, who was
poisoned, who healed and when, what share of the victims' transactions was censored; the
controller's heal metrics from the same figures; bad check params refused at validation."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from harness.analysis.checks import evaluate
from harness.analysis.figures.bootstrap import censorship, heal_times, seeder_honest_at, victim_block_delays
from harness.analysis.model import CheckVerdict, ItemObservation, Observations, OutboundSample, VictimSeries
from harness.controller.metrics import Metrics
from harness.plan.model import CheckPlan, Event, NodePlan, Plan
from harness.scenario.checks import parse_check

T0 = 1_700_000_000.0
HONEST = [f"node-{i}" for i in range(6)]
VICTIMS = ["node-4", "node-5"]


def node(name: str, role: str, address: str, config: dict | None = None) -> NodePlan:
    return NodePlan(name=name, role=role, group="", address=address, p2p_port=18444, control_port=18445,
                    config=config or {})


def seeder_event(at: float, mode: str, phase: str = "once", source: str = "faults[0]") -> Event:
    return Event(at=at, action="seeder_mode", nodes=["seeder"], params={"mode": mode, "params": {}}, phase=phase,
                 source=source)


def plan(timeline: list[Event], *expect: CheckPlan, start_mode: str = "honest") -> Plan:
    nodes = [node(n, "honest", f"127.1.0.{i + 1}") for i, n in enumerate(HONEST)]
    nodes += [node("seeder", "seeder", "127.0.53.1", {"mode": start_mode}), node("boot-0", "attacker", "127.100.0.1")]
    return Plan(name="t", seed=1, duration=100.0, allocator="loopback", nodes=nodes, timeline=timeline,
                checks=list(expect), allowlist=[], scenario={})


POISON_45S = [seeder_event(10, "poison", "begin"), seeder_event(55, "poison", "end")]


def test_the_seeder_turns_honest_at_the_end_of_a_malicious_mode_or_at_an_explicit_switch() -> None:
    assert seeder_honest_at(plan(POISON_45S)) == 55
    assert seeder_honest_at(plan([seeder_event(10, "rogue"), seeder_event(40, "honest")])) == 40
    assert seeder_honest_at(plan([seeder_event(10, "slow", "begin"), seeder_event(20, "slow", "end"),
                                  seeder_event(30, "stale"), seeder_event(70, "honest")])) == 70  # the last heal
    assert seeder_honest_at(plan([seeder_event(10, "poison")])) is None  # never honest again
    assert seeder_honest_at(plan([])) is None  # never malicious
    # poisoned from the start: a mode switch with a duration restores poison, not honest
    assert seeder_honest_at(plan([seeder_event(10, "empty", "begin"), seeder_event(20, "empty", "end")],
                                 start_mode="poison")) is None
    assert seeder_honest_at(plan([seeder_event(30, "honest")], start_mode="poison")) == 30


def series(victim: str, *samples: tuple[float, int, int]) -> VictimSeries:
    return VictimSeries(victim, [OutboundSample(T0 + t, total, attackers) for t, total, attackers in samples])


def test_heal_counts_from_the_seeder_turning_honest_to_the_first_honest_outbound_peer() -> None:
    healed = series("node-4", (20, 8, 8), (50, 10, 10), (56, 0, 0), (62, 3, 1), (70, 8, 0))
    never = series("node-5", (20, 4, 4), (60, 6, 6), (90, 6, 6))
    calm = series("node-3", (20, 8, 0), (60, 8, 0))
    heals = {h.victim: h for h in heal_times([healed, never, calm], T0 + 55)}
    assert heals["node-4"].poisoned and heals["node-4"].heal_seconds == pytest.approx(7.0)  # isolated at 56: not yet
    assert heals["node-5"].poisoned and heals["node-5"].heal_seconds is None
    assert not heals["node-3"].poisoned


def tx(item_id: str, origin: str, seen: dict[str, float | None], kind: str = "tx") -> ItemObservation:
    return ItemObservation(kind, item_id, T0 + 30, origin, {n: (None if d is None else T0 + 30 + d) for n, d in seen.items()},
                           len(HONEST))


ITEMS = [
    tx("a", "node-4", {"node-4": 0.0, "node-5": 0.2}),  # only the victims: censored
    tx("b", "node-5", {"node-5": 0.0, "node-1": 3.0}),  # reached node-1: not censored
    tx("c", "node-4", {"node-4": 0.0}),  # censored
    tx("d", "node-0", {"node-0": 0.0}),  # not a victim's
    tx("blk", "node-0", {"node-0": 0.0, "node-4": 28.5, "node-5": None, "node-1": 0.1}, kind="block"),
]


def test_censored_share_counts_the_victims_transactions_no_other_honest_node_saw() -> None:
    c = censorship(ITEMS, VICTIMS)
    assert (c.censored, c.total, c.share) == (2, 3, pytest.approx(2 / 3))
    assert victim_block_delays(ITEMS, VICTIMS) == [pytest.approx(28.5)]
    assert censorship(ITEMS, ["node-3"]).share is None  # no transaction of theirs


def check(name: str, **params) -> CheckPlan:
    return CheckPlan(check=name, params=params, source="expect[0]")


def run(x: CheckPlan, timeline: list[Event], **fields) -> tuple[CheckVerdict, object, str]:
    [r] = evaluate([x], Observations(started_at=T0, ended_at=T0 + 100, **fields), plan(timeline, x))
    return r.verdict, r.value, r.details


def test_healed_within_passes_fails_and_errors() -> None:
    x = check("healed_within", victim=VICTIMS, within=10.0)
    fast = [series("node-4", (20, 8, 8), (60, 8, 1)), series("node-5", (20, 8, 8), (58, 8, 7))]
    slow = [series("node-4", (20, 8, 8), (60, 8, 1)), series("node-5", (20, 8, 8), (80, 8, 7))]
    stuck = [series("node-4", (20, 8, 8), (60, 8, 1)), series("node-5", (20, 8, 8), (80, 8, 8))]
    assert run(x, POISON_45S, victims=fast)[:2] == (CheckVerdict.PASS, 5.0)
    assert run(x, POISON_45S, victims=slow)[:2] == (CheckVerdict.FAIL, 25.0)
    verdict, value, details = run(x, POISON_45S, victims=stuck)
    assert (verdict, value) == (CheckVerdict.FAIL, None) and "node-5 never" in details
    # errors, never a silent pass: no heal in the timeline, or an attack that never took hold
    assert run(x, [seeder_event(10, "poison")], victims=fast)[0] is CheckVerdict.ERROR
    assert run(x, POISON_45S, victims=[series("node-4", (20, 8, 2), (60, 8, 0))])[0] is CheckVerdict.ERROR


def test_censored_share_checks_both_bounds() -> None:
    assert run(check("censored_share", victim=VICTIMS, at_least=0.6), [], items=ITEMS)[0] is CheckVerdict.PASS
    assert run(check("censored_share", victim=VICTIMS, at_least=0.9), [], items=ITEMS)[0] is CheckVerdict.FAIL
    assert run(check("censored_share", victim=VICTIMS, at_most=0.5), [], items=ITEMS)[0] is CheckVerdict.FAIL
    assert run(check("censored_share", victim=["node-3"], at_most=0.5), [], items=ITEMS)[0] is CheckVerdict.ERROR


@pytest.mark.parametrize("data, says", [
    ({"check": "censored_share", "victim": "node-1"}, "at least one bound"),
    ({"check": "censored_share", "victim": "node-1", "at_least": 0.9, "at_most": 0.5}, "above at_most"),
    ({"check": "censored_share", "victim": "node-1", "at_least": 2}, "less than or equal to 1"),
    ({"check": "healed_within", "victim": "node-1"}, "within"),
    ({"check": "healed_within", "victim": "node-1", "within": "20s", "bogus": 1}, "bogus"),
])
def test_bad_bootstrap_check_params_are_refused(data: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        parse_check(data)


def test_the_controller_publishes_each_heal_once() -> None:
    metrics = Metrics(plan(POISON_45S))
    victims = [series("node-4", (20, 8, 8), (60, 8, 1)), series("node-5", (20, 8, 8), (50, 8, 8))]
    metrics.observe(Observations(started_at=T0, ended_at=T0 + 60, victims=victims))
    victims[1] = series("node-5", (20, 8, 8), (50, 8, 8), (75, 8, 2))
    for _ in range(2):  # a later poll sees node-5 heal; polling again observes nothing twice
        metrics.observe(Observations(started_at=T0, ended_at=T0 + 80, victims=victims))
    text = generate_latest(metrics.registry).decode()
    assert "harness_controller_victims_healed 2.0" in text
    assert "harness_controller_heal_seconds_count 2.0" in text
    assert "harness_controller_heal_seconds_sum 25.0" in text  # 5 s and 20 s
