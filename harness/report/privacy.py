"""The privacy-latency trade-off of a relay-policy comparison (issue 11): one Markdown table and one
PNG. Each relay policy's run gives the spy's precision and recall per estimator and the
transactions' propagation (median over txs of the time to 50/90/100 % of the honest nodes).

Rendered like the other plots (plots.py): a bare ``Figure`` on the Agg renderer, no pyplot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from harness.analysis.model import Report
from harness.analysis.privacy import ESTIMATORS, PolicyRun, policy_runs, privacy_rows
from harness.report.plots import _new_figure, _no_data, _save
from harness.report.summary import _seconds, _table

HEADER = ("relay policy", "seed", "estimator", "spy share p", "precision", "recall", "precision (micro)",
          "txs", "p50", "p90", "p100")


def privacy_table(runs: Sequence[PolicyRun]) -> list[str]:
    """Markdown lines: one row per policy run and estimator."""
    return _table(HEADER, ([r["relay_policy"], r["seed"], r["estimator"], f"{r['spy_share']:.3f}",
                            f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['precision_micro']:.3f}",
                            r["transactions"], _seconds(r["p50"]), _seconds(r["p90"]), _seconds(r["p100"])]
                           for r in privacy_rows(runs)))


def privacy_section(report: Report) -> list[str]:
    """The run report's "Privacy" section (summary.md): the spy's scores per relay policy and
    estimator next to the propagation of those senders' transactions; empty without a spy."""
    if not report.privacy:
        return []
    p = report.privacy[0].spy_share
    return ["", "## Privacy", "",
            f"The spy (p = {p:.3f} of the nodes) against the honest nodes' transactions: per relay policy of "
            "the sender, each source estimator's precision (mean over senders) and recall (share of "
            "transactions attributed to their sender), and how fast those transactions spread "
            "(median over transactions of the time to 50/90/100 % of the honest nodes). "
            "Dandelion++ predicts recall near p (docs/results.md#privacy).", "",
            *privacy_table(policy_runs(report.privacy, report.items, report.seed))]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def plot_privacy(path: Path, runs: Sequence[PolicyRun]) -> Path:
    """Left: precision and recall per policy and estimator (mean over seeds). Right: time to
    50/90/100 % coverage per policy (mean over seeds of the per-run medians)."""
    fig: Figure = _new_figure()
    left, right = fig.subplots(1, 2)
    policies = list(dict.fromkeys(r.relay_policy for r in runs))
    if not policies:
        _no_data(left)
        _no_data(right)
        return _save(fig, path)
    width = 0.8 / (2 * len(ESTIMATORS))
    for k, est in enumerate(ESTIMATORS):
        for m, metric in enumerate(("precision", "recall")):
            values = [_mean([getattr(r.scores[est], metric) for r in runs if r.relay_policy == pol]) for pol in policies]
            offset = (2 * k + m - (2 * len(ESTIMATORS) - 1) / 2) * width
            left.bar([i + offset for i in range(len(policies))], values, width, label=f"{est} {metric}",
                     hatch="//" if metric == "recall" else None)
    share = _mean([r.spy_share for r in runs])
    left.axhline(share, color="black", linestyle="--", linewidth=1, label=f"spy share p = {share:.2f}")
    left.set_xticks(range(len(policies)), policies)
    left.set_ylim(0, 1.05)
    left.set_ylabel("share")
    left.set_title("What the spy learns")
    left.legend(fontsize="small")
    for q, label in (("p50", "50 %"), ("p90", "90 %"), ("p100", "100 %")):
        values = []
        for pol in policies:
            medians = [getattr(r.propagation, q).median for r in runs if r.relay_policy == pol]
            values.append(_mean([v for v in medians if v is not None]))
        right.plot(policies, values, marker="o", label=f"time to {label} of honest nodes")
    right.set_ylabel("seconds since injection (median over txs)")
    right.set_title("What it costs: propagation")
    right.legend(fontsize="small")
    return _save(fig, path)
