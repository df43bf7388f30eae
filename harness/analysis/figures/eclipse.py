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
    eclipsed_since: float | None = None  # eclipsed at the end: when its last unbroken eclipsed stretch began


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
    since = None
    for sample in reversed(samples):  # back from the end while every sample is eclipsed
        if not is_eclipsed(sample):
            break
        since = sample.time - start_time
    return VictimEclipse(
        victim=series.victim,
        share_series=[(s.time - start_time, attacker_share(s)) for s in samples],
        max_share=max((attacker_share(s) for s in samples), default=None),
        eclipsed=first is not None,
        first_eclipsed_at=first.time - start_time if first else None,
        eclipsed_seconds=eclipsed_seconds,
        eclipsed_at_end=bool(samples) and is_eclipsed(samples[-1]),
        eclipsed_since=since,
    )


def eclipse_figures(
    victims: Sequence[VictimSeries], start_time: float, end_time: float | None = None
) -> list[VictimEclipse]:
    return [victim_eclipse(v, start_time, end_time) for v in victims]


@dataclass(frozen=True)
class EclipseShare:
    """How many of the watched victims an attack eclipsed and held until the end of the run: the
    `eclipsed` / `not_eclipsed` checks' figure (a victim eclipsed for a moment and then back to an
    honest outbound peer is not counted: the attack did not hold)."""

    victims: int
    eclipsed: int  # eclipsed at the end
    share: float  # eclipsed / victims
    reached_at: float | None  # seconds since the start when the last of them became eclipsed for good
    ever_eclipsed: int  # eclipsed at any sample


def eclipse_share(figures: Sequence[VictimEclipse]) -> EclipseShare:
    held = [f for f in figures if f.eclipsed_at_end]
    reached = max((f.eclipsed_since for f in held if f.eclipsed_since is not None), default=None)
    return EclipseShare(victims=len(figures), eclipsed=len(held), share=len(held) / len(figures) if figures else 0.0,
                        reached_at=reached, ever_eclipsed=sum(1 for f in figures if f.eclipsed))
