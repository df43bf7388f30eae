"""The spam behaviours' catalogue: what each sends, which rule of the node's misbehaviour table
it breaks, and what a victim is expected to do — computed from that table
(`peering.misbehaviour`: SCORES and the Misbehaviour policy engine), never restated here.

A behaviour either names a table `reason` (charged once per message, or once per `every`
messages: the 10th unconnecting `headers` in a row), or has no score and a fixed `outcome` with
the rule it follows (docs/protocol.md section in `rule`):

    banned        disconnected and the address banned (policy `ban`, score reached 100)
    discouraged   disconnected and the address discouraged (policies `discourage` and `disconnect`)
    disconnected  the connection is closed, no score (framing errors, handshake timeout)
    none          nothing: the message is dropped or served, the link stays
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..names import MISBEHAVIOUR_POLICIES
from ..peering.misbehaviour import DISCOURAGEMENT_THRESHOLD, SCORES, Action, Misbehaviour

OUTCOMES = ("banned", "discouraged", "disconnected", "none")
_ACTION_OUTCOME = {Action.BAN: "banned", Action.DISCOURAGE: "discouraged", Action.DISCONNECT: "disconnected",
                   Action.NONE: "none"}

# Handshake stage a behaviour needs before it starts sending.
RAW, VERSION_ONLY, READY = "raw", "version-only", "ready"


@dataclass(frozen=True)
class Behaviour:
    name: str
    what: str  # what it sends, one line
    stage: str  # RAW (nothing sent first), VERSION_ONLY (our version sent, no verack), READY (handshake done)
    reason: str | None = None  # the misbehaviour table's key, charged per message
    every: int = 1  # the reason is charged once every `every` messages
    outcome: str = "none"  # when `reason` is None: what the victim does
    rule: str = ""  # where the expected reaction is written down (docs/protocol.md)
    default_count: int = 0  # 0: as many as the table needs for 100 points (else 1 message)
    connections: bool = False  # takes the `connections` param (many links at once)

    @property
    def points(self) -> int:
        return SCORES[self.reason] if self.reason else 0

    def count(self, given: int | None = None) -> int:
        """Messages to send: `given`, else the default, else enough to reach the threshold once."""
        if given:
            return given
        if self.default_count:
            return self.default_count
        if self.points > 0:
            return math.ceil(DISCOURAGEMENT_THRESHOLD / self.points) * self.every
        return 1


@dataclass(frozen=True)
class Expectation:
    behaviour: str
    policy: str
    messages: int  # messages the behaviour sends
    score: int  # points the victim should have charged when it acts (or after every message)
    outcome: str  # one of OUTCOMES
    after: int | None  # the message that triggers the outcome (None: no reaction, or not message-driven)
    reason: str | None
    rule: str


def expect(behaviour: Behaviour, policy: str, count: int | None = None) -> Expectation:
    """What a victim under `policy` does to a peer that runs `behaviour` for `count` messages,
    by replaying the node's own misbehaviour engine (the connection ends at the first action)."""
    if policy not in MISBEHAVIOUR_POLICIES:
        raise ValueError(f"misbehaviour policy must be one of {sorted(MISBEHAVIOUR_POLICIES)}, got {policy!r}")
    n = behaviour.count(count)
    if behaviour.reason is None:
        return Expectation(behaviour.name, policy, n, 0, behaviour.outcome, None, None, behaviour.rule)
    engine = Misbehaviour(policy)
    score = 0
    for i in range(1, n + 1):
        if i % behaviour.every:
            continue
        verdict = engine.record(0, behaviour.reason)
        score = verdict.score
        if verdict.action is not Action.NONE:
            return Expectation(behaviour.name, policy, n, score, _ACTION_OUTCOME[verdict.action], i,
                               behaviour.reason, behaviour.rule)
    return Expectation(behaviour.name, policy, n, score, "none", None, behaviour.reason, behaviour.rule)


_T = "protocol.md §3.2"
CATALOGUE: tuple[Behaviour, ...] = (
    Behaviour("pre-version-message", "ping before our version", RAW, "pre-version-message", rule=_T),
    Behaviour("duplicate-version", "a second version after the handshake", READY, "duplicate-version", rule=_T),
    Behaviour("pre-verack-message", "ping after version, before verack", VERSION_ONLY, "pre-verack-message", rule=_T),
    Behaviour("oversized-inv", "inv with 50,001 entries", READY, "inv-too-large", rule=_T),
    Behaviour("oversized-getdata", "getdata with 50,001 entries", READY, "getdata-too-large", rule=_T),
    Behaviour("oversized-addr", "addr with 1001 entries", READY, "addr-too-large", rule=_T),
    Behaviour("oversized-headers", "headers with 2001 entries", READY, "headers-too-large", rule=_T),
    Behaviour("non-continuous-headers", "two headers that do not chain", READY, "headers-non-continuous", rule=_T),
    Behaviour("unconnecting-headers", "a header on an unknown parent, again and again", READY,
              "headers-unconnecting", every=10, rule=_T),
    Behaviour("bad-pow-block", "a block whose hash is above its target", READY, "block-bad-pow", rule=_T),
    Behaviour("invalid-block", "a block with valid work and a wrong merkle root", READY, "block-invalid", rule=_T),
    Behaviour("tx-empty-vout", "a transaction without outputs", READY, "tx-empty-vin-vout", rule=_T),
    Behaviour("tx-oversize", "a transaction over 1,000,000 bytes", READY, "tx-oversize", rule=_T),
    Behaviour("tx-null-prevout", "a transaction spending a null prevout next to a real one", READY,
              "tx-null-prevout", rule=_T),
    Behaviour("bad-checksum", "ping frames with a wrong checksum", READY, outcome="none", rule="protocol.md §1.1",
              default_count=20),
    Behaviour("garbage", "random bytes instead of a frame", READY, outcome="disconnected", rule="protocol.md §1.1"),
    Behaviour("truncated-frame", "a frame header promising more payload than ever arrives", READY, outcome="none",
              rule="protocol.md §1.1 (the node waits for the rest)"),
    Behaviour("oversized-length", "a frame header declaring 4,000,001 bytes", READY, outcome="disconnected",
              rule="protocol.md §1.1"),
    Behaviour("unknown-command", "well-formed frames with a command nobody knows", READY, outcome="none",
              rule="protocol.md §1.1", default_count=20),
    Behaviour("unrequested-tx", "valid transactions nobody asked for", READY, outcome="none",
              rule="protocol.md §4 (served as a normal tx)", default_count=10),
    Behaviour("unrequested-block", "a valid block on genesis nobody asked for", READY, outcome="none",
              rule="protocol.md §4 (blocks are never held back)"),
    Behaviour("ping-flood", "pings as fast as the rate allows", READY, outcome="none",
              rule="protocol.md §1.4 (every ping is answered)", default_count=500),
    Behaviour("addr-flood", "1000-entry addr messages past the rate limit", READY, outcome="none",
              rule="protocol.md §2.3 (addresses over the token bucket are dropped)", default_count=20),
    Behaviour("connection-flood", "many inbound connections at once from the identity's address", READY,
              outcome="none", rule="protocol.md §2.1 (inbound slots and eviction)", connections=True),
    Behaviour("slow-handshake", "connects and never sends version", RAW, outcome="disconnected",
              rule="protocol.md §1.4 (version handshake timeout)"),
)
BEHAVIOURS: dict[str, Behaviour] = {b.name: b for b in CATALOGUE}


def behaviour(name: str) -> Behaviour:
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown spam behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")
    return BEHAVIOURS[name]
