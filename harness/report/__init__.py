"""Run reports: report.json, junit.xml, summary.md and PNG plots from a ``Report``.

Build a ``Report`` from ``harness.report.model`` and call ``write_report(out_dir, report)``.
"""

from __future__ import annotations

from typing import Any

from harness.report.model import (
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


def __getattr__(name: str) -> Any:
    # write_report is imported lazily: the writer needs harness.figures, which itself imports
    # harness.report.model, and an eager import here would make that a circular import.
    if name == "write_report":
        from harness.report.writer import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttackerStart",
    "BanEvent",
    "CheckResult",
    "CheckVerdict",
    "ItemObservation",
    "OutboundSample",
    "PeerEdge",
    "PeerGraph",
    "Report",
    "ReportInputError",
    "VictimSeries",
    "write_report",
]
