"""The generated observability files are committed as generated, and the catalogue and dashboards
follow the rules they claim (no Prometheus needed: the live proof is test_dashboards_live.py)."""

from __future__ import annotations

import json
import re

import yaml

from grafana import generate
from grafana.boards import BOARDS
from grafana.build import DATASOURCE_UID
from grafana.catalogue import ALL, COMPONENTS, TYPES, metric
from grafana.spec import FAULTS_ANNOTATION, PANEL_KINDS, metrics_in
from grafana.verify import queries

BASE_UNITS = {"seconds", "bytes", "ratio"}
NOT_BASE = re.compile(r"_(milliseconds|ms|minutes|hours|kilobytes|kb|mb|percent)(_|$)")


def test_committed_files_equal_fresh_generation() -> None:
    assert generate.stale() == [], "run `python -m grafana.generate` and commit the result"


def test_generate_writes_every_file(tmp_path) -> None:
    written = generate.write(tmp_path)
    assert {p.name for p in written} >= {"overview.json", "propagation.json", "spam-bans.json", "eclipse.json",
                                         "bootstrap.json", "privacy.json", "chaos.json", "metrics.md"}
    assert generate.stale(tmp_path) == []
    (tmp_path / "grafana/dashboards/chaos.json").write_text("{}")
    assert [p.name for p in generate.stale(tmp_path)] == ["chaos.json"]


def test_catalogue_follows_prometheus_naming() -> None:
    for m in ALL:
        assert m.type in TYPES and m.component in COMPONENTS, m.name
        assert m.help.endswith("."), m.name
        if m.replaced_by is not None:  # exported today against the rules, with its planned replacement
            assert not m.planned and metric(m.replaced_by).planned, m.name
            continue
        assert m.name.startswith(f"harness_{m.component}_"), m.name
        assert m.name.endswith("_total") == (m.type == "counter"), f"{m.name}: `_total` iff counter"
        assert not NOT_BASE.search(m.name), f"{m.name}: use base units"
        if m.unit in BASE_UNITS and m.type != "counter":
            assert m.name.endswith(f"_{m.unit}"), f"{m.name}: a {m.unit} metric ends in _{m.unit}"
        assert not {"le", "quantile"} & {lab.name for lab in m.labels}, f"{m.name}: le/quantile are reserved"
        for lab in m.labels:
            assert lab.values or lab.bound, f"{m.name}{{{lab.name}}}: say what bounds it"
    assert len({m.name for m in ALL}) == len(ALL)


def test_every_panel_charts_catalogued_metrics_and_says_what_to_look_for() -> None:
    uids = [b.uid for b in BOARDS]
    assert len(uids) == len(set(uids)) == 7
    for board in BOARDS:
        titles = [p.title for p in board.panels]
        assert len(titles) == len(set(titles)), f"{board.uid}: duplicate panel titles"
        for panel in board.panels:
            assert panel.kind in PANEL_KINDS
            assert len(panel.description) > 40, f"{board.uid} / {panel.title}: describe what to look for"
            assert panel.queries
            for q in panel.queries:
                assert metrics_in(q.expr), f"{panel.title}: {q.expr} reads no catalogued metric"


def test_every_dashboard_draws_the_timeline_as_annotations() -> None:
    counter = metric("harness_controller_timeline_actions_total")
    assert counter in metrics_in(FAULTS_ANNOTATION.expr) and counter.type == "counter"
    annotated = {q.dashboard for q in queries() if q.annotation and q.expr == FAULTS_ANNOTATION.expr}
    assert annotated == {b.uid for b in BOARDS}


def test_dashboards_use_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load((generate.ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert [d["uid"] for d in datasources["datasources"]] == [DATASOURCE_UID]
    providers = yaml.safe_load((generate.ROOT / "grafana/provisioning/dashboards/harness.yaml").read_text())
    assert providers["providers"][0]["type"] == "file"
    for path in sorted((generate.ROOT / "grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        refs = [p["datasource"] for p in board["panels"]] + [a["datasource"] for a in board["annotations"]["list"]]
        assert all(r == {"type": "prometheus", "uid": DATASOURCE_UID} for r in refs), path.name


def test_docs_list_every_metric() -> None:
    text = (generate.ROOT / "docs/metrics.md").read_text()
    for m in ALL:
        assert f"`{m.name}`" in text
