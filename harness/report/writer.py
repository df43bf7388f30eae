"""Write a run's report directory: report.json, junit.xml, summary.md and the PNG plots."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.analysis.figures import ReportFigures, compute_figures
from harness.analysis.figures.eclipse import eclipse_share
from harness.report import plots
from harness.report.junit import write_junit
from harness.report.privacy import plot_privacy, privacy_section
from harness.analysis.model import CheckVerdict, Report
from harness.analysis.privacy import policy_runs
from harness.report.summary import render_summary

REPORT_FORMAT_VERSION = 1  # bump when report.json changes incompatibly
REPORT_JSON = "report.json"
JUNIT_XML = "junit.xml"
SUMMARY_MD = "summary.md"
# plot title -> file name; the order is the order in summary.md
PLOT_FILES = {
    "Propagation curves": "propagation.png",
    "Bans over time": "bans.png",
    "Peer graph": "peer_graph.png",
    "Eclipse share": "eclipse.png",
}
PRIVACY_PLOT = ("Privacy against latency", "privacy.png")  # only in runs with a spy


def _jsonable(value: Any) -> Any:
    """Plain JSON data from dataclasses, enums, mappings and sequences; NaN and infinities become null
    (they are not JSON, and a reader would choke on them)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def report_document(report: Report, figures: ReportFigures) -> dict[str, Any]:
    """The content of report.json."""
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "scenario": report.scenario,
        "seed": report.seed,
        "plan_digest": report.plan_digest,
        "backend": report.backend,
        "node_count": report.node_count,
        "started_at": report.started_at,
        "ended_at": report.ended_at,
        "started_at_utc": _iso(report.started_at),
        "ended_at_utc": _iso(report.ended_at),
        "duration_seconds": report.duration,
        "verdict": report.verdict.value,
        "counts": {
            "checks": len(report.checks),
            **{verdict.value: report.count(verdict) for verdict in CheckVerdict},
        },
        "checks": _jsonable(list(report.checks)),
        "propagation": {"items": _jsonable(figures.items), "by_kind": _jsonable(figures.by_kind)},
        "bans": {
            "total": len(report.bans),
            "by_reason": figures.bans_by_reason,
            "series": _jsonable(figures.bans_series),
            "time_to_ban": _jsonable(figures.time_to_ban),
            "honest_banned": _jsonable(figures.honest_banned),
        },
        "eclipse": _jsonable(figures.eclipse),
        # the eclipsed / not_eclipsed checks' figure: victims eclipsed at the end, and when
        "eclipse_share": _jsonable(eclipse_share(figures.eclipse)),
        "timing": {**_jsonable(figures.lag), "trusted": figures.lag.trusted,
                   "block_curve": {str(k): v for k, v in figures.block_curve.items()}},
        "bitcoind": bitcoind_members(report),
        "captures": {check: dict(victims) for check, victims in report.captures.items()},
        "spam": {
            # each behaviour run: the misbehaviour table's score and outcome next to the node's
            "runs": [{**_jsonable(r), "seconds_to_react": r.seconds_to_react, "as_expected": r.as_expected}
                     for r in report.spam],
            "by_behaviour": _jsonable(figures.spam_by_behaviour),
            "load": {"overhead": _jsonable(figures.load_overhead), "nodes": _jsonable(list(report.load))},
        },
        # the spy's source estimators per relay policy (harness/analysis/privacy.py); [] without a spy
        "privacy": _jsonable(list(report.privacy)),
        "plots": {**PLOT_FILES, **(dict([PRIVACY_PLOT]) if report.privacy else {})},
    }


def bitcoind_members(report: Report) -> dict[str, Any]:
    """Per real bitcoind member: its peers at the end (its getpeerinfo) and when each injected item
    reached it (seconds after injection; None: never), beside the light nodes' figures."""
    names = sorted(n for n, role in report.graph.roles.items() if role == "bitcoind")
    return {name: {
        "peers": [{"peer": e.b, "direction": e.direction} for e in report.graph.edges if e.a == name],
        "propagation": [{"kind": i.kind, "item_id": i.item_id, "origin_node": i.origin_node,
                         "delay_s": None if i.members_seen.get(name) is None else max(0.0, i.members_seen[name] - i.origin_time)}
                        for i in report.items if name in i.members_seen],
    } for name in names}


def write_report(out_dir: Path | str, report: Report) -> list[Path]:
    """Write report.json, junit.xml, summary.md and the PNG plots into ``out_dir`` (created if
    missing, files overwritten). Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = compute_figures(report)

    json_path = out / REPORT_JSON
    document = report_document(report, figures)
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    junit_path = write_junit(out / JUNIT_XML, report)

    plot_paths = [
        plots.plot_propagation(out / PLOT_FILES["Propagation curves"], report.items),
        plots.plot_bans(out / PLOT_FILES["Bans over time"], figures.bans_series, report.duration),
        plots.plot_peer_graph(out / PLOT_FILES["Peer graph"], report.graph),
        plots.plot_eclipse(out / PLOT_FILES["Eclipse share"], figures.eclipse, report.duration),
    ]

    plot_files = dict(PLOT_FILES)
    if report.privacy:
        title, name = PRIVACY_PLOT
        plot_files[title] = name
        plot_paths.append(plot_privacy(out / name, policy_runs(report.privacy, report.items, report.seed)))

    summary_path = out / SUMMARY_MD
    summary_path.write_text(render_summary(report, figures, plot_files, privacy_section(report)), encoding="utf-8")
    return [json_path, junit_path, summary_path, *plot_paths]
