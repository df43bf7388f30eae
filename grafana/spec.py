"""The dashboards' content as plain data (what each panel asks Prometheus and what to look for);
build.py turns it into Grafana dashboards with grafana-foundation-sdk. Kept apart so the queries can
be read, and checked against the catalogue, without the SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass

from grafana.catalogue import Metric, by_series_name

RATE = "$__rate_interval"  # Grafana fills this in: at least four scrape intervals
PANEL_KINDS = ("timeseries", "stat", "heatmap")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    unit: str  # a Grafana unit id: s, bytes, Bps, percentunit, short, ...
    description: str  # what the panel shows and what to look for during an attack
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


def ts(title: str, unit: str, description: str, *queries: Query) -> Panel:
    return Panel(title, "timeseries", unit, description, queries)


def stat(title: str, unit: str, description: str, *queries: Query) -> Panel:
    return Panel(title, "stat", unit, description, queries)


def heatmap(title: str, unit: str, description: str, expr: str) -> Panel:
    """A heatmap of a histogram's buckets (the `le` label becomes the y axis)."""
    return Panel(title, "heatmap", unit, description, (Query(expr, "{{le}}"),))


# Every dashboard draws the timeline's actions (faults, injections, seeder switches) as annotations,
# from the controller's per-action-kind counter; Grafana runs it as a range query.
FAULTS_ANNOTATION = Query("sum by (action) (increase(harness_controller_timeline_actions_total[1m])) > 0",
                          "{{action}}")


_NAME = re.compile(r"\b(harness_[a-z0-9_]+)\b")


def metrics_in(expr: str) -> set[Metric]:
    """The catalogued metrics a PromQL expression reads (KeyError for an uncatalogued harness_ name)."""
    series = by_series_name()
    return {series[name] for name in _NAME.findall(expr)}
