"""Propagation figures: how long an injected tx or block took to reach 50 %, 90 % and 100 % of honest nodes.

The same figure as the KIT DSN Bitcoin monitor and the gossipsub-interop reports: for one item, the
time from its origin until a given share of the honest nodes had it; over the items of a kind, the
median and the worst case.

Conventions (they decide the numbers, so they are spelled out):

- **The origin counts.** When the origin node is honest, it has the item at ``origin_time`` (even if
  its own first-seen record is later or missing), so with 10 honest nodes the origin alone is 10 %.
- **Quantile = the k-th arrival.** Reaching q % of N honest nodes means ``k = ceil(q * N / 100)``
  nodes had it; the figure is the k-th smallest delay. With 10 nodes p50 is the 5th arrival, p90
  the 9th, p100 the 10th. Integer arithmetic, so 70 % of 10 is exactly 7 nodes, not 8.
- **Never reached -> None.** If fewer than k nodes ever saw the item, the quantile is None.
- **Delays never go negative.** A node whose clock says it saw the item before its origin (clock
  skew between hosts) is counted at delay 0.
- **Aggregates** take the median and max over the items that reached the quantile, and count the
  items that did not reach 90 % / 100 % separately, so a stalled item is never hidden in a median.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.analysis.model import ITEM_KINDS, ItemObservation

QUANTILES_PERCENT = (50, 90, 100)


@dataclass(frozen=True)
class ItemPropagation:
    """Propagation of one item. ``t50``/``t90``/``t100`` are seconds since origin, None if never reached."""

    kind: str
    item_id: str
    origin_node: str
    honest_nodes: int
    reached: int
    coverage: float  # reached / honest_nodes
    t50: float | None
    t90: float | None
    t100: float | None


@dataclass(frozen=True)
class QuantileSummary:
    """Median and max over the items that reached one quantile (None when no item did)."""

    median: float | None
    max: float | None
    reached_items: int


@dataclass(frozen=True)
class KindPropagation:
    """Propagation over all items of one kind (tx or block)."""

    kind: str
    items: int
    p50: QuantileSummary
    p90: QuantileSummary
    p100: QuantileSummary
    never_reached_90: int
    never_reached_100: int
    median_coverage: float | None


def arrival_delays(obs: ItemObservation) -> list[float]:
    """Sorted delays (seconds since origin) of every honest node that saw the item, origin included."""
    seen: dict[str, float] = {node: t for node, t in obs.first_seen.items() if t is not None}
    if obs.origin_honest:
        seen[obs.origin_node] = min(seen.get(obs.origin_node, obs.origin_time), obs.origin_time)
    return sorted(max(0.0, t - obs.origin_time) for t in seen.values())


def nodes_needed(percent: int, honest_nodes: int) -> int:
    """How many of ``honest_nodes`` make ``percent`` % of them: ceil(percent * n / 100), at least 1."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return max(1, -(-percent * honest_nodes // 100))


def _kth_arrival(delays: Sequence[float], percent: int, honest_nodes: int) -> float | None:
    k = nodes_needed(percent, honest_nodes)
    return delays[k - 1] if len(delays) >= k else None


def time_to_reach(obs: ItemObservation, percent: int) -> float | None:
    """Seconds from origin until ``percent`` % of honest nodes had the item, None if never."""
    return _kth_arrival(arrival_delays(obs), percent, obs.honest_node_count)


def item_propagation(obs: ItemObservation) -> ItemPropagation:
    delays = arrival_delays(obs)
    n = obs.honest_node_count

    def quantile(percent: int) -> float | None:
        return _kth_arrival(delays, percent, n)

    return ItemPropagation(
        kind=obs.kind,
        item_id=obs.item_id,
        origin_node=obs.origin_node,
        honest_nodes=n,
        reached=len(delays),
        coverage=len(delays) / n,
        t50=quantile(50),
        t90=quantile(90),
        t100=quantile(100),
    )


def _summary(values: Iterable[float | None]) -> QuantileSummary:
    reached = [v for v in values if v is not None]
    if not reached:
        return QuantileSummary(median=None, max=None, reached_items=0)
    return QuantileSummary(median=statistics.median(reached), max=max(reached), reached_items=len(reached))


def kind_propagation(kind: str, items: Sequence[ItemPropagation]) -> KindPropagation:
    """Aggregate the items of ``kind`` (items of other kinds are ignored)."""
    if kind not in ITEM_KINDS:
        raise ValueError(f"kind must be one of {ITEM_KINDS}, got {kind!r}")
    mine = [i for i in items if i.kind == kind]
    return KindPropagation(
        kind=kind,
        items=len(mine),
        p50=_summary(i.t50 for i in mine),
        p90=_summary(i.t90 for i in mine),
        p100=_summary(i.t100 for i in mine),
        never_reached_90=sum(1 for i in mine if i.t90 is None),
        never_reached_100=sum(1 for i in mine if i.t100 is None),
        median_coverage=statistics.median(i.coverage for i in mine) if mine else None,
    )


def propagation_curve(obs: ItemObservation) -> list[tuple[float, float]]:
    """The CDF of one item: (seconds since origin, share of honest nodes that had it by then).

    One point per distinct arrival time, share cumulative and in (0, 1]; plot as a step ("post").
    Empty when no honest node ever had the item.
    """
    n = obs.honest_node_count
    points: list[tuple[float, float]] = []
    for count, delay in enumerate(arrival_delays(obs), start=1):
        if points and points[-1][0] == delay:
            points[-1] = (delay, count / n)
        else:
            points.append((delay, count / n))
    return points
