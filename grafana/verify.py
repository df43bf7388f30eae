"""Evaluate every PromQL expression of every generated dashboard against a live Prometheus and report
which return no series. `python -m grafana.verify http://127.0.0.1:9090` prints the empty ones (exit 1
if any); the live tests call `evaluate` directly.

Panels are evaluated as instant queries (`/api/v1/query`) at the current time; annotations as range
queries (`/api/v1/query_range`) over a window, because Grafana draws one wherever the expression
returned something in the dashboard's time range, not only now.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
# Grafana's global variables, as a dashboard would fill them for a short range scraped every few seconds.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # the dashboard's uid
    panel: str  # the panel's title, or "annotation: <name>"
    expr: str
    annotation: bool = False


def queries(directory: Path = DASHBOARDS_DIR) -> list[PanelQuery]:
    """Every expression of every dashboard JSON in `directory`, as Grafana would run it."""
    found: list[PanelQuery] = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        for a in board.get("annotations", {}).get("list", []):
            if a.get("expr"):
                found.append(PanelQuery(board["uid"], f"annotation: {a['name']}", a["expr"], annotation=True))
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append(PanelQuery(board["uid"], panel["title"], target["expr"]))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))  # rows nest their panels


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def _get(url: str, path: str, params: dict[str, str], timeout: float) -> list[Any]:
    full = f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(full, timeout=timeout) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise ValueError(f"{params.get('query')!r}: {body.get('error', body)}")
    return body["data"]["result"]


def series(url: str, q: PanelQuery, window_seconds: float = 600.0, timeout: float = 10.0) -> list[Any]:
    """The series the expression returns (raises ValueError on a PromQL error, naming the expression)."""
    expr = substitute(q.expr)
    if q.annotation:
        now = time.time()
        return _get(url, "/api/v1/query_range",
                    {"query": expr, "start": f"{now - window_seconds:.3f}", "end": f"{now:.3f}", "step": "5"}, timeout)
    return _get(url, "/api/v1/query", {"query": expr}, timeout)


def evaluate(url: str, panel_queries: list[PanelQuery]) -> list[PanelQuery]:
    """The queries that return no series."""
    return [q for q in panel_queries if not series(url, q)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.verify", description=__doc__)
    parser.add_argument("prometheus_url")
    args = parser.parse_args(argv)
    all_queries = queries()
    empty = evaluate(args.prometheus_url, all_queries)
    for q in empty:
        print(f"no series: {q.dashboard} / {q.panel}: {q.expr}")
    print(f"{len(all_queries) - len(empty)} of {len(all_queries)} queries return series")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
