"""Run reports: report.json, junit.xml, summary.md and PNG plots from a ``Report``
(``harness.analysis.model``): ``harness.report.writer.write_report(out_dir, report)``."""
