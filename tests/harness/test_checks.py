"""Check evaluation on hand-made observations: each check passes, fails and errors where it should."""

from __future__ import annotations

from harness.analysis.checks import CHECKS, evaluate
from harness.analysis.model import Observations
from harness.plan.model import CheckPlan, NodePlan, Plan
from harness.analysis.model import (
    AttackerStart,
    BanEvent,
    CheckVerdict,
    ItemObservation,
    OutboundSample,
    VictimSeries,
)
from harness.scenario.checks import CHECKS as SCENARIO_CHECKS

T0 = 1_700_000_000.0
HONEST = [f"node-{i}" for i in range(10)]


def node(name: str, role: str, group: str, address: str) -> NodePlan:
    return NodePlan(name=name, role=role, group=group, address=address, p2p_port=18444, control_port=18445, config={})


def check_plan(check: str, params: dict) -> CheckPlan:
    return CheckPlan(check=check, params=params, source="expect[0]")


def plan(*expect: CheckPlan) -> Plan:
    nodes = [node(n, "honest", "", f"127.1.0.{i + 1}") for i, n in enumerate(HONEST)]
    nodes += [node(f"spam-{i}", "attacker", "spam", f"127.100.0.{i + 1}") for i in range(2)]
    return Plan(name="t", seed=1, duration=60.0, allocator="loopback", nodes=nodes, timeline=[], checks=list(expect),
                allowlist=[], scenario={})


def tx(item_id: str, delays: list[float | None], kind: str = "tx") -> ItemObservation:
    """Origin node-0 at T0; node-i first saw it delays[i] seconds later (None: never)."""
    return ItemObservation(kind, item_id, T0, "node-0",
                           {n: (None if d is None else T0 + d) for n, d in zip(HONEST, delays)}, len(HONEST))


def obs(**fields) -> Observations:
    return Observations(started_at=T0, ended_at=T0 + 60, **fields)


def verdicts(expect: list[CheckPlan], o: Observations) -> list[tuple[str, CheckVerdict]]:
    return [(r.name, r.verdict) for r in evaluate(expect, o, plan(*expect))]


def test_every_scenario_check_has_an_evaluator() -> None:
    assert set(SCENARIO_CHECKS.names()) <= set(CHECKS)


def test_tx_propagation_is_the_slowest_item_to_reach_the_quantile() -> None:
    fast = tx("aa", [0, 1, 1, 1, 1, 1, 1, 1, 1, 9])  # 9th arrival at 1 s
    slow = tx("bb", [0, 1, 2, 2, 2, 2, 2, 2, 4, 9])  # 9th arrival at 4 s
    x = check_plan("tx_propagation", {"quantile": 90, "below": 5.0})
    [result] = evaluate([x], obs(items=[fast, slow]), plan(x))
    assert (result.verdict, result.value, result.bound) == (CheckVerdict.PASS, 4.0, "<= 5")
    tight = check_plan("tx_propagation", {"quantile": 90, "below": 3.0})
    assert verdicts([tight], obs(items=[fast, slow])) == [("tx_propagation", CheckVerdict.FAIL)]


def test_an_item_that_never_reaches_the_quantile_fails_with_no_value() -> None:
    stalled = tx("cc", [0, 1, 1, 1, 1, None, None, None, None, None])
    x = check_plan("tx_propagation", {"quantile": 90, "below": 60.0})
    [result] = evaluate([x], obs(items=[stalled]), plan(x))
    assert result.verdict is CheckVerdict.FAIL and result.value is None and "never reached 90%" in result.details


def test_propagation_with_nothing_injected_is_an_error_not_a_pass() -> None:
    x = check_plan("block_propagation", {"quantile": 50, "below": 1.0})
    [result] = evaluate([x], obs(items=[tx("aa", [0] * 10)]), plan(x))  # a tx, but no block
    assert result.verdict is CheckVerdict.ERROR and "no block was injected" in result.details


def test_spam_banned_needs_every_attacker_banned_within_the_bound() -> None:
    attackers = [AttackerStart("spam-0", T0, ("127.100.0.1",)), AttackerStart("spam-1", T0, ("127.100.0.2",))]
    ban0 = BanEvent(T0 + 3, "node-1", "127.100.0.1:40000", "inv-too-large", True, "spam-0")
    ban1 = BanEvent(T0 + 8, "node-2", "127.100.0.2", "inv-too-large", True, "spam-1")
    x = check_plan("spam_banned", {"within": 10.0, "attackers": ["spam-0", "spam-1"]})
    [ok] = evaluate([x], obs(attackers=attackers, bans=[ban0, ban1]), plan(x))
    assert (ok.verdict, ok.value) == (CheckVerdict.PASS, 8.0)
    [late] = evaluate([x], obs(attackers=attackers, bans=[ban0]), plan(x))
    assert late.verdict is CheckVerdict.FAIL and "not in time: spam-1" in late.details


def test_spam_banned_selector_mapping_is_resolved_against_the_plan() -> None:
    attackers = [AttackerStart("spam-0", T0, ("127.100.0.1",)), AttackerStart("spam-1", T0, ("127.100.0.2",))]
    bans = [BanEvent(T0 + 1, "node-1", "127.100.0.1", "r", True, "spam-0")]
    x = check_plan("spam_banned", {"within": 5.0, "attackers": {"nodes": ["spam-[0-0]"]}})
    assert verdicts([x], obs(attackers=attackers, bans=bans)) == [("spam_banned", CheckVerdict.PASS)]


def test_no_honest_banned_counts_false_positives() -> None:
    x = check_plan("no_honest_banned", {})
    good = BanEvent(T0 + 1, "node-1", "127.100.0.1", "r", True, "spam-0")
    wrong = BanEvent(T0 + 2, "node-1", "127.1.0.3", "headers-too-large", False, "node-2")
    assert verdicts([x], obs(bans=[good])) == [("no_honest_banned", CheckVerdict.PASS)]
    [result] = evaluate([x], obs(bans=[good, wrong]), plan(x))
    assert (result.verdict, result.value) == (CheckVerdict.FAIL, 1) and "node-1 banned node-2" in result.details


def test_not_eclipsed_fails_when_attackers_hold_more_than_the_share() -> None:
    x = check_plan("not_eclipsed", {"victim": ["node-1"], "max_attacker_share": 0.5})
    calm = VictimSeries("node-1", [OutboundSample(T0 + 1, 8, 2), OutboundSample(T0 + 2, 8, 4)])
    taken = VictimSeries("node-1", [OutboundSample(T0 + 1, 8, 2), OutboundSample(T0 + 2, 8, 6)])
    assert verdicts([x], obs(victims=[calm])) == [("not_eclipsed", CheckVerdict.PASS)]
    [result] = evaluate([x], obs(victims=[taken]), plan(x))
    assert (result.verdict, result.value) == (CheckVerdict.FAIL, 0.75)
    assert verdicts([x], obs()) == [("not_eclipsed", CheckVerdict.ERROR)]  # no samples of the victim


def test_all_connected_needs_min_outbound_at_every_honest_node() -> None:
    x = check_plan("all_connected", {"min_outbound": 2})
    counts = {n: 8 for n in HONEST}
    assert verdicts([x], obs(outbound_at_end=counts)) == [("all_connected", CheckVerdict.PASS)]
    [result] = evaluate([x], obs(outbound_at_end={**counts, "node-4": 1}, unreachable=["node-7"]), plan(x))
    assert (result.verdict, result.value) == (CheckVerdict.FAIL, 1)
    assert "node-4" in result.details and "unreachable at the end: node-7" in result.details


def test_repeated_checks_get_unique_names_and_unknown_checks_are_errors() -> None:
    items = [tx("aa", [0] * 10)]
    expect = [check_plan("tx_propagation", {"quantile": 50, "below": 1.0}),
              check_plan("tx_propagation", {"quantile": 100, "below": 1.0}),
              check_plan("made_up", {})]
    assert verdicts(expect, obs(items=items)) == [
        ("tx_propagation", CheckVerdict.PASS), ("tx_propagation#2", CheckVerdict.PASS), ("made_up", CheckVerdict.ERROR)]


def _spy_scores(recall_flood: float, recall_dandelion: float) -> list:
    from harness.analysis.privacy import spy_scores

    # node-0..4 flood, node-5..9 dandelion; 10 txs each; the spy names the sender of the first
    # `recall * 10` of each policy's txs, a node of the other policy for the rest
    policy_of = {n: ("flood" if i < 5 else "dandelion") for i, n in enumerate(HONEST)}
    truth, views = {}, {}
    for policy, recall, senders, other in (("flood", recall_flood, HONEST[:5], "node-9"),
                                           ("dandelion", recall_dandelion, HONEST[5:], "node-0")):
        for k in range(10):
            truth[f"{policy}{k}"] = senders[k % 5]
            views[f"{policy}{k}"] = {senders[k % 5] if k < round(recall * 10) else other: 1.0}
    return spy_scores(views, truth, policy_of, [], spy_nodes=1)  # p = 1/11


def test_spy_recall_within_compares_the_policys_recall_with_the_spy_share() -> None:
    scores = _spy_scores(recall_flood=1.0, recall_dandelion=0.1)
    near = check_plan("spy_recall_within", {"tolerance": 0.05, "relay_policy": "dandelion"})
    [result] = evaluate([near], obs(privacy=scores), plan(near))
    assert (result.verdict, result.value, result.bound) == (CheckVerdict.PASS, 0.1, "0.091 ± 0.05")
    flood = check_plan("spy_recall_within", {"tolerance": 0.05, "relay_policy": "flood"})
    everyone = check_plan("spy_recall_within", {"tolerance": 0.05})  # default: all honest senders (0.55)
    assert verdicts([flood, everyone], obs(privacy=scores)) == [
        ("spy_recall_within", CheckVerdict.FAIL), ("spy_recall_within#2", CheckVerdict.FAIL)]


def test_spy_precision_at_most_and_its_errors_without_a_spy() -> None:
    scores = _spy_scores(recall_flood=1.0, recall_dandelion=0.2)
    low = check_plan("spy_precision_at_most", {"at_most": 0.5, "relay_policy": "dandelion", "estimator": "timing"})
    high = check_plan("spy_precision_at_most", {"at_most": 0.5, "relay_policy": "flood"})
    assert verdicts([low, high], obs(privacy=scores)) == [
        ("spy_precision_at_most", CheckVerdict.PASS), ("spy_precision_at_most#2", CheckVerdict.FAIL)]
    [none] = evaluate([high], obs(), plan(high))
    assert none.verdict is CheckVerdict.ERROR and "no spy scores" in none.details
    unknown = check_plan("spy_precision_at_most", {"at_most": 0.5, "relay_policy": "bogus"})
    [missing] = evaluate([unknown], obs(privacy=scores), plan(unknown))
    assert missing.verdict is CheckVerdict.ERROR and "'bogus'" in missing.details
