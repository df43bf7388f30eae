"""The node's chaos faults (control API, docs/chaos.md): partitions, per-link loss, bandwidth caps
and clock skew, over the node-wide network emulation (shaping.Shaper), the node's Clock and the
process's loop-lag monitor. Node inherits these, so they act on its own shaper, clock and peers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .shaping import Bandwidth

if TYPE_CHECKING:
    from ..timing import Clock
    from .looplag import LoopLag
    from .peer import Peer
    from .shaping import Shaper


class ChaosFaults:
    shaper: Shaper
    clock: Clock
    lag: LoopLag | None
    peers: dict[int, Peer]

    def set_unreachable(self, ips: list[str], unreachable: bool) -> int:
        """Partition: messages to `ips` are held (as TCP holds them) until they are reachable again,
        and they are not dialled; returns how many of our peers that affects."""
        held = self.shaper.held
        (held.update if unreachable else held.difference_update)(ips)
        wanted = set(ips)
        touched = [p for p in self.peers.values() if p.ip in wanted]
        if not unreachable:
            for p in touched:
                p.conn.release()
        return len(touched)

    def heal(self) -> int:
        """Every partition of this node ends."""
        return self.set_unreachable(sorted(self.shaper.held), False)

    def set_loss(self, ips: list[str], loss: float) -> None:
        self.shaper.set_loss(ips, loss)

    def set_bandwidth(self, up_kbit: float | None, down_kbit: float | None) -> None:
        self.shaper.set_bandwidth(Bandwidth(up_kbit, down_kbit))

    def set_clock_skew(self, seconds: float) -> None:
        self.clock.skew = float(seconds)

    def chaos_status(self) -> dict[str, Any]:
        return {**self.shaper.status(), "clock_skew": self.clock.skew,
                "loop_lag": self.lag.summary() if self.lag is not None else None}
