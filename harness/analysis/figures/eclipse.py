"""Eclipse figures: the share of a victim's outbound peers held by attackers, over time.

A victim is **eclipsed** at a sample when attackers hold all of its outbound peers and it has at
least one (share == 1 with >= 1 outbound); a node with no outbound peers is isolated, not eclipsed,
and its share is taken as 0. Samples are sample-and-hold: the state at one sample lasts until the
next sample, and the last one until ``end_time`` (or not at all when no end time is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.model import OutboundSample, VictimSeries


@dataclass(frozen=True)
class VictimEclipse:
    """One victim's eclipse figure; times are seconds since the run start."""

    victim: str
    share_series: list[tuple[float, float]]  # (seconds since start, attacker share of outbound peers)
    max_share: float | None  # None when there are no samples
    eclipsed: bool  # eclipsed at any sample
    first_eclipsed_at: float | None
    eclipsed_seconds: float  # total time spent eclipsed
    eclipsed_at_end: bool  # eclipsed at the last sample


def attacker_share(sample: OutboundSample) -> float:
    return sample.outbound_attacker / sample.outbound_total if sample.outbound_total else 0.0


def is_eclipsed(sample: OutboundSample) -> bool:
    return sample.outbound_total >= 1 and sample.outbound_attacker == sample.outbound_total


def victim_eclipse(series: VictimSeries, start_time: float, end_time: float | None = None) -> VictimEclipse:
    samples = sorted(series.samples, key=lambda s: s.time)
    eclipsed_seconds = 0.0
    for i, sample in enumerate(samples):
        if not is_eclipsed(sample):
            continue
        until = samples[i + 1].time if i + 1 < len(samples) else end_time
        if until is not None:
            eclipsed_seconds += max(0.0, until - sample.time)
    first = next((s for s in samples if is_eclipsed(s)), None)
    return VictimEclipse(
        victim=series.victim,
        share_series=[(s.time - start_time, attacker_share(s)) for s in samples],
        max_share=max((attacker_share(s) for s in samples), default=None),
        eclipsed=first is not None,
        first_eclipsed_at=first.time - start_time if first else None,
        eclipsed_seconds=eclipsed_seconds,
        eclipsed_at_end=bool(samples) and is_eclipsed(samples[-1]),
    )


def eclipse_figures(
    victims: Sequence[VictimSeries], start_time: float, end_time: float | None = None
) -> list[VictimEclipse]:
    return [victim_eclipse(v, start_time, end_time) for v in victims]
