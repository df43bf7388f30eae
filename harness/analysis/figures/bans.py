"""Ban figures: how many bans for which reason over time, how fast each attacker got banned, and
which honest nodes were banned by mistake.

Ban events are the ones honest nodes record (the controller collects bans from honest nodes only).
A ban matches an attacker by the harness name of the banned peer when known, else by the banned
address (host part, port ignored: Core bans addresses, not ports) against the attacker's addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.model import AttackerStart, BanEvent


@dataclass(frozen=True)
class AttackerBanTime:
    """When an attacker was first banned by any honest node; None fields when it never was."""

    attacker: str
    start_time: float
    first_ban_time: float | None
    seconds_to_ban: float | None  # first_ban_time - start_time
    first_banned_by: str | None
    first_ban_reason: str | None
    banned_by_nodes: int  # distinct honest nodes that banned it during the run


def host_of(address: str) -> str:
    """The host part of "1.2.3.4", "1.2.3.4/32", "1.2.3.4:8333", "[::1]:8333" or "::1" (lower-cased)."""
    address = address.strip().lower()
    if address.endswith(("/32", "/128")):  # a node lists a one-address ban as a subnet, like Core
        address = address.rsplit("/", 1)[0]
    if address.startswith("["):
        return address[1 : address.index("]")] if "]" in address else address[1:]
    if address.count(":") == 1:  # IPv4 or a host name with a port; a bare IPv6 has several colons
        return address.split(":", 1)[0]
    return address


def bans_over_time(events: Sequence[BanEvent], start_time: float) -> dict[str, list[tuple[float, int]]]:
    """Cumulative bans per reason: reason -> [(seconds since ``start_time``, bans so far)].

    Each series starts at (0, 0) and has one step per ban event, so it plots directly as a step
    ("post") series. Reasons are in alphabetical order.
    """
    series: dict[str, list[tuple[float, int]]] = {}
    for event in sorted(events, key=lambda e: e.time):
        points = series.setdefault(event.reason, [(0.0, 0)])
        points.append((event.time - start_time, points[-1][1] + 1))
    return dict(sorted(series.items()))


def bans_by_reason(events: Sequence[BanEvent]) -> dict[str, int]:
    """Total bans per reason, most frequent first (ties alphabetical)."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.reason] = counts.get(event.reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _is_ban_of(event: BanEvent, attacker: AttackerStart) -> bool:
    if event.banned_node is not None:
        return event.banned_node == attacker.name
    return host_of(event.banned_address) in {host_of(a) for a in attacker.addresses}


def time_to_ban(events: Sequence[BanEvent], attackers: Sequence[AttackerStart]) -> list[AttackerBanTime]:
    """For each attacker (in the given order): its first ban by any honest node, minus its start time.

    Bans of an attacker recorded before its start time (an address reused from an earlier phase)
    are ignored: they are not a reaction to this attack.
    """
    ordered = sorted(events, key=lambda e: e.time)
    result = []
    for attacker in attackers:
        bans = [e for e in ordered if e.time >= attacker.start_time and _is_ban_of(e, attacker)]
        first = bans[0] if bans else None
        result.append(
            AttackerBanTime(
                attacker=attacker.name,
                start_time=attacker.start_time,
                first_ban_time=first.time if first else None,
                seconds_to_ban=first.time - attacker.start_time if first else None,
                first_banned_by=first.banning_node if first else None,
                first_ban_reason=first.reason if first else None,
                banned_by_nodes=len({e.banning_node for e in bans}),
            )
        )
    return result


def honest_nodes_banned(events: Sequence[BanEvent]) -> list[BanEvent]:
    """Every ban of an honest peer (a false positive), in time order."""
    return sorted((e for e in events if not e.banned_is_attacker), key=lambda e: e.time)
