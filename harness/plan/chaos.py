"""Resolving network.regions and network.bandwidth to one setting per P2P node (docs/chaos.md).

Entries with a selector take their nodes first (in the order written; a node keeps its first
entry); entries with a percent then take that share of the nodes still free, and an entry with
neither takes what is left. Shuffled with the plan's seed, so the same seed gives the same map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.plan.model import Event
from harness.scenario.chaos import Bandwidth, Regions
from harness.scenario.selectors import Member, pick, rng_for

P2P_ROLES = ("honest", "attacker")  # our node software; bitcoind has no link emulation


def _assign(entries: Sequence[Any], members: Sequence[Member], seed: int, label: str) -> dict[str, Any]:
    p2p = [m for m in members if m.role in P2P_ROLES]
    taken: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        if entry.nodes is not None:
            for m in pick(entry.nodes, list(members), rng_for(seed, label, i)):
                if m.role in P2P_ROLES:
                    taken.setdefault(m.name, entry)
    free = [m.name for m in p2p if m.name not in taken]
    rng_for(seed, label, "shuffle").shuffle(free)
    total = len(free)
    for entry in entries:
        if entry.nodes is None and entry.percent is not None:
            n = min(len(free), math.floor(total * entry.percent / 100 + 0.5))
            for name in free[:n]:
                taken[name] = entry
            free = free[n:]
    rest = next((e for e in entries if e.nodes is None and e.percent is None), None)
    if rest is not None:
        for name in free:
            taken[name] = rest
    return taken


def region_of(regions: Regions, members: Sequence[Member], seed: int) -> dict[str, str]:
    """Node name -> region, for every P2P node a region entry takes."""
    return {name: e.region for name, e in _assign(regions.assign, members, seed, "regions").items()}


def region_configs(regions: Regions | None, members: Sequence[Member], addresses: dict[str, str],
                   seed: int) -> dict[str, dict[str, Any]]:
    """Node name -> the node's `regions` config: its region, every planned address's region
    (planned addresses are what peers are known by), the matrix and jitter."""
    if regions is None:
        return {}
    where = region_of(regions, members, seed)
    table = {addresses[name]: r for name, r in where.items()}
    return {name: {"region": r, "of": table, "rtt_ms": regions.rtt_ms, "jitter": regions.jitter}
            for name, r in where.items()}


def bandwidth_configs(bandwidth: Bandwidth | None, members: Sequence[Member], seed: int) -> dict[str, dict[str, Any]]:
    """Node name -> {"up_kbit", "down_kbit"} for every P2P node a class takes."""
    if bandwidth is None:
        return {}
    return {name: {"up_kbit": c.up_kbit, "down_kbit": c.down_kbit}
            for name, c in _assign(bandwidth.classes, members, seed, "bandwidth").items()}


def churn_events(index: int, at: float, duration: float, nodes: Sequence[str], params: dict[str, Any],
                 seed: int) -> list[Event]:
    """A churn fault as stop_node begin/end pairs: departures at `rate` per second (Poisson) among
    the target nodes that are up, each away for `away` seconds (back by the end of the churn), then
    started again with its data directory kept or wiped (`wipe_datadir`)."""
    rng = rng_for(seed, "faults", index, "churn")
    rate, away, wipe = float(params["rate"]), float(params["away"]), bool(params["wipe_datadir"])
    end, t = at + duration, at
    back_at: dict[str, float] = {}
    events: list[Event] = []
    source = f"faults[{index}]"
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return events
        up = [n for n in nodes if back_at.get(n, -1.0) < t]
        if not up:
            continue
        name = rng.choice(up)
        back_at[name] = min(t + away, end)
        for when, phase in ((t, "begin"), (back_at[name], "end")):
            events.append(Event(at=round(when, 6), action="stop_node", nodes=[name],
                                params={"wipe_datadir": wipe}, phase=phase, source=source))
