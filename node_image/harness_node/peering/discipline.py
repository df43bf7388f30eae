"""The node's side of misbehaviour and bans, inherited by Node as ChaosFaults is: the PeerEvents
hook that charges a peer (misbehaviour.py decides the verdict, connman.py carries it out), the log
of every charge, and the ban list actions of the control API (banman.py holds the list)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..net.peer import Peer
from ..net.stats import NodeStats
from .connman import ConnMan
from .misbehaviour import Action, Misbehaviour

MISBEHAVIOUR_LOG = 10_000  # entries kept (a flood of 1-point messages is 100 entries per ban)


class Discipline:
    connman: ConnMan
    misbehaviour: Misbehaviour
    stats: NodeStats
    peers: dict[int, Peer]
    # Every misbehaviour charged, by planned address: scores vanish with the connection (§3.1), so
    # this log is how the harness compares observed points with the table's (GET /misbehaviour).
    misbehaviour_log: deque[dict[str, Any]]  # at most MISBEHAVIOUR_LOG entries, built by Node

    def on_misbehaving(self, peer: Peer, reason: str, points: int | None) -> None:
        if peer.first_misbehaviour is None:
            peer.first_misbehaviour = self.connman.banman.clock()
        verdict = self.misbehaviour.record(peer.id, reason, points, exempt=peer.exempt)
        self.stats.misbehaviour[reason] += 1
        self.misbehaviour_log.append({"time": time.time(), "address": peer.ip, "peer_id": peer.id, "reason": reason,
                                      "points": verdict.points, "score": verdict.score, "action": verdict.action.value})
        if verdict.action is not Action.NONE:
            self.punish(peer, verdict.action, reason)

    def misbehaviour_score(self, peer_id: int) -> int:
        return self.misbehaviour.score(peer_id)

    def punish(self, peer: Peer, action: Action, reason: str) -> None:
        if action in (Action.BAN, Action.DISCOURAGE):
            self.stats.bans += 1
        self.connman.punish(peer, action, reason)

    def is_banned(self, ip: str) -> bool:
        return self.connman.banman.is_banned(ip)

    def ban(self, ip: str, reason: str, duration: float | None = None) -> None:
        """Ban `ip` (or a CIDR subnet) for `duration` seconds (default timers.bantime); drop its links."""
        self.connman.banman.ban(ip, reason, duration)
        self.stats.bans += 1
        for p in list(self.peers.values()):
            if self.is_banned(p.ip):
                p.disconnect(f"banned: {reason}")

    def list_bans(self) -> list[dict[str, Any]]:
        banman = self.connman.banman
        return ([{**b, "kind": "ban"} for b in banman.list()]
                + [{"address": ip, "until": None, "reason": "misbehaviour", "kind": "discourage"}
                   for ip in banman.discouraged_addresses()])

    def clear_bans(self) -> None:
        self.connman.banman.clear()
