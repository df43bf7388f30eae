"""`kind: eclipse` as the planner writes it, and the `eclipsed` / `not_eclipsed` checks on hand-made
observations. The planned identity configs are handed to the attacker runtime's own parser
(AttackConfig, attack.eclipse.EclipseParams), so the two vocabularies cannot drift apart."""

from __future__ import annotations

import ipaddress

from harness.analysis.checks import evaluate
from harness.analysis.figures.eclipse import eclipse_figures, eclipse_share
from harness.analysis.model import CheckVerdict, Observations, OutboundSample, VictimSeries
from harness.backends.node_config import attack_process_config, is_attack_identity
from harness.controller.collector import victims_of
from harness.plan.planner import plan
from harness.scenario import parse_scenario
from harness_node.attack.base import ATTACKS
from harness_node.attack.config import AttackConfig
from harness_node.attack.kinds import load_kinds

ECLIPSE = """\
name: eclipse-plan
duration: 1m
network:
  total: 6
  groups:
    - {name: victims, count: 2, countermeasures: legacy}
    - {name: rest, count: 4}
  time_scale: 0.02
attackers:
  - kind: eclipse
    count: 12
    netgroups: 4
    targets: {group: victims}
    params: {trash: 7, start: 8m, ramp: 4m, hold_inbound: false}
  - {kind: eclipse, name: loners, count: 2, targets: {group: victims}, params: {advertise: own}}
expect:
  - {check: eclipsed, victim: {group: victims}, min_share: 0.5, within: 50s}
  - {check: not_eclipsed, victim: node-2, max_attacker_share: 1.0}
"""


def test_each_identity_is_an_attack_process_identity_with_the_whole_budget_over_its_netgroups() -> None:
    load_kinds()
    result = plan(parse_scenario(ECLIPSE))
    identities = [n for n in result.nodes if n.group == "eclipse"]
    assert len(identities) == 12 and all(is_attack_identity(n) for n in identities)
    budget = [f"{n.address}:{n.p2p_port}" for n in identities]
    assert len({ipaddress.ip_network(f"{n.address}/16", strict=False) for n in identities}) == 4
    victims = {n.name: f"{n.address}:{n.p2p_port}" for n in result.nodes if n.group == "victims"}
    for n in identities:
        attack = n.config["attack"]
        assert attack["kind"] == "eclipse" and attack["targets"] == list(victims.values())
        assert attack["target_names"] == list(victims)
        assert attack["params"]["attacker_addresses"] == budget  # advertise: budget (the default)
        # Core time, as the node-level attacker scales it
        assert (attack["params"]["trash"], attack["params"]["start"], attack["params"]["ramp"]) == (7, 480.0, 240.0)
        assert attack["params"]["hold_inbound"] is False
    loner = result.node("loners-0").config["attack"]["params"]
    assert loner["attacker_addresses"] == []  # advertise: own -> the identity names only itself
    # the attacker runtime takes the planned process config as it is, and builds every identity
    config = AttackConfig.from_dict(attack_process_config(identities, "t" * 32))
    built = [ATTACKS.build(spec, config) for spec in config.attackers]
    assert [b.params.attacker_addresses for b in built] == [budget] * 12


def test_the_victims_of_both_eclipse_checks_are_watched() -> None:
    result = plan(parse_scenario(ECLIPSE))
    assert victims_of(result) == ["node-0", "node-1", "node-2"]


T0 = 1_700_000_000.0


def series(victim: str, *samples: tuple[float, int, int]) -> VictimSeries:
    return VictimSeries(victim, [OutboundSample(T0 + t, total, attackers) for t, total, attackers in samples])


def test_eclipse_share_counts_victims_eclipsed_at_the_end_and_when_the_last_became_so() -> None:
    held = series("a", (1, 8, 2), (10, 8, 8), (20, 8, 8))
    late = series("b", (1, 8, 0), (10, 8, 7), (30, 8, 8), (40, 8, 8))
    lost = series("c", (1, 8, 8), (10, 8, 7))  # eclipsed for a moment, then an honest peer again
    isolated = series("d", (1, 0, 0))  # no outbound peers: isolated, not eclipsed
    share = eclipse_share(eclipse_figures([held, late, lost, isolated], T0, T0 + 60))
    assert (share.victims, share.eclipsed, share.share, share.ever_eclipsed) == (4, 2, 0.5, 3)
    assert share.reached_at == 30.0


def _evaluate(check: dict, victims: list[VictimSeries]):
    result = plan(parse_scenario(ECLIPSE))
    expect = [x for x in result.checks if x.check == check["check"]]
    expect[0] = type(expect[0])(check=check["check"], params={**expect[0].params, **check}, source="expect[0]")
    obs = Observations(started_at=T0, ended_at=T0 + 60, victims=victims)
    [out] = evaluate(expect[:1], obs, result)
    return out


def test_eclipsed_passes_on_the_share_within_the_bound_and_fails_otherwise() -> None:
    both = [series("node-0", (5, 8, 8), (40, 8, 8)), series("node-1", (5, 8, 3), (45, 8, 8))]
    one = [series("node-0", (5, 8, 8), (40, 8, 8)), series("node-1", (5, 8, 3), (45, 8, 7))]
    r = _evaluate({"check": "eclipsed", "min_share": 1.0}, both)
    assert (r.verdict, r.value) == (CheckVerdict.PASS, 1.0) and "reached at 45.0 s" in r.details
    r = _evaluate({"check": "eclipsed", "min_share": 1.0, "within": 40.0}, both)  # reached at 45 s: too late
    assert r.verdict is CheckVerdict.FAIL
    r = _evaluate({"check": "eclipsed", "min_share": 0.5}, one)
    assert (r.verdict, r.value) == (CheckVerdict.PASS, 0.5)
    r = _evaluate({"check": "eclipsed", "min_share": 0.75}, one)
    assert (r.verdict, r.value) == (CheckVerdict.FAIL, 0.5)
    assert _evaluate({"check": "eclipsed"}, []).verdict is CheckVerdict.ERROR  # no samples: never a silent pass


def test_not_eclipsed_bounds_the_share_of_victims_eclipsed_at_the_end() -> None:
    held = [series("node-2", (5, 8, 3), (40, 8, 8))]
    r = _evaluate({"check": "not_eclipsed", "max_attacker_share": 1.0}, held)
    assert r.verdict is CheckVerdict.FAIL and "1 of 1 victims eclipsed at the end" in r.details
    r = _evaluate({"check": "not_eclipsed", "max_attacker_share": 1.0, "max_eclipsed_share": 1.0}, held)
    assert r.verdict is CheckVerdict.PASS
    honest = [series("node-2", (5, 8, 3), (40, 8, 7))]
    r = _evaluate({"check": "not_eclipsed", "max_attacker_share": 1.0}, honest)
    assert (r.verdict, r.value) == (CheckVerdict.PASS, 0.875)
