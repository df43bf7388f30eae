"""Derived figures of a run: pure computations over the raw observations, no I/O.

``compute_figures(report)`` computes all of them at once for the report writers; the modules hold
the single computations (``propagation``, ``bans``, ``eclipse``, ``spam``) with their conventions documented.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.figures.bans import AttackerBanTime, bans_by_reason, bans_over_time, honest_nodes_banned, time_to_ban
from harness.analysis.figures.eclipse import VictimEclipse, eclipse_figures
from harness.analysis.figures.propagation import ItemPropagation, KindPropagation, item_propagation, kind_propagation
from harness.analysis.figures.spam import BehaviourSummary, LoadOverhead, load_overhead, spam_by_behaviour
from harness.analysis.figures.timing import LagVerdict, block_curve, lag_verdict
from harness.analysis.model import ITEM_KINDS, BanEvent, Report


@dataclass(frozen=True)
class ReportFigures:
    items: list[ItemPropagation]
    by_kind: dict[str, KindPropagation]  # "tx" and "block", always both
    bans_series: dict[str, list[tuple[float, int]]]  # reason -> cumulative (seconds since start, bans)
    bans_by_reason: dict[str, int]
    time_to_ban: list[AttackerBanTime]
    honest_banned: list[BanEvent]
    eclipse: list[VictimEclipse]
    lag: LagVerdict  # the workers' event-loop lag against the emulated delays (timing.py)
    block_curve: dict[int, float | None]  # percent of honest nodes -> median seconds over the blocks
    spam_by_behaviour: list[BehaviourSummary]
    load_overhead: LoadOverhead


def compute_figures(report: Report) -> ReportFigures:
    items = [item_propagation(obs) for obs in report.items]
    return ReportFigures(
        items=items,
        by_kind={kind: kind_propagation(kind, items) for kind in ITEM_KINDS},
        bans_series=bans_over_time(report.bans, report.started_at),
        bans_by_reason=bans_by_reason(report.bans),
        time_to_ban=time_to_ban(report.bans, report.attackers),
        honest_banned=honest_nodes_banned(report.bans),
        eclipse=eclipse_figures(report.victims, report.started_at, report.ended_at),
        lag=lag_verdict(report.loop_lag, report.items, report.smallest_delay),
        block_curve=block_curve(report.items),
        spam_by_behaviour=spam_by_behaviour(report.spam),
        load_overhead=load_overhead(report.load),
    )


__all__ = ["ReportFigures", "compute_figures"]
