"""summary.md: the run report as a person reads it (GitHub/GitLab render it, e.g. as a CI job summary).

A verdict line, then the checks, propagation (p50/p90/p100 for txs and blocks), bans and eclipse
tables, and links to the plots written beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from harness.analysis.figures import ReportFigures
from harness.analysis.figures.eclipse import eclipse_share
from harness.analysis.figures.propagation import QuantileSummary
from harness.report.junit import format_value
from harness.analysis.model import CheckVerdict, Report

_VERDICT_MARK = {CheckVerdict.PASS: "✅ PASS", CheckVerdict.FAIL: "❌ FAIL", CheckVerdict.ERROR: "⚠️ ERROR"}
_KIND_TITLE = {"tx": "Transactions", "block": "Blocks"}
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")


def _cell(value: object) -> str:
    """One table cell: pipes escaped and newlines folded, so free text cannot break the table."""
    text = str(value).replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
    return _CONTROL_CHARS.sub(" ", text)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verdict_line(report: Report) -> str:
    total = len(report.checks)
    failed, errored = report.count(CheckVerdict.FAIL), report.count(CheckVerdict.ERROR)
    counts = f"{total - failed - errored} of {total} checks passed"
    if failed:
        counts += f", {failed} failed"
    if errored:
        counts += f", {errored} errored"
    return f"**{_VERDICT_MARK[report.verdict]}**: {counts}."


def _checks(report: Report) -> list[str]:
    if not report.checks:
        return ["No checks were defined for this scenario."]
    rows = (
        (
            c.name,
            _VERDICT_MARK[c.verdict],
            format_value(c.value, c.unit),
            format_value(c.bound, c.unit),
            c.description,
            c.details,
        )
        for c in report.checks
    )
    return _table(("Check", "Verdict", "Value", "Bound", "Description", "Details"), rows)


def _quantile_cells(q: QuantileSummary) -> tuple[str, str]:
    return _seconds(q.median), _seconds(q.max)


def _propagation(figures: ReportFigures) -> list[str]:
    kinds = [k for k in figures.by_kind.values() if k.items]
    if not kinds:
        return ["No txs or blocks were injected."]
    rows = []
    for k in kinds:
        coverage = "n/a" if k.median_coverage is None else f"{k.median_coverage:.0%}"
        rows.append(
            (
                _KIND_TITLE[k.kind],
                k.items,
                *_quantile_cells(k.p50),
                *_quantile_cells(k.p90),
                *_quantile_cells(k.p100),
                k.never_reached_90,
                k.never_reached_100,
                coverage,
            )
        )
    header = (
        "Kind", "Items", "p50 median", "p50 max", "p90 median", "p90 max", "p100 median", "p100 max",
        "Never reached 90 %", "Never reached 100 %", "Median coverage",
    )  # fmt: skip
    return [
        "Time from origin until 50 %, 90 % and 100 % of honest nodes had an item (the origin node counts); "
        "medians and maxima over the items that reached that share.",
        "",
        *_table(header, rows),
    ]


def _bans(figures: ReportFigures) -> list[str]:
    lines: list[str] = []
    if figures.bans_by_reason:
        lines += _table(("Reason", "Bans"), figures.bans_by_reason.items())
    else:
        lines.append("No bans were recorded.")
    if figures.time_to_ban:
        rows = (
            (
                t.attacker,
                _seconds(t.seconds_to_ban),
                t.first_banned_by or "-",
                t.first_ban_reason or "-",
                t.banned_by_nodes,
            )
            for t in figures.time_to_ban
        )
        lines += ["", "Time from each attacker's start to its first ban by any honest node:", ""]
        lines += _table(("Attacker", "Time to first ban", "First banned by", "Reason", "Banned by (nodes)"), rows)
    if figures.honest_banned:
        lines += ["", f"**Honest peers banned: {len(figures.honest_banned)}** (false positives):", ""]
        rows = ((e.banned_node or "?", e.banned_address, e.banning_node, e.reason) for e in figures.honest_banned)
        lines += _table(("Banned", "Address", "Banned by", "Reason"), rows)
    elif figures.bans_by_reason:
        lines += ["", "No honest peer was banned."]
    return lines


def _eclipse(figures: ReportFigures) -> list[str]:
    if not figures.eclipse:
        return ["No eclipse victims were watched."]
    rows = (
        (
            e.victim,
            "n/a" if e.max_share is None else f"{e.max_share:.0%}",
            "yes" if e.eclipsed else "no",
            _seconds(e.first_eclipsed_at) if e.eclipsed else "-",
            f"{e.eclipsed_seconds:.2f} s",
            "yes" if e.eclipsed_at_end else "no",
        )
        for e in figures.eclipse
    )
    header = ("Victim", "Max attacker share", "Eclipsed", "First eclipsed at", "Time eclipsed", "Eclipsed at end")
    share = eclipse_share(figures.eclipse)
    reached = f", reached at {_seconds(share.reached_at)}" if share.reached_at is not None else ""
    return ["Attacker share of each victim's outbound peers (eclipsed = all outbound peers are attackers).", ""] + (
        _table(header, rows)
    ) + ["", f"Eclipsed at the end: {share.eclipsed} of {share.victims} victims ({share.share:.0%}){reached}."]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _timing(figures: ReportFigures) -> list[str]:
    """The loop-lag verdict: whether the propagation figures above measure the emulated network."""
    lag, curve = figures.lag, figures.block_curve
    if lag.worst_p99 is None:
        lines = ["No event-loop lag was reported: the propagation figures cannot be checked against it."]
    else:
        lines = [f"Event-loop lag over {lag.workers} worker(s): worst p50 {_ms(lag.worst_p50)}, "
                 f"worst p99 {_ms(lag.worst_p99)}."]
        if lag.threshold is None:
            lines.append("No delay is emulated, so there is no threshold: the figures measure this machine as "
                         "much as the protocol.")
        elif lag.marked_kinds:
            lines.append(f"**Marked: {', '.join(_KIND_TITLE[k] for k in lag.marked_kinds)} propagation** — p99 lag "
                         f"in the measurement window exceeded {_ms(lag.threshold)} (10 % of the smallest emulated "
                         f"delay); those figures include the machine's own delay.")
        else:
            lines.append(f"Trusted: p99 lag stayed below {_ms(lag.threshold)} (10 % of the smallest emulated delay) "
                         f"in every measurement window.")
    if any(v is not None for v in curve.values()):
        lines += ["", "Blocks: median time to reach 10 / 50 / 90 % of honest nodes: "
                  + " / ".join(_seconds(curve[p]) for p in sorted(curve)) + "."]
    return lines


def _spam(figures: ReportFigures) -> list[str]:
    """Per behaviour and policy, the misbehaviour table's score and outcome next to the nodes'."""
    if not figures.spam_by_behaviour:
        return []
    rows = ((b.behaviour, "bitcoind" if b.target_kind == "bitcoind" else "light node", b.policy, f"{b.as_expected} / {b.runs}", b.expected_score,
             ", ".join(str(x) for x in b.observed_scores), b.expected_outcome, ", ".join(b.observed_outcomes),
             _seconds(b.max_seconds_to_react)) for b in figures.spam_by_behaviour)
    header = ("Behaviour", "Target", "Policy", "As the table says", "Expected points", "Observed points", "Expected outcome",
              "Observed outcome", "Slowest reaction")
    load = figures.load_overhead
    overhead = (f"Victims' overhead against the unattacked honest nodes: processing CPU x{load.cpu_ratio}, "
                f"received bytes x{load.bytes_ratio}." if load.cpu_ratio is not None else
                "No unattacked honest node to measure the victims' overhead against.")
    return ["", "## Spam", "", "Each spam behaviour against each target: what the node's misbehaviour table "
            "gives, and what the node did (a bitcoind target: what its debug log and RPC showed, docs/bitcoind.md).", "",
            *_table(header, rows), "", overhead]


def render_summary(report: Report, figures: ReportFigures, plots: Mapping[str, str] | None = None,
                   sections: Sequence[str] = ()) -> str:
    """The markdown text. ``plots`` maps a plot title to its file name relative to summary.md;
    ``sections``: more lines before the plots (report/privacy.py's, which builds on this module)."""
    lines = [
        f"# Scenario `{report.scenario}`",
        "",
        _verdict_line(report),
        "",
        f"- Seed: `{report.seed}`, plan digest: `{report.plan_digest}`",
        f"- Backend: {report.backend}, nodes: {report.node_count}",
        f"- Ran {_utc(report.started_at)} to {_utc(report.ended_at)} ({report.duration:.1f} s)",
        "",
        "## Checks",
        "",
        *_checks(report),
        "",
        "## Propagation",
        "",
        *_propagation(figures),
        "",
        "## Timing",
        "",
        *_timing(figures),
        "",
        "## Bans",
        "",
        *_bans(figures),
        "",
        "## Eclipse",
        "",
        *_eclipse(figures),
        *_spam(figures),
        *sections,
    ]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"- [{title}]({name})" for title, name in plots.items()]
        for title, name in plots.items():
            lines += ["", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"
