"""The spy's source estimators and their precision/recall (harness/analysis/privacy.py): pure
functions, checked on small graphs whose answers are worked out by hand."""

from __future__ import annotations

import random

import pytest

from harness.analysis.privacy import (
    evaluate, first_spy, hop_distances, merge_views, policy_runs, score, spy_scores, timing_estimate,
)

LINE = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "f")]
NODES = ["a", "b", "c", "d", "e", "f"]


def test_first_spy_names_the_earliest_announcer_and_breaks_ties_by_name():
    assert first_spy({"c": 1.0, "b": 0.5, "d": 0.9}) == "b"
    assert first_spy({"c": 1.0, "b": 1.0}) == "b"
    assert first_spy({}) is None


def test_hop_distances_on_a_line_and_a_disconnected_node():
    d = hop_distances(LINE, NODES + ["z"])
    assert d["a"]["f"] == 5 and d["c"]["a"] == 2 and "z" not in d["a"] and d["z"] == {"z": 0}


def test_timing_sees_through_a_late_source_that_first_spy_misses():
    # the source c announced late (a long Poisson wait to the spy) but its neighbours b and d, then a
    # and e, announced in the order of their distance from c: first-spy blames b, timing finds c
    view = {"b": 1.0, "d": 1.05, "a": 2.0, "e": 2.02, "f": 3.0, "c": 1.6}
    distances = hop_distances(LINE, NODES)
    assert first_spy(view) == "b"
    assert timing_estimate(view, distances, NODES) == "c"


def test_timing_falls_back_to_first_spy_with_fewer_than_three_announcers():
    distances = hop_distances(LINE, NODES)
    assert timing_estimate({"e": 2.0, "f": 1.0}, distances, NODES) == "f"
    assert timing_estimate({}, distances, NODES) is None


def test_precision_and_recall_per_node_and_overall():
    truth = {"t1": "a", "t2": "a", "t3": "b", "t4": "c"}
    guesses = {"t1": "a", "t2": "b", "t3": "b", "t4": None}  # t4 unseen by the spy
    s = score("first-spy", guesses, truth, ["a", "b", "c"])
    assert (s.transactions, s.guessed, s.correct) == (4, 3, 2)
    assert s.recall == pytest.approx(0.5)
    assert s.per_node["a"].recall == pytest.approx(0.5) and s.per_node["a"].precision == pytest.approx(1.0)
    assert s.per_node["b"].recall == pytest.approx(1.0) and s.per_node["b"].precision == pytest.approx(0.5)
    assert s.per_node["c"].recall == pytest.approx(0.0) and s.per_node["c"].precision == 0.0
    assert s.precision == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # mean over the senders
    assert s.precision_micro == pytest.approx(2 / 3)
    assert s.to_dict()["per_node"]["b"] == {"sent": 1, "named": 2, "correct": 1, "precision": 0.5, "recall": 1.0}


def test_a_spy_that_learns_nothing_scores_near_chance():
    # announcements in random order, independent of the source: both estimators at about 1/n
    rng = random.Random(4)
    nodes = [f"n{i}" for i in range(20)]
    edges = [(nodes[i], nodes[(i + 1) % 20]) for i in range(20)]
    truth = {f"t{k}": nodes[k % 20] for k in range(400)}
    views = {t: {n: rng.random() for n in nodes} for t in truth}
    scores = evaluate(views, truth, nodes, edges)
    for s in scores.values():
        assert s.recall < 0.12, s.to_dict()


def test_a_spy_facing_flooding_on_a_ring_finds_every_source():
    # flooding with equal hop delays plus small jitter: each node announces at its distance
    rng = random.Random(5)
    nodes = [f"n{i}" for i in range(12)]
    edges = [(nodes[i], nodes[(i + 1) % 12]) for i in range(12)]
    distances = hop_distances(edges, nodes)
    truth = {f"t{k}": nodes[k % 12] for k in range(60)}
    views = {t: {n: distances[src][n] * 0.1 + rng.uniform(0, 0.01) for n in nodes} for t, src in truth.items()}
    scores = evaluate(views, truth, nodes, edges)
    assert scores["first-spy"].recall == 1.0 and scores["first-spy"].precision == 1.0
    assert scores["timing"].recall == 1.0


def test_spy_scenario_plans_one_policy_a_short_epoch_and_one_supernode():
    from pathlib import Path

    from harness.plan.planner import plan
    from harness.scenario.loader import load_scenario

    root = Path(__file__).resolve().parents[2]
    scenario = load_scenario(root / "scenarios" / "spy.yaml")
    planned = plan(scenario, seed=scenario.seed)
    honest = [n for n in planned.nodes if n.role == "honest"]
    assert len(honest) == 100 and {n.config["relay_policy"] for n in honest} == {"dandelion"}
    for n in honest:
        assert n.config["dandelion"] == {"fluff_probability": 0.1, "stem_relays": 2}  # the node's vocabulary
        assert n.config["timers"]["dandelion_epoch"] == pytest.approx(1.0)  # 10 s Core time x 0.1
        assert n.config["timers"]["dandelion_embargo"] == pytest.approx(6.0)  # 60 s Core time x 0.1
    spies = [n for n in planned.nodes if n.role == "attacker"]
    assert len(spies) == 11
    # identity 0 dials every honest node once; the others only listen (the spy's inbound-slot budget)
    links = {n.name: n.config["attack"]["params"]["connections"] for n in spies}
    assert links == {f"spy-{k}": (1 if k == 0 else 0) for k in range(11)}
    assert all(len(n.config["attack"]["targets"]) == 100 and n.config["attack"]["params"]["listen"] for n in spies)


def test_unchanged_epoch_and_embargo_leave_the_node_to_scale_bip156s_values():
    from harness.plan.planner import plan
    from harness.scenario.loader import validate_scenario

    scenario = validate_scenario({"name": "d", "duration": "30s",
                                  "network": {"nodes": 3, "relay_policy": "dandelion", "time_scale": 0.1}})
    honest = [n for n in plan(scenario, seed=1).nodes if n.role == "honest"]
    assert honest and all(set(n.config["timers"]) == {"bantime"} for n in honest)


def test_merge_views_keeps_each_announcers_earliest_report():
    merged = merge_views([{"t1": {"a": 2.0, "b": 3.0}}, {"t1": {"a": 1.5}, "t2": {"c": 4.0}}])
    assert merged == {"t1": {"a": 1.5, "b": 3.0}, "t2": {"c": 4.0}}


def test_spy_scores_per_sender_policy_keep_every_honest_node_a_candidate():
    # a and b flood (the spy hears them first), c and d run dandelion (the spy first hears a neighbour)
    policy_of = {"a": "flood", "b": "flood", "c": "dandelion", "d": "dandelion"}
    truth = {"t1": "a", "t2": "b", "t3": "c", "t4": "d"}
    views = {"t1": {"a": 1.0, "b": 1.1}, "t2": {"b": 1.0, "a": 1.2}, "t3": {"a": 1.0, "c": 1.3}, "t4": {"d": 1.0}}
    scores = {(s.estimator, s.relay_policy): s for s in spy_scores(views, truth, policy_of, [], spy_nodes=1)}
    assert {p for _, p in scores} == {"all", "flood", "dandelion"}
    assert scores["first-spy", "all"].recall == 0.75 and scores["first-spy", "all"].transactions == 4
    flood, dandelion = scores["first-spy", "flood"], scores["first-spy", "dandelion"]
    # each policy's figures count its senders' transactions only (naming a for t3 is a dandelion miss)
    assert flood.recall == 1.0 and flood.precision == 1.0
    assert dandelion.recall == 0.5 and dandelion.per_node["c"]["correct"] == 0 and dandelion.per_node["a"]["named"] == 1
    assert dandelion.precision == pytest.approx((0.0 + 1.0) / 2)  # c never named, d always right
    # p is the network's: the spy's identities over all honest nodes and them
    assert dandelion.spy_share == pytest.approx(1 / 5) and dandelion.honest_nodes == 4 and dandelion.spy_nodes == 1
    one = spy_scores(views, truth, {n: "dandelion" for n in policy_of}, [], spy_nodes=1)
    assert {s.relay_policy for s in one} == {"dandelion"} and len(one) == 2  # one policy: its own label


def test_policy_runs_pair_each_policys_scores_with_its_senders_propagation():
    from harness.analysis.model import ItemObservation

    policy_of = {"a": "flood", "b": "dandelion"}
    truth = {"t1": "a", "t2": "b"}
    scores = spy_scores({"t1": {"a": 1.0}, "t2": {"a": 1.0}}, truth, policy_of, [], spy_nodes=1)
    items = [ItemObservation("tx", "t1", 0.0, "a", {"a": 0.0, "b": 1.0}, 2),
             ItemObservation("tx", "t2", 0.0, "b", {"a": 5.0, "b": 0.0}, 2)]
    runs = {r.relay_policy: r for r in policy_runs(scores, items, seed=3)}
    assert runs["flood"].propagation.p100.median == 1.0 and runs["dandelion"].propagation.p100.median == 5.0
    assert runs["all"].propagation.items == 2 and runs["flood"].scores["first-spy"].recall == 1.0
    assert runs["flood"].spy_share == pytest.approx(1 / 3)  # 1 spy, 2 honest nodes


def test_spy_params_refuse_unknown_keys_and_out_of_range_values():
    import pydantic

    from harness.scenario.attackers import SpyParams

    with pytest.raises(pydantic.ValidationError):
        SpyParams.model_validate({"connections": 9})
    with pytest.raises(pydantic.ValidationError):
        SpyParams.model_validate({"conections": 1})
