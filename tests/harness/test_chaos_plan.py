"""Chaos in the plan (pure): regions and bandwidth assigned by share and selector, reproducibly;
churn expanded into stop/start pairs that never overlap for one node; partition groups resolved;
the fault handlers' cut; the loop-lag verdict and the smallest emulated delay."""

from __future__ import annotations

from collections import Counter

from harness.analysis.figures.timing import block_curve, lag_verdict, smallest_delay
from harness.analysis.model import ItemObservation, LagSample
from harness.controller.faults import cut_for
from harness.plan.planner import plan
from harness.scenario import parse_scenario

SCENARIO = """
name: chaos-plan
seed: 7
duration: 2m
network:
  nodes: 20
  regions:
    assign:
      - {region: oc, nodes: "node-[0-1]"}
      - {region: na, percent: 50}
      - {region: eu}
  bandwidth:
    classes:
      - {percent: 25, up_kbit: 1000, down_kbit: 8000}
faults:
  - {at: 10s, action: partition, duration: 20s, params: {groups: ["node-[0-9]", "node-[10-19]"]}}
  - {at: 10s, action: churn, duration: 60s, target: "node-[15-19]", params: {rate: 0.5, away: 5s, wipe_datadir: true}}
"""


def _plan(seed: int = 7):
    return plan(parse_scenario(SCENARIO), seed)


def test_regions_by_selector_then_share_then_the_rest():
    p = _plan()
    region = {n.name: n.config["regions"]["region"] for n in p.peers() if n.role == "honest"}
    assert region["node-0"] == region["node-1"] == "oc"
    assert Counter(region.values()) == {"oc": 2, "na": 9, "eu": 9}  # 50 % of the 18 not selected
    cfg = p.node("node-5").config["regions"]
    assert cfg["of"][p.node("node-0").address] == "oc" and len(cfg["of"]) == 20
    assert cfg["rtt_ms"]["na"]["eu"] == 131.0 and cfg["jitter"] == 0.1


def test_bandwidth_classes_and_the_unlimited_rest():
    p = _plan()
    caps = [n.config.get("bandwidth") for n in p.peers() if n.role == "honest"]
    assert sum(1 for c in caps if c == {"up_kbit": 1000.0, "down_kbit": 8000.0}) == 5
    assert sum(1 for c in caps if c is None) == 15


def test_same_seed_same_map_other_seed_other_map():
    def regions(p):
        return {n.name: n.config["regions"]["region"] for n in p.peers() if n.role == "honest"}

    assert regions(_plan(7)) == regions(_plan(7))
    assert regions(_plan(7)) != regions(_plan(8))


def test_churn_is_stop_start_pairs_that_never_overlap_per_node():
    p = _plan()
    churn = [e for e in p.timeline if e.source == "faults[1]"]
    assert churn and {e.action for e in churn} == {"stop_node"}
    assert all(e.params == {"wipe_datadir": True} for e in churn)
    by_node: dict[str, list] = {}
    for e in churn:
        assert 10.0 <= e.at <= 70.0 and e.nodes[0] in {f"node-{i}" for i in range(15, 20)}
        by_node.setdefault(e.nodes[0], []).append(e)
    for events in by_node.values():
        phases = [e.phase for e in sorted(events, key=lambda e: (e.at, e.phase != "end"))]
        assert phases == ["begin", "end"] * (len(phases) // 2)  # away, back, away, back ...
    assert len(churn) // 2 > 10  # 0.5/s for 60 s: about 30 departures, fewer while everyone is away


def test_partition_groups_are_resolved_and_cut_each_side():
    p = _plan()
    begin = next(e for e in p.timeline if e.action == "partition" and e.phase == "begin")
    groups = begin.params["groups"]
    assert groups == [[f"node-{i}" for i in range(10)], [f"node-{i}" for i in range(10, 20)]]
    assert cut_for("node-3", groups, False) == sorted(groups[1])
    assert cut_for("node-13", groups, False) == sorted(groups[0])
    assert cut_for("node-13", groups, True) == []  # one way: only the first group is cut off
    assert cut_for("seeder", groups, False) == []


def test_smallest_delay_is_the_closest_region_pair_plus_link_delay():
    p = _plan()
    assert smallest_delay([n.config for n in p.peers() if n.role == "honest"]) == 0.0165  # oc-oc 33 ms / 2
    assert smallest_delay([{"link": {"delay_ms": 0}}]) is None


def _item(kind: str, origin: float, delays: list[float]) -> ItemObservation:
    return ItemObservation(kind=kind, item_id="x", origin_time=origin, origin_node="node-0",
                           first_seen={f"node-{i}": origin + d for i, d in enumerate(delays, 1)},
                           honest_node_count=len(delays) + 1, origin_honest=True)


def test_lag_marks_only_the_figures_whose_window_saw_it():
    blocks = [_item("block", 1000.0, [1, 2, 3, 4])]
    txs = [_item("tx", 5000.0, [0.1, 0.2])]
    lag = [LagSample(1002.0, "w1", 0.001, 0.050, 0.2), LagSample(5001.0, "w1", 0.0005, 0.001, 0.002)]
    v = lag_verdict(lag, blocks + txs, 0.0295)
    assert v.threshold == 0.1 * 0.0295 and v.marked_kinds == ("block",) and v.trusted is False
    assert lag_verdict(lag[1:], blocks + txs, 0.0295).trusted is True
    assert lag_verdict(lag, blocks, None).trusted is None  # no emulated delay: no threshold


def test_block_curve_takes_the_kth_arrival_median():
    items = [_item("block", 0.0, [1, 2, 3, 4, 5, 6, 7, 8, 9]), _item("block", 0.0, [3, 4, 5, 6, 7, 8, 9, 10, 11])]
    # 10 nodes each, the origin counts: 10 % is the origin itself, 50 % the 5th arrival, 90 % the 9th
    assert block_curve(items) == {10: 0.0, 50: 5.0, 90: 9.0}
