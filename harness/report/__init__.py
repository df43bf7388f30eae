"""Run reports: report.json, junit.xml, summary.md and PNG plots from a ``Report``
(``harness.analysis.model``): ``write_report(out_dir, report)``."""

from __future__ import annotations

from harness.report.writer import write_report

__all__ = ["write_report"]
