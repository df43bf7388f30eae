"""The observation model: raw observations collected from nodes (gathered in ``Observations``),
check results, and the ``Report`` that holds them.

These are plain, immutable dataclasses with no I/O, so that the figures (``harness.analysis.figures``) and the
writers (``harness.report``) can be built and tested without a running network. The controller
fills them in from what the nodes report; every constructor validates its fields and raises
``ReportInputError`` naming the bad one.

Times are seconds since the Unix epoch (float), as the nodes' clocks report them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError

ITEM_KINDS = ("tx", "block")
EDGE_DIRECTIONS = ("outbound", "inbound")
# Roles the peer-graph plot knows a colour for; any other role is drawn grey.
NODE_ROLES = ("honest", "attacker", "seeder")


class ReportInputError(HarnessError, ValueError):
    """An observation or check result given to the report is inconsistent (the message names it)."""


def _require_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ReportInputError(f"{name} must be a finite number of seconds, got {value!r}")


def _require_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ReportInputError(f"{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True)
class ItemObservation:
    """One injected tx or block: where and when it started, and when each honest node first saw it.

    ``first_seen`` maps honest node name -> first-seen time, or None if that node never saw it.
    Honest nodes missing from the mapping count as never having seen it; ``honest_node_count`` is
    the denominator of every share. ``origin_honest`` says whether ``origin_node`` is one of the
    honest nodes (an attacker or an external wallet can inject too); if it is, the origin counts as
    having the item at ``origin_time``.
    """

    kind: str
    item_id: str
    origin_time: float
    origin_node: str
    first_seen: Mapping[str, float | None]
    honest_node_count: int
    origin_honest: bool = True
    # First sightings at observed members that are not honest light nodes (real bitcoinds): shown
    # per member in the report, never counted in the honest shares above.
    members_seen: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ITEM_KINDS:
            raise ReportInputError(f"item kind must be one of {ITEM_KINDS}, got {self.kind!r}")
        _require_text("item_id", self.item_id)
        _require_text(f"origin_node of {self.item_id}", self.origin_node)
        _require_finite(f"origin_time of {self.item_id}", self.origin_time)
        for node, seen in self.first_seen.items():
            if seen is not None:
                _require_finite(f"first_seen[{node!r}] of {self.item_id}", seen)
        known = set(self.first_seen) | ({self.origin_node} if self.origin_honest else set())
        count = self.honest_node_count
        if not isinstance(count, int) or count < max(1, len(known)):
            raise ReportInputError(
                f"honest_node_count of {self.item_id} is {self.honest_node_count!r} but "
                f"{len(known)} distinct honest nodes are named (and it must be at least 1)"
            )


@dataclass(frozen=True)
class BanEvent:
    """An honest node banned (or discouraged) an address.

    ``banned_node`` is the harness name of the banned peer when the controller could map the address
    to one, else None. ``banned_is_attacker`` is False for a false positive: an honest node banned.
    """

    time: float
    banning_node: str
    banned_address: str
    reason: str
    banned_is_attacker: bool
    banned_node: str | None = None
    first_misbehaviour: float | None = None  # when the banning node first scored the peer, if it says

    def __post_init__(self) -> None:
        _require_finite("ban time", self.time)
        _require_text("banning_node", self.banning_node)
        _require_text("banned_address", self.banned_address)
        _require_text("ban reason", self.reason)


@dataclass(frozen=True)
class AttackerStart:
    """An attacker and when it started attacking; ``addresses`` are the ones it connects from."""

    name: str
    start_time: float
    addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require_text("attacker name", self.name)
        _require_finite(f"start_time of attacker {self.name}", self.start_time)


@dataclass(frozen=True)
class SpamRun:
    """One spam behaviour run by one attacker identity against one honest node: the reaction the
    node's misbehaviour table predicts next to the one the node showed.

    Outcomes: banned, discouraged, disconnected (closed, no ban), none (the link stayed).
    ``reacted_at``: when the node acted (its misbehaviour log, or the attacker saw the close).
    ``target_kind``: ``light`` (our node: the table is its own rule) or ``bitcoind`` (a real bitcoind
    member: the table is our node's rule, its reaction comes from its RPC, docs/bitcoind.md)."""

    attacker: str
    behaviour: str
    target: str
    policy: str
    expected_score: int
    expected_outcome: str
    observed_score: int
    observed_outcome: str
    started_at: float | None = None
    reacted_at: float | None = None
    messages_sent: int = 0
    error: str | None = None
    target_kind: str = "light"

    @property
    def seconds_to_react(self) -> float | None:
        if self.started_at is None or self.reacted_at is None:
            return None
        return max(0.0, self.reacted_at - self.started_at)

    @property
    def as_expected(self) -> bool:
        return (self.error is None and self.observed_score == self.expected_score
                and self.observed_outcome == self.expected_outcome)


@dataclass(frozen=True)
class PrivacyScore:
    """One source estimator's score against the run's spy (harness/analysis/privacy.py) over the
    transactions of the honest nodes running `relay_policy` ("all": every honest node).
    ``spy_share``: p = spy_nodes / (spy_nodes + honest_nodes), the spy's identities over all honest
    nodes and spy identities. ``per_node``: honest node -> {sent, named, correct, precision, recall}."""

    estimator: str
    relay_policy: str
    spy_share: float
    spy_nodes: int
    honest_nodes: int
    transactions: int
    guessed: int
    correct: int
    precision: float
    recall: float
    precision_micro: float
    per_node: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeLoad:
    """What receiving cost an honest node over the run (its node metrics); ``attacked``: a spam target."""

    node: str
    processing_seconds: float
    bytes_in: int
    attacked: bool


@dataclass(frozen=True)
class OutboundSample:
    """A victim's outbound peers at one moment: how many in total, how many held by attackers."""

    time: float
    outbound_total: int
    outbound_attacker: int

    def __post_init__(self) -> None:
        _require_finite("outbound sample time", self.time)
        if not (0 <= self.outbound_attacker <= self.outbound_total):
            raise ReportInputError(
                f"outbound sample at {self.time}: need 0 <= outbound_attacker ({self.outbound_attacker}) "
                f"<= outbound_total ({self.outbound_total})"
            )


@dataclass(frozen=True)
class VictimSeries:
    """The outbound-peer time series of one eclipse victim (any order; figures sort by time)."""

    victim: str
    samples: Sequence[OutboundSample]

    def __post_init__(self) -> None:
        _require_text("victim", self.victim)


@dataclass(frozen=True)
class PeerEdge:
    """A connection as ``a`` sees it: ``direction`` "outbound" means ``a`` dialled ``b``."""

    a: str
    b: str
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in EDGE_DIRECTIONS:
            raise ReportInputError(
                f"edge {self.a}-{self.b}: direction must be one of {EDGE_DIRECTIONS}, got {self.direction!r}"
            )

    @property
    def initiator(self) -> str:
        return self.a if self.direction == "outbound" else self.b

    @property
    def acceptor(self) -> str:
        return self.b if self.direction == "outbound" else self.a


@dataclass(frozen=True)
class PeerGraph:
    """Who is connected to whom at the end of the run, and each node's role (honest/attacker/seeder)."""

    edges: Sequence[PeerEdge] = ()
    roles: Mapping[str, str] = field(default_factory=dict)


class CheckVerdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # the check could not be evaluated (missing data, a crash): neither pass nor fail


@dataclass(frozen=True)
class CheckResult:
    """One evaluated check: its measured ``value`` against ``bound`` (e.g. "<= 5"), and the verdict."""

    name: str
    description: str
    value: float | int | bool | str | None
    bound: float | int | str | None
    verdict: CheckVerdict
    unit: str = ""
    details: str = ""

    def __post_init__(self) -> None:
        _require_text("check name", self.name)
        try:
            object.__setattr__(self, "verdict", CheckVerdict(self.verdict))
        except ValueError:
            raise ReportInputError(
                f"check {self.name}: verdict must be one of {[v.value for v in CheckVerdict]}, got {self.verdict!r}"
            ) from None


@dataclass(frozen=True)
class LagSample:
    """One worker's event-loop lag as one poll saw it (quantiles over the worker's last minute)."""

    time: float  # epoch seconds of the poll
    worker: str
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class Report:
    """Everything a run report shows. The figures are computed from the raw observations on writing."""

    scenario: str
    seed: int
    plan_digest: str
    backend: str
    node_count: int
    started_at: float
    ended_at: float
    checks: Sequence[CheckResult] = ()
    items: Sequence[ItemObservation] = ()
    bans: Sequence[BanEvent] = ()
    attackers: Sequence[AttackerStart] = ()
    victims: Sequence[VictimSeries] = ()
    graph: PeerGraph = field(default_factory=PeerGraph)
    loop_lag: Sequence[LagSample] = ()
    smallest_delay: float | None = None  # seconds: the smallest one-way delay the plan emulates
    spam: Sequence[SpamRun] = ()
    load: Sequence[NodeLoad] = ()
    privacy: Sequence[PrivacyScore] = ()
    # failed check name -> {victim node: its message-capture directory}, only nodes that have one
    captures: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_text("scenario name", self.scenario)
        _require_finite("started_at", self.started_at)
        _require_finite("ended_at", self.ended_at)
        if self.ended_at < self.started_at:
            raise ReportInputError(f"ended_at ({self.ended_at}) is before started_at ({self.started_at})")
        names = [c.name for c in self.checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ReportInputError(f"check names must be unique; repeated: {duplicates}")

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at

    @property
    def verdict(self) -> CheckVerdict:
        """The run's verdict: error if any check errored, else fail if any failed, else pass."""
        verdicts = {c.verdict for c in self.checks}
        if CheckVerdict.ERROR in verdicts:
            return CheckVerdict.ERROR
        if CheckVerdict.FAIL in verdicts:
            return CheckVerdict.FAIL
        return CheckVerdict.PASS

    def count(self, verdict: CheckVerdict) -> int:
        return sum(1 for c in self.checks if c.verdict is verdict)


@dataclass
class Observations:
    """Everything the report and the checks need, in this module's types."""

    started_at: float
    ended_at: float
    items: list[ItemObservation] = field(default_factory=list)
    bans: list[BanEvent] = field(default_factory=list)
    attackers: list[AttackerStart] = field(default_factory=list)
    victims: list[VictimSeries] = field(default_factory=list)
    graph: PeerGraph = field(default_factory=PeerGraph)
    outbound_at_end: dict[str, int] = field(default_factory=dict)  # honest node -> outbound peers
    unreachable: list[str] = field(default_factory=list)  # nodes that did not answer the last poll
    # victim -> table ("new", "tried") -> (slots holding an attacker address, occupied slots), last poll
    victim_tables: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    loop_lag: list[LagSample] = field(default_factory=list)  # per poll and worker (docs/chaos.md)
    spam: list[SpamRun] = field(default_factory=list)
    load: list[NodeLoad] = field(default_factory=list)
    privacy: list[PrivacyScore] = field(default_factory=list)  # a spy's scores: on the full observation only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Observations":
        return cls(
            started_at=d["started_at"], ended_at=d["ended_at"],
            items=[ItemObservation(**i) for i in d.get("items", [])],
            bans=[BanEvent(**b) for b in d.get("bans", [])],
            attackers=[AttackerStart(a["name"], a["start_time"], tuple(a.get("addresses", ()))) for a in d.get("attackers", [])],
            victims=[VictimSeries(v["victim"], [OutboundSample(**s) for s in v["samples"]]) for v in d.get("victims", [])],
            graph=PeerGraph([PeerEdge(**e) for e in d.get("graph", {}).get("edges", [])], dict(d.get("graph", {}).get("roles", {}))),
            outbound_at_end=dict(d.get("outbound_at_end", {})),
            unreachable=list(d.get("unreachable", [])),
            victim_tables={v: {t: (int(c[0]), int(c[1])) for t, c in tables.items()}
                           for v, tables in d.get("victim_tables", {}).items()},
            loop_lag=[LagSample(**x) for x in d.get("loop_lag", [])],
            spam=[SpamRun(**r) for r in d.get("spam", [])],
            load=[NodeLoad(**x) for x in d.get("load", [])],
            privacy=[PrivacyScore(**x) for x in d.get("privacy", [])],
        )
