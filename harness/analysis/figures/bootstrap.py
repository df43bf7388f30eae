"""Malicious-bootstrap figures: when the seeder turned honest again, how long each poisoned victim
took to heal, what share of the victims' transactions was censored, and how late blocks reached them.

Conventions:

- The seeder **turns honest** at the planned time of the last timeline switch from a malicious mode
  (poison, mixed, stale, empty, nxdomain, slow, rogue) back to `honest` (a `seeder_mode` action's
  end, or one that sets `honest`), in seconds after the timeline start.
- A victim is **poisoned** when it was eclipsed (all of its >= 1 outbound peers attackers,
  figures.eclipse) at a sample before that time. It **heals** at its first sample at or after that
  time with an honest outbound peer; its heal time counts from the seeder turning honest.
- A victim's transaction is **censored** when no honest node other than the victims ever saw it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.figures.eclipse import is_eclipsed
from harness.analysis.model import ItemObservation, VictimSeries

HONEST_MODE = "honest"


def seeder_honest_at(plan: Any) -> float | None:
    """Seconds after the start when the seeder last turned honest after a malicious mode (None: never)."""
    seeder = plan.seeder
    mode = str(seeder.config.get("mode", HONEST_MODE)) if seeder is not None else HONEST_MODE
    before: dict[str, str] = {}  # a seeder_mode with a duration (its source) -> the mode its end restores
    turned: float | None = None
    for event in sorted((e for e in plan.timeline if e.action == "seeder_mode"), key=lambda e: e.at):
        if event.phase == "end":
            new = before.pop(event.source, HONEST_MODE)
        else:
            new = str(event.params.get("mode", HONEST_MODE))
            if event.phase == "begin":
                before[event.source] = mode
        if mode != HONEST_MODE and new == HONEST_MODE:
            turned = event.at
        mode = new
    return turned


@dataclass(frozen=True)
class VictimHeal:
    victim: str
    poisoned: bool  # eclipsed at a sample before the seeder turned honest
    heal_seconds: float | None  # from the seeder turning honest to the first honest outbound peer; None: never


def heal_times(victims: Sequence[VictimSeries], honest_at: float) -> list[VictimHeal]:
    """`honest_at`: epoch seconds when the seeder turned honest."""
    out = []
    for series in victims:
        samples = sorted(series.samples, key=lambda s: s.time)
        poisoned = any(is_eclipsed(s) for s in samples if s.time < honest_at)
        healed = next((s.time for s in samples if s.time >= honest_at and s.outbound_total > s.outbound_attacker), None)
        out.append(VictimHeal(series.victim, poisoned, None if healed is None else max(0.0, healed - honest_at)))
    return out


@dataclass(frozen=True)
class Censorship:
    censored: int  # victims' transactions no honest non-victim node saw
    total: int  # victims' transactions injected
    first_censored: str | None = None

    @property
    def share(self) -> float | None:
        return self.censored / self.total if self.total else None


def censorship(items: Sequence[ItemObservation], victims: Collection[str]) -> Censorship:
    mine = [i for i in items if i.kind == "tx" and i.origin_node in victims]
    censored = [i for i in mine if not any(t is not None for n, t in i.first_seen.items() if n not in victims)]
    return Censorship(len(censored), len(mine), censored[0].item_id if censored else None)


def victim_block_delays(items: Sequence[ItemObservation], victims: Collection[str]) -> list[float]:
    """Seconds from each block's injection to its arrival at each victim that got it."""
    return [max(0.0, t - i.origin_time) for i in items if i.kind == "block"
            for n, t in i.first_seen.items() if n in victims and t is not None]
