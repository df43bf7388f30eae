"""Observability as code: the metrics catalogue (one source for docs/metrics.md, the dashboards and the
tests) and the Grafana dashboards built from it with grafana-foundation-sdk.

Regenerate everything with `python -m grafana.generate` (from the repository root).
"""
