"""The spy's source estimators and their precision/recall (harness/analysis/privacy.py): pure
functions, checked on small graphs whose answers are worked out by hand."""

from __future__ import annotations

import random

import pytest

from harness.analysis.privacy import evaluate, first_spy, hop_distances, score, timing_estimate

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


def test_spy_scenario_plans_dandelion_groups_and_typed_spy_params():
    from pathlib import Path

    from harness.plan.planner import plan
    from harness.scenario.loader import load_scenario

    root = Path(__file__).resolve().parents[2]
    scenario = load_scenario(root / "scenarios" / "spy.yaml")
    planned = plan(scenario, seed=scenario.seed)
    honest = [n for n in planned.nodes if n.role == "honest"]
    by_policy: dict[str, int] = {}
    for n in honest:
        by_policy[n.config["relay_policy"]] = by_policy.get(n.config["relay_policy"], 0) + 1
        assert n.config["dandelion"] == {"fluff_probability": 0.1, "stem_relays": 2}
    assert by_policy == {"flood": 34, "diffusion": 34, "dandelion": 34}
    assert scenario.attackers[0].params.connections == 1


def test_spy_params_refuse_unknown_keys_and_out_of_range_values():
    import pydantic

    from harness.scenario.attackers import SpyParams

    with pytest.raises(pydantic.ValidationError):
        SpyParams.model_validate({"connections": 9})
    with pytest.raises(pydantic.ValidationError):
        SpyParams.model_validate({"conections": 1})
