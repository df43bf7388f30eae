"""Spam figures and the spam_banned check on a real plan (the planner on a small scenario) with
hand-made attacker runs and node misbehaviour logs: expected values come from the node's table, the
observed ones from the logs, and the check passes, fails and names the difference where it should."""

from __future__ import annotations

from typing import Any

from harness.analysis.checks import evaluate
from harness.analysis.figures.spam import load_overhead, spam_by_behaviour, spam_runs
from harness.analysis.model import CheckVerdict, NodeLoad, Observations
from harness.plan.planner import plan
from harness.scenario import parse_scenario

T0 = 1_700_000_000.0
SCENARIO = """\
name: s
duration: 1m
network:
  groups:
    - {name: old, count: 1, misbehaviour_policy: ban}
    - {name: new, count: 1, misbehaviour_policy: disconnect}
    - {name: idle, count: 1}
attackers:
  - kind: spam
    count: 2
    targets: {role: honest, nodes: [node-0, node-1]}
    params: {behaviours: [{behaviour: oversized-inv}, {behaviour: garbage}]}
expect:
  - {check: spam_banned, within: 10s}
"""


def _plan() -> Any:
    return plan(parse_scenario(SCENARIO, "s.yaml"))


def _run(behaviour: str, target: str, closed: float | None = None) -> dict[str, Any]:
    return {"behaviour": behaviour, "target": "x", "target_name": target, "started_at": T0, "sent": 5,
            "closed_by_victim_at": closed, "error": None}


def _log(address: str, points: list[int], actions: list[str]) -> list[dict[str, Any]]:
    score, out = 0, []
    for i, (p, a) in enumerate(zip(points, actions)):
        score += p
        out.append({"time": T0 + i + 1, "address": address, "peer_id": 1, "reason": "inv-too-large", "points": p,
                    "score": score, "action": a})
    return out


def test_expected_comes_from_the_targets_policy_and_observed_from_its_log() -> None:
    p = _plan()
    groups = {n.name: n.group for n in p.peers() if n.role == "honest"}
    old, new = sorted((n for n in groups if groups[n] in ("old", "new")), key=lambda n: groups[n] != "old")
    inv, garbage = p.node("spam-0"), p.node("spam-1")
    statuses = {"spam-0": {"detail": {"runs": [_run("oversized-inv", old), _run("oversized-inv", new)]}},
                "spam-1": {"detail": {"runs": [_run("garbage", old, closed=T0 + 0.5), _run("garbage", new)]}}}
    logs = {old: _log(inv.address, [20] * 5, ["none"] * 4 + ["ban"]),
            new: _log(inv.address, [20], ["discourage"])}
    runs = {(r.behaviour, r.target): r for r in spam_runs(p, statuses, logs)}
    a = runs[("oversized-inv", old)]
    assert (a.policy, a.expected_score, a.expected_outcome, a.observed_score, a.observed_outcome) == (
        "ban", 100, "banned", 100, "banned")
    assert a.seconds_to_react == 5.0 and a.as_expected  # the ban came with the 5th message
    b = runs[("oversized-inv", new)]
    assert (b.expected_score, b.expected_outcome, b.observed_outcome, b.as_expected) == (20, "discouraged", "discouraged", True)
    c = runs[("garbage", old)]
    assert (c.expected_outcome, c.observed_outcome, c.seconds_to_react, c.as_expected) == ("disconnected", "disconnected", 0.5, True)
    d = runs[("garbage", new)]  # the victim never closed the link: not what the table says
    assert (d.observed_outcome, d.as_expected) == ("none", False)
    assert garbage.address not in {e["address"] for log in logs.values() for e in log}

    obs = Observations(started_at=T0, ended_at=T0 + 60, spam=list(runs.values()))
    [result] = evaluate(p.checks, obs, p)
    assert result.verdict is CheckVerdict.FAIL and result.value == 5.0
    assert "3 of 4 behaviour runs as the misbehaviour table says" in result.details
    assert f"garbage vs {new} (disconnect): expected 0 pts disconnected, observed 0 pts none" in result.details
    assert "no reaction within 10 s: garbage (disconnect)" in result.details
    summary = {(s.behaviour, s.policy): s for s in spam_by_behaviour(obs.spam)}
    assert summary[("oversized-inv", "ban")].as_expected == 1 and summary[("garbage", "disconnect")].as_expected == 0


def test_a_rule_the_node_does_not_charge_fails_the_check() -> None:
    p = _plan()
    old = next(n.name for n in p.peers() if n.group == "old")
    statuses = {"spam-0": {"detail": {"runs": [_run("oversized-inv", old)]}}}
    [run] = spam_runs(p, statuses, {old: []})
    assert (run.expected_score, run.observed_score, run.observed_outcome) == (100, 0, "none")
    [result] = evaluate(p.checks, Observations(started_at=T0, ended_at=T0 + 60, spam=[run]), p)
    assert result.verdict is CheckVerdict.FAIL and "expected 100 pts banned, observed 0 pts none" in result.details


def test_overhead_is_attacked_over_bystanders_or_none_without_them() -> None:
    loads = [NodeLoad("a", 2.0, 1000, True), NodeLoad("b", 4.0, 3000, True), NodeLoad("c", 1.0, 100, False)]
    o = load_overhead(loads)
    assert (o.cpu_ratio, o.bytes_ratio) == (3.0, 20.0)
    assert load_overhead(loads[:2]).cpu_ratio is None


MIXED = """\
name: m
duration: 1m
network: {nodes: 2, bitcoind: 1, magic: dab5bffa}
attackers:
  - {kind: spam, name: real, count: 1, targets: {role: bitcoind}, params: {behaviours: [{behaviour: oversized-inv}]}}
  - {kind: spam, name: light, count: 1, targets: {role: honest, nodes: [node-0]}, params: {behaviours: [{behaviour: oversized-inv}]}}
expect:
  - {check: spam_banned, within: 10s}
"""


def test_a_bitcoind_target_is_a_figure_beside_the_light_nodes_not_a_verdict() -> None:
    p = plan(parse_scenario(MIXED, "m.yaml"))
    real, light = p.node("real-0"), p.node("light-0")
    statuses = {"real-0": {"detail": {"runs": [_run("oversized-inv", "bitcoind-0")]}},
                "light-0": {"detail": {"runs": [_run("oversized-inv", "node-0")]}}}
    # bitcoind-0's log as its supervisor serves it: 2 points, then the spammer closed the link itself
    logs = {"bitcoind-0": _log(real.address, [1, 1], ["none", "none"]),
            "node-0": _log(light.address, [20] * 5, ["none"] * 4 + ["ban"])}
    runs = {r.target: r for r in spam_runs(p, statuses, logs)}
    assert (runs["bitcoind-0"].target_kind, runs["node-0"].target_kind) == ("bitcoind", "light")
    assert (runs["bitcoind-0"].expected_outcome, runs["bitcoind-0"].observed_score, runs["bitcoind-0"].observed_outcome) == (
        "banned", 2, "none")
    rows = {(s.behaviour, s.target_kind): s for s in spam_by_behaviour(list(runs.values()))}
    assert rows[("oversized-inv", "bitcoind")].as_expected == 0 and rows[("oversized-inv", "light")].as_expected == 1
    [result] = evaluate(p.checks, Observations(started_at=T0, ended_at=T0 + 60, spam=list(runs.values())), p)
    assert result.verdict is CheckVerdict.PASS and "1 of 1 behaviour runs" in result.details
