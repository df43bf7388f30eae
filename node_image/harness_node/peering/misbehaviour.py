"""Misbehaviour: Bitcoin Core's numeric scores, and what a node does when a peer earns them.

Scores live in per-connection memory and are never gossiped (protocol.md §3.1). Three policies let a
scenario compare eras:

- ``ban`` (≤0.20.0, our default): scores add up; at 100 the peer is disconnected and its address
  banned for ``bantime`` (persisted, inbound refused, never dialled).
- ``discourage`` (0.20.1–27.x): at 100 the peer is disconnected and its address discouraged
  (not persisted, no expiry listed; still accepted inbound unless slots are nearly full).
- ``disconnect`` (28.0+): any misbehaviour disconnects and discourages at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DISCOURAGEMENT_THRESHOLD = 100  # net_processing.cpp (was -banscore default 100)


class Policy(str, enum.Enum):
    BAN = "ban"
    DISCOURAGE = "discourage"
    DISCONNECT = "disconnect"


class Action(str, enum.Enum):
    NONE = "none"  # scored, keep the connection
    DISCONNECT = "disconnect"  # disconnect only (e.g. local/manual peers, or a rule that says so)
    BAN = "ban"  # disconnect + ban the address for bantime
    DISCOURAGE = "discourage"  # disconnect + discourage the address


# reason -> points, values from Core 0.18 net_processing.cpp unless noted (protocol.md §3.2). Every
# entry is charged where Core charges it (the comment says where); tests/node/test_misbehaviour_wire.py
# sends each offence over a socket and reads the expected score from this table. Attack code may
# import it as data.
SCORES: dict[str, int] = {
    "pre-version-message": 1,  # net/peer.py: message before version
    "duplicate-version": 1,  # net/peer.py
    "pre-verack-message": 1,  # net/peer.py: message other than version/verack before verack
    "addr-too-large": 20,  # net/peer.py: addr/addrv2 > 1000
    "inv-too-large": 20,  # net/peer.py: inv > 50,000
    "getdata-too-large": 20,  # net/peer.py: getdata > 50,000
    "headers-too-large": 20,  # net/peer.py: headers > 2000
    "headers-non-continuous": 20,  # relay/relay.py on_headers
    "headers-unconnecting": 20,  # relay/relay.py: every 10th consecutive unconnecting headers message
    "tx-empty-vin-vout": 10,  # chain/txcheck.py [0.16v] bad-txns-vin-empty / vout-empty
    "tx-null-prevout": 10,  # chain/txcheck.py [0.16v] bad-txns-prevout-null
    "tx-oversize": 100,  # chain/txcheck.py [0.16v] bad-txns-oversize (> 1 MB without witness)
    "tx-bad-values": 100,  # chain/txcheck.py [0.16v] bad-txns-vout-negative / -toolarge / -txouttotal-toolarge
    "tx-duplicate-inputs": 100,  # chain/txcheck.py [0.16v] bad-txns-inputs-duplicate
    "tx-policy-reject": 0,  # chain/txcheck.py [0.16v] standardness (tx-size > 400,000 weight) is not misbehaviour
    "tx-invalid": 100,  # chain/txcheck.py [0.16v] "coinbase" outside a block (DoS 100; 0.19 TX_CONSENSUS)
    "block-bad-pow": 50,  # chain/chain.py check_block [0.16v]
    "block-invalid": 100,  # chain/chain.py check_block [0.19] BLOCK_CONSENSUS: no coinbase, bad merkle root
    "bloom-not-offered": 100,  # net/peer.py [0.18] filterload/filteradd when we do not offer NODE_BLOOM (peer >= 70011)
    # A payload that does not decode: Core 0.18 catches the exception in ProcessMessages, logs it
    # and does not score it (only the size rules above are scored). net/peer.py records it.
    "malformed-message": 0,
    "dandelion-invalid": 100,  # testbed: a stem tx without inputs or outputs (as tx-empty-vin-vout)
    # Disconnect-only rules (protocol.md §3.2 last row): no points, the connection is dropped.
    "locator-too-large": 0,  # relay/relay.py [0.18] getheaders locator > MAX_LOCATOR_SZ (101)
    "mempool-without-bloom": 0,  # net/peer.py [0.18] `mempool` message when we do not offer NODE_BLOOM
}
# Rules of Core's table this node cannot meet, so they are not listed (a listed score is a promise
# that the node charges it):
# - tx-missing-inputs (100), tx-in-below-out (100): there is no UTXO set; synthetic transactions spend
#   outpoints that do not exist.
# - block-prev-not-found (10): Core (headers-first) never stores a block without its parent; the
#   testbed keeps such orphans within a byte budget (chain.py) and fetches the gap, because blocks
#   announced by inv may arrive out of order over emulated links.
# - block-nonfinal-tx (10), block-time-too-new / -too-old (0), block-bad-version (0): no lock-time,
#   median-time or version rules; synthetic blocks carry the harness's clock.
# - block-invalid-prev, block-cached-invalid (100): invalid blocks are not remembered.
# - bloom-filter-oversize, bloom-filteradd-invalid (100): they apply only to a node offering
#   NODE_BLOOM, which this node never does (bloom-not-offered catches every filter message).
# - getblocktxn-out-of-range, compact-block-invalid (100), block-invalid-via-compact (0): no compact
#   blocks (BIP152); `cmpctblock`, `getblocktxn` and `blocktxn` are unknown commands, ignored.

# Reasons Core answers with a plain disconnect (fDisconnect) rather than a score.
DISCONNECT_ONLY: frozenset[str] = frozenset({"locator-too-large", "mempool-without-bloom"})


@dataclass
class Verdict:
    reason: str
    points: int
    score: int  # the peer's score after this event
    action: Action


class Misbehaviour:
    """Scores per peer id under one policy; the node applies the returned Action."""

    def __init__(self, policy: Policy | str = Policy.BAN, threshold: int = DISCOURAGEMENT_THRESHOLD) -> None:
        self.policy = Policy(policy)
        self.threshold = threshold
        self.scores: dict[int, int] = {}

    def record(self, peer_id: int, reason: str, points: int | None = None, exempt: bool = False) -> Verdict:
        """Charge `reason` to `peer_id`. `exempt` (manual/noban peers): scored, never punished.
        Reasons in DISCONNECT_ONLY score nothing and return Action.DISCONNECT in every policy."""
        if points is None:
            if reason not in SCORES:
                raise KeyError(f"unknown misbehaviour reason {reason!r}; known: {sorted(SCORES)}")
            points = SCORES[reason]
        score = self.scores.get(peer_id, 0) + points
        self.scores[peer_id] = score
        action = Action.NONE
        if not exempt and reason in DISCONNECT_ONLY:
            action = Action.DISCONNECT
        elif not exempt and points > 0:
            if self.policy is Policy.DISCONNECT:
                action = Action.DISCOURAGE
            elif score >= self.threshold:
                action = Action.BAN if self.policy is Policy.BAN else Action.DISCOURAGE
        return Verdict(reason, points, score, action)

    def score(self, peer_id: int) -> int:
        return self.scores.get(peer_id, 0)

    def forget(self, peer_id: int) -> None:
        """Scores vanish with the connection (protocol.md §3.1)."""
        self.scores.pop(peer_id, None)
