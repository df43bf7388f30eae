"""One source for the dashboards: the chart's copies equal the generated grafana/dashboards/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chart_dashboards_equal_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    shipped = {p.name: p.read_bytes() for p in (ROOT / "helm" / "harness" / "dashboards").glob("*.json")}
    assert generated, "no generated dashboards"
    assert sorted(shipped) == sorted(generated), "run: cp grafana/dashboards/*.json helm/harness/dashboards/"
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert stale == [], f"stale copies {stale}; run: cp grafana/dashboards/*.json helm/harness/dashboards/"
