"""The report directory: report.json, junit.xml, summary.md and the PNG plots, read back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.image import imread

from harness.analysis.model import (
    AttackerStart,
    BanEvent,
    CheckResult,
    CheckVerdict,
    ItemObservation,
    OutboundSample,
    PeerEdge,
    PeerGraph,
    Report,
    ReportInputError,
    VictimSeries,
)
from harness.report.writer import write_report

T0 = 1_700_000_000.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NODES = [f"node-{i}" for i in range(10)]


def check(name: str, verdict: str, value: object = 1.0, details: str = "") -> CheckResult:
    return CheckResult(name, f"description of {name}", value, "<= 5", verdict, "s", details)


def full_report(checks: list[CheckResult]) -> Report:
    items = [
        ItemObservation("tx", f"tx{k}", T0 + k, NODES[k], {n: T0 + k + 0.1 * i for i, n in enumerate(NODES)}, 10)
        for k in range(4)
    ] + [ItemObservation("block", "blk0", T0 + 5, "node-0", {n: T0 + 5 + i for i, n in enumerate(NODES)}, 10)]
    bans = [
        BanEvent(T0 + 20, "node-1", "127.9.0.1:18444", "inv-too-large", True, "attacker-0"),
        BanEvent(T0 + 25, "node-2", "127.9.0.1:18444", "inv-too-large", True, "attacker-0"),
        BanEvent(T0 + 30, "node-3", "127.0.0.5:18444", "headers-unconnecting", False, "node-5"),
    ]
    victims = [VictimSeries("node-4", [OutboundSample(T0 + t, 8, min(8, t // 5)) for t in range(0, 60, 5)])]
    edges = [PeerEdge(NODES[i], NODES[(i + 1) % 10], "outbound") for i in range(10)]
    edges += [PeerEdge("node-4", "attacker-0", "outbound"), PeerEdge("node-4", "node-5", "inbound")]
    roles = {n: "honest" for n in NODES} | {"attacker-0": "attacker", "seeder": "seeder"}
    return Report(
        scenario="spam-peer",
        seed=7,
        plan_digest="sha256:0123abcd",
        backend="local",
        node_count=12,
        started_at=T0,
        ended_at=T0 + 60,
        checks=checks,
        items=items,
        bans=bans,
        attackers=[AttackerStart("attacker-0", T0 + 10, ("127.9.0.1",))],
        victims=victims,
        graph=PeerGraph(edges, roles),
    )


MIXED_CHECKS = [
    check("tx_p90_within_5s", "pass", 1.2),
    check("block_p100_within_5s", "fail", 9.0, details="blk0 reached the last node after 9 s"),
    check("no_honest_bans", "fail", 1, details="node-5 banned by node-3"),
    check("victim_not_eclipsed", "error", None, details="no outbound samples\x00 from <node-4> & co"),
]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report") / "nested" / "dir"
    return out, write_report(out, full_report(MIXED_CHECKS))


def test_every_file_is_written_and_returned(written):
    out, paths = written
    names = {p.name for p in paths}
    pngs = {"propagation.png", "bans.png", "peer_graph.png", "eclipse.png"}
    assert names == {"report.json", "junit.xml", "summary.md"} | pngs
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)


def test_report_json_has_run_identity_every_check_and_the_figures(written):
    out, _ = written
    doc = json.loads((out / "report.json").read_text())
    assert (doc["scenario"], doc["seed"], doc["plan_digest"], doc["backend"], doc["node_count"]) == (
        "spam-peer",
        7,
        "sha256:0123abcd",
        "local",
        12,
    )
    assert doc["started_at_utc"] == "2023-11-14T22:13:20Z" and doc["duration_seconds"] == 60
    assert doc["verdict"] == "error"
    assert doc["counts"] == {"checks": 4, "pass": 1, "fail": 2, "error": 1}
    assert [(c["name"], c["value"], c["bound"], c["verdict"]) for c in doc["checks"]] == [
        (c.name, c.value, c.bound, c.verdict.value) for c in MIXED_CHECKS
    ]
    tx = doc["propagation"]["by_kind"]["tx"]
    assert tx["items"] == 4 and tx["p50"]["median"] == pytest.approx(0.4) and tx["p100"]["max"] == pytest.approx(0.9)
    assert doc["propagation"]["by_kind"]["block"]["p90"]["median"] == 8.0
    assert doc["bans"]["by_reason"] == {"inv-too-large": 2, "headers-unconnecting": 1}
    assert doc["bans"]["time_to_ban"][0]["seconds_to_ban"] == 10.0
    assert [b["banned_node"] for b in doc["bans"]["honest_banned"]] == ["node-5"]
    victim = doc["eclipse"][0]
    assert victim["eclipsed"] and victim["first_eclipsed_at"] == 40.0 and victim["eclipsed_seconds"] == 20.0


def test_junit_xml_counts_match_the_checks(written):
    out, _ = written
    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors"), element.get("skipped")) == (
            "4",
            "2",
            "1",
            "0",
        )
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in MIXED_CHECKS]
    assert {c.get("classname") for c in cases} == {"spam-peer"}
    assert len(suite.findall("testcase/failure")) == 2 and len(suite.findall("testcase/error")) == 1
    failure = cases[1].find("failure")
    assert "9 s" in failure.get("message") and "<= 5 s" in failure.get("message")
    error = cases[3].find("error")
    assert "<node-4> & co" in error.get("message")  # escaped on writing, intact when read back


def test_junit_properties_come_before_the_testcases_and_carry_seed_and_digest(written):
    out, _ = written
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite[0].tag == "properties"  # Jenkins' junit schema requires this order
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["seed"] == "7" and props["plan_digest"] == "sha256:0123abcd"
    assert suite.get("timestamp") == "2023-11-14T22:13:20"


def test_summary_names_the_verdict_every_check_and_the_plots(written):
    out, _ = written
    text = (out / "summary.md").read_text()
    assert "ERROR" in text.splitlines()[2]
    for c in MIXED_CHECKS:
        assert f"| {c.name} |" in text
    assert "| Transactions | 4 |" in text and "| Blocks | 1 |" in text
    assert "| inv-too-large | 2 |" in text
    assert "| attacker-0 | 10.00 s |" in text
    assert "| node-4 | 100% | yes |" in text
    for png in ("propagation.png", "bans.png", "peer_graph.png", "eclipse.png"):
        assert f"]({png})" in text
    assert "\x00" not in text


@pytest.mark.parametrize("name", ["propagation.png", "bans.png", "peer_graph.png", "eclipse.png"])
def test_plots_are_valid_pngs(written, name):
    out, _ = written
    path = out / name
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = imread(path).shape[:2]
    assert height > 100 and width > 100


def test_an_empty_run_still_writes_every_file_with_no_data_plots(tmp_path):
    paths = write_report(tmp_path, Report("empty", 0, "d", "local", 0, T0, T0))
    assert len(paths) == 7
    for path in paths:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC and imread(path).shape[0] > 0
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("tests") == "0" and root.find("testsuite").findall("testcase") == []
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["verdict"] == "pass" and doc["checks"] == []
    assert "No checks were defined" in (tmp_path / "summary.md").read_text()


def test_a_passing_run_has_no_failures_and_a_pass_verdict(tmp_path):
    report = full_report([check("a", "pass"), check("b", "pass")])
    assert report.verdict is CheckVerdict.PASS
    write_report(tmp_path, report)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
    assert "PASS" in (tmp_path / "summary.md").read_text().splitlines()[2]


def test_non_finite_check_values_become_null_in_json(tmp_path):
    write_report(tmp_path, full_report([check("inf", "fail", float("inf"))]))
    assert json.loads((tmp_path / "report.json").read_text())["checks"][0]["value"] is None


def test_the_run_verdict_is_error_over_fail_over_pass():
    assert full_report([check("a", "pass"), check("b", "fail")]).verdict is CheckVerdict.FAIL
    assert full_report([check("a", "error"), check("b", "fail")]).verdict is CheckVerdict.ERROR


def test_bad_report_inputs_are_refused_with_the_field_named():
    with pytest.raises(ReportInputError, match="verdict"):
        check("a", "passed")
    with pytest.raises(ReportInputError, match="repeated"):
        full_report([check("a", "pass"), check("a", "fail")])
    with pytest.raises(ReportInputError, match="ended_at"):
        Report("s", 1, "d", "local", 1, T0, T0 - 1)
    with pytest.raises(ReportInputError, match="direction"):
        PeerEdge("a", "b", "sideways")


def test_a_network_too_large_to_lay_out_is_drawn_as_its_degrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mainnet-scale's 10,000 nodes spent minutes of the report in the spring layout: above
    MAX_LAYOUT_NODES the figure is the distribution of links per node instead, counted right."""
    import random

    from matplotlib.figure import Figure

    from harness.report import plots

    def no_layout(*_a, **_k):
        raise AssertionError("the spring layout ran on a graph too large for it")

    monkeypatch.setattr(plots.nx, "spring_layout", no_layout)
    rng = random.Random(3)
    names = [f"node-{i}" for i in range(plots.MAX_LAYOUT_NODES + 100)]
    edges = [PeerEdge(a, b, "outbound") for a in names for b in rng.sample(names, 8) if b != a]
    out = plots.plot_peer_graph(tmp_path / "peer_graph.png", PeerGraph(edges, {n: "honest" for n in names}))
    assert imread(out).shape[0] > 100

    # the counts: three honest nodes (a dials b and c, b dials c) and an attacker dialling a
    fig = Figure()
    ax = fig.add_subplot()
    plots._plot_degrees(ax, {("a", "b"), ("a", "c"), ("b", "c"), ("x", "a")},
                        {"a": "honest", "b": "honest", "c": "honest", "x": "attacker"}, ["a", "b", "c", "x"])
    heights = [round(p.get_height()) for p in ax.patches]
    bins = len(heights) // 2
    assert heights[:bins] == [1, 1, 1]  # outbound: c 0, b 1, a 2 (x, not honest, is left out)
    assert heights[bins:] == [0, 2, 1]  # inbound: a 1 (from x), b 1, c 2
    assert ax.get_ylabel() == "honest nodes"
