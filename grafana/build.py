"""Turn the dashboard specs (boards.py) into Grafana dashboard JSON with grafana-foundation-sdk's
typed builders: nothing here writes dashboard JSON by hand."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import heatmap as heatmap_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from grafana.spec import FAULTS_ANNOTATION, Board, Panel

# The provisioned datasource (grafana/provisioning/datasources/prometheus.yaml) has this uid, so the
# dashboards find it without a variable.
DATASOURCE_UID = "harness-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["harness"]
WIDTH = {"stat": 6, "timeseries": 12, "heatmap": 12}
HEIGHT = 8


def _target(expr: str, legend: str, ref: str, heat: bool) -> prom_b.Dataquery:
    q = prom_b.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).range().datasource(DATASOURCE)
    return q.format(PromQueryFormat.HEATMAP) if heat else q


def _panel(spec: Panel, panel_id: int) -> Any:
    if spec.kind == "timeseries":
        builder: Any = (ts_b.Panel().fill_opacity(10)
                        .legend(common_b.VizLegendOptions().show_legend(True)
                                .display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.RIGHT)))
    elif spec.kind == "stat":
        builder = (stat_b.Panel().graph_mode(common.BigValueGraphMode.AREA)
                   .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"])))
    elif spec.kind == "heatmap":
        builder = heatmap_b.Panel().calculate(False)
    else:
        raise ValueError(f"panel {spec.title!r}: kind {spec.kind!r} is not one of timeseries, stat, heatmap")
    builder = (builder.id(panel_id).title(spec.title).description(spec.description).datasource(DATASOURCE).unit(spec.unit)
               .span(WIDTH[spec.kind]).height(HEIGHT))
    for i, q in enumerate(spec.queries):
        builder = builder.with_target(_target(q.expr, q.legend, chr(ord("A") + i), spec.kind == "heatmap"))
    return builder


def faults_annotation() -> dash_b.AnnotationQuery:
    return (dash_b.AnnotationQuery().name("Timeline actions").datasource(DATASOURCE).enable(True)
            .icon_color("red").expr(FAULTS_ANNOTATION.expr))


def dashboard(board: Board) -> dict[str, Any]:
    """One board as the JSON object Grafana provisions (plain dict, keys in the SDK's order)."""
    d = (dash_b.Dashboard(board.title).uid(board.uid).description(board.description).tags(TAGS)
         .editable().tooltip(DashboardCursorSync.CROSSHAIR).time("now-30m", "now").refresh("10s")
         .annotation(faults_annotation()))
    for panel_id, spec in enumerate(board.panels, start=1):
        d = d.with_panel(_panel(spec, panel_id))
    return json.loads(json.dumps(d.build(), cls=JSONEncoder))


def render(board: Board) -> str:
    return json.dumps(dashboard(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
