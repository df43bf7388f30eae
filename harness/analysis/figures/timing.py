"""Timing you can trust (docs/chaos.md): the workers' event-loop lag against the delays the plan
emulates, and the block propagation curve at the shares the published measurements give.

A worker whose loop runs a timer 20 ms late adds 20 ms to every hop it emulates. A propagation
figure is **marked** when, during its measurement window (from the first item's origin to the
last arrival, plus the minute the lag quantiles cover), some worker's p99 lag exceeded 10 % of
the smallest one-way delay the plan configures. With no emulated delay there is no threshold: the
figures then measure the machine as much as the protocol, and the report says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.figures.propagation import arrival_delays, nodes_needed
from harness.analysis.model import ItemObservation, LagSample

LAG_SHARE = 0.10  # lag above this share of the smallest delay marks a figure
LAG_WINDOW = 60.0  # seconds the node's lag quantiles cover (harness_node.net.looplag WINDOW x INTERVAL)
CURVE_PERCENT = (10, 50, 90)  # the shares Croman et al. (2016) give for mainnet blocks


def smallest_delay(configs: Sequence[Mapping[str, Any]]) -> float | None:
    """The smallest one-way delay (seconds) any P2P node's config emulates: its link delay plus the
    smallest region delay; None when no node emulates any."""
    delays = []
    for c in configs:
        base = float((c.get("link") or {}).get("delay_ms") or 0.0)
        regions = c.get("regions") or {}
        row = (regions.get("rtt_ms") or {}).get(regions.get("region")) or {}
        region = min(row.values()) / 2 if row else 0.0
        if base + region > 0:
            delays.append((base + region) / 1000.0)
    return min(delays) if delays else None


@dataclass(frozen=True)
class LagVerdict:
    threshold: float | None  # seconds: LAG_SHARE x the smallest delay; None without emulated delay
    worst_p50: float | None  # over the whole run, any worker
    worst_p99: float | None
    workers: int
    marked_kinds: tuple[str, ...]  # item kinds whose window saw p99 lag above the threshold

    @property
    def trusted(self) -> bool | None:
        if self.worst_p99 is None or self.threshold is None:
            return None
        return not self.marked_kinds


def _window(items: Sequence[ItemObservation]) -> tuple[float, float] | None:
    if not items:
        return None
    start = min(i.origin_time for i in items)
    ends = [i.origin_time + d for i in items for d in arrival_delays(i)]
    return start, max(ends, default=start) + LAG_WINDOW


def lag_verdict(lag: Sequence[LagSample], items: Sequence[ItemObservation], smallest: float | None) -> LagVerdict:
    threshold = LAG_SHARE * smallest if smallest else None
    marked = []
    for kind in sorted({i.kind for i in items}):
        window = _window([i for i in items if i.kind == kind])
        inside = [s.p99 for s in lag if window and window[0] <= s.time <= window[1]]
        if threshold is not None and inside and max(inside) > threshold:
            marked.append(kind)
    return LagVerdict(threshold, max((s.p50 for s in lag), default=None), max((s.p99 for s in lag), default=None),
                      len({s.worker for s in lag}), tuple(marked))


def block_curve(items: Sequence[ItemObservation]) -> dict[int, float | None]:
    """Median over the blocks of the time to reach 10 / 50 / 90 % of honest nodes (None: no block did)."""
    out: dict[int, float | None] = {}
    blocks = [i for i in items if i.kind == "block"]
    for percent in CURVE_PERCENT:
        reached = []
        for b in blocks:
            delays, k = arrival_delays(b), nodes_needed(percent, b.honest_node_count)
            if len(delays) >= k:
                reached.append(delays[k - 1])
        out[percent] = statistics.median(reached) if reached else None
    return out
