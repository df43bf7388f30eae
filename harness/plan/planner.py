"""The planner: a pure function from (scenario, seed) to a Plan. No I/O, no clocks, no global RNG.

Every random choice (selector modes, workload sources, fixed seeds, bitcoind's peers, per-node RNG
seeds) draws from its own RNG derived from the seed and a label (`selectors.rng_for`), so the same
scenario and seed always give the same plan, and adding one fault does not reshuffle the others.

Planned addresses are protocol addresses: what addrman, netgroups, addr messages, bans and reports
see, wherever a node runs. They come from an `AddressAllocator`; `LoopbackAllocator` gives every
node its own 127.a.b.c, spread over as many /16 netgroups as the scenario asks, so netgroup defences
behave as on the real network. A backend maps planned addresses to reachable endpoints
(`Backend.transport_for`); it never re-addresses the plan.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from harness.scenario.actions import takes_duration
from harness.errors import ScenarioError
from harness.plan.chaos import bandwidth_configs, churn_events, region_configs
from harness.plan.model import CheckPlan, Endpoint, Event, NodePlan, Plan
from harness.scenario.attackers import plan_params, runnable, runs_as
from harness_node.timing import CORE_TIMERS
from harness.scenario.model import Network, Scenario
from harness.scenario.selectors import Member, Selector, pick, rng_for

P2P_PORT = 18444  # regtest's default port (reference §1.1)
CONTROL_PORT = 18445  # each node's HTTP control API and /metrics
DNS_PORT = 5353  # the seeder's DNS port (unprivileged; 53 needs root)
FIXED_SEEDS = 8  # like Core's fixed seeds: a few addresses to fall back on when DNS fails
BITCOIND_CONNECT = 8  # -connect peers per bitcoind (its 8 full-relay slots)


class AllocationError(ValueError):
    """The allocator cannot place the scenario's nodes (e.g. out of address space)."""


class AddressAllocator(Protocol):
    name: str

    def assign(self, scenario: Scenario, members: Sequence[Member]) -> dict[str, Endpoint]: ...

    def controller(self) -> str: ...

    def allowlist(self, endpoints: dict[str, Endpoint], members: Sequence[Member]) -> list[str]: ...


class LoopbackAllocator:
    """127.0.0.0/8 for the local backend: each node its own address, netgroups laid out on purpose.

    honest nodes   127.1-99.x.y   node i in /16 number 1 + i % 99 (neighbours in different groups)
    attackers      127.100-239.x.y  each attacker entry its own `netgroups` consecutive /16s
    bitcoind       127.240.x.y
    seeder         127.0.53.1 (DNS on 5353)      controller 127.0.0.1
    """

    name = "loopback"
    HONEST_GROUPS = range(1, 100)
    ATTACKER_GROUPS = range(100, 240)
    BITCOIND_GROUP = 240
    HOSTS_PER_GROUP = 256 * 254  # x.1-254 for every x

    def assign(self, scenario: Scenario, members: Sequence[Member]) -> dict[str, Endpoint]:
        endpoints: dict[str, Endpoint] = {}
        honest = [m for m in members if m.role == "honest"]
        for index, member in enumerate(honest):
            second = self.HONEST_GROUPS[index % len(self.HONEST_GROUPS)]
            endpoints[member.name] = self._endpoint(second, index // len(self.HONEST_GROUPS))
        for index, member in enumerate(m for m in members if m.role == "bitcoind"):
            endpoints[member.name] = self._endpoint(self.BITCOIND_GROUP, index)
        base = self.ATTACKER_GROUPS.start
        for attacker in scenario.attackers:
            if base + attacker.netgroups > self.ATTACKER_GROUPS.stop:
                raise AllocationError(f"the local backend has {len(self.ATTACKER_GROUPS)} /16 groups for attackers; "
                                      f"the attackers ask for more")
            for index in range(attacker.count):
                host = index // attacker.netgroups
                if host >= self.HOSTS_PER_GROUP:
                    raise AllocationError(f"attacker {attacker.label!r} has too many nodes per /16; raise its netgroups")
                endpoints[f"{attacker.label}-{index}"] = self._endpoint(base + index % attacker.netgroups, host)
            base += attacker.netgroups
        if any(m.role == "seeder" for m in members):
            endpoints["seeder"] = Endpoint(address="127.0.53.1", p2p_port=DNS_PORT, control_port=CONTROL_PORT)
        return endpoints

    def controller(self) -> str:
        return "127.0.0.1"

    def allowlist(self, endpoints: dict[str, Endpoint], members: Sequence[Member]) -> list[str]:
        # Whole /16s are handed out per netgroup, so the assigned networks are those /16s.
        peers = [endpoints[m.name].address for m in members if m.role != "seeder"]
        networks = {ipaddress.ip_network(f"{address}/16", strict=False) for address in peers}
        return [str(net) for net in ipaddress.collapse_addresses(sorted(networks))]

    def _endpoint(self, second: int, host: int) -> Endpoint:
        if host >= self.HOSTS_PER_GROUP:
            raise AllocationError("too many nodes for the local backend's address layout")
        return Endpoint(address=f"127.{second}.{host // 254}.{1 + host % 254}", p2p_port=P2P_PORT,
                        control_port=CONTROL_PORT)


def plan(scenario: Scenario, seed: int | None = None, allocator: AddressAllocator | None = None) -> Plan:
    """The concrete plan for `scenario` under `seed` (default: the scenario's own seed)."""
    seed = scenario.seed if seed is None else seed
    allocator = allocator or LoopbackAllocator()
    members = scenario.members()
    try:
        endpoints = allocator.assign(scenario, members)
    except AllocationError as exc:
        raise ScenarioError(str(exc), path=("attackers",)) from None
    allowlist = allocator.allowlist(endpoints, members)
    # once per plan, not per node: at 10,000 nodes a per-node scan of every member is 10^8 steps
    honest = [endpoints[m.name].p2p for m in members if m.role == "honest"]
    fixed_seeds = _sample(rng_for(seed, "fixed_seeds"), honest, FIXED_SEEDS)
    budgets = attacker_budgets(members, endpoints)
    nodes = [_node_plan(scenario, seed, m, members, endpoints, allowlist, honest, fixed_seeds, budgets) for m in members]
    _place_in_network(scenario, seed, members, endpoints, nodes)
    # The controller's port is the backend's choice (a free one locally); it records its URL in the run state.
    nodes.append(NodePlan(name="controller", role="controller", group=None, address=allocator.controller(),
                          p2p_port=0, control_port=0, config={}))
    return Plan(
        name=scenario.name,
        seed=seed,
        duration=scenario.duration,
        allocator=allocator.name,
        nodes=nodes,
        timeline=timeline(scenario, seed, members),
        checks=[_check_plan(check, index, members, seed) for index, check in enumerate(scenario.expect)],
        allowlist=allowlist,
        scenario=scenario.model_dump(mode="json", by_alias=True),
    )


# ---------------------------------------------------------------- node configuration


def _place_in_network(scenario: Scenario, seed: int, members: list[Member], endpoints: dict[str, Endpoint],
                      nodes: list[NodePlan]) -> None:
    """Regions and bandwidth caps (network.regions, network.bandwidth) into the P2P nodes' configs."""
    addresses = {m.name: endpoints[m.name].address for m in members}
    regions = region_configs(scenario.network.regions, members, addresses, seed)
    bandwidth = bandwidth_configs(scenario.network.bandwidth, members, seed)
    for node in nodes:
        if node.name in regions:
            node.config["regions"] = regions[node.name]
        if node.name in bandwidth:
            node.config["bandwidth"] = bandwidth[node.name]


def node_seed(seed: int, name: str) -> int:
    """Each node's own RNG seed (addrman key, nonces, trickle timers): stable per (seed, name)."""
    return int.from_bytes(hashlib.sha256(f"{seed}|node|{name}".encode()).digest()[:8], "big") >> 1


def group_settings(network: Network, group: str | None) -> dict[str, Any]:
    """The network's node settings with the group's overrides applied."""
    settings = {
        "relay_policy": network.relay_policy,
        "dandelion": network.dandelion.model_dump(),
        "outbound_full_relay": network.outbound_full_relay,
        "block_relay": network.block_relay,
        "max_connections": network.max_connections,
        "misbehaviour_policy": network.misbehaviour_policy,
        "bantime": network.bantime,
        "countermeasures": network.countermeasures.switches(),
        "latency": network.latency.model_dump(),
        "capture": network.capture,
    }
    spec = next((g for g in network.groups or [] if g.name == group), None)
    if spec is not None:
        for key in settings.keys() - {"countermeasures"}:
            value = getattr(spec, key)
            if value is not None:
                settings[key] = value.model_dump() if isinstance(value, BaseModel) else value
        if spec.countermeasures is not None:
            settings["countermeasures"] = spec.countermeasures.switches(settings["countermeasures"])
    return settings


def _node_plan(scenario: Scenario, seed: int, member: Member, members: list[Member],
               endpoints: dict[str, Endpoint], allowlist: list[str], honest: list[str],
               fixed_seeds: list[str], budgets: dict[str, list[str]]) -> NodePlan:
    endpoint = endpoints[member.name]
    common = {"name": member.name, "role": member.role, "listen": endpoint.address, "port": endpoint.p2p_port,
              "control_port": endpoint.control_port, "rng_seed": node_seed(seed, member.name),
              "magic": scenario.network.magic, "time_scale": scenario.network.time_scale}
    if member.role == "honest":
        # the node checks every DNS query against its allowlist: the planned seeder is in it
        node_allowlist = allowlist + _seeder_networks(scenario, endpoints)
        config = honest_node_config(scenario, member, endpoint, node_allowlist, _seeders(scenario, endpoints),
                                    fixed_seeds, node_seed(seed, member.name))
    elif member.role == "bitcoind":
        connect = _sample(rng_for(seed, "bitcoind", member.name), honest, BITCOIND_CONNECT)
        config = {**common, "connect": connect, "args": _bitcoind_args(endpoint, connect),
                  # captured from the outside on the local backend (docs/capture.md); no group: the network's
                  "capture": scenario.network.capture, "capture_max_bytes": scenario.network.capture_max_bytes}
    elif member.role == "attacker":
        attacker = next(a for a in scenario.attackers if a.label == member.group)
        if runnable(attacker.kind) and runs_as(attacker.kind) == "node":  # passive: our node software
            config = passive_attacker_config(scenario, member, endpoint, allowlist, attacker.kind,
                                             node_seed(seed, member.name))
        else:  # an attacker process identity (or a kind with no implementation yet: `harness run` refuses it)
            index = scenario.attackers.index(attacker)
            targets = pick(attacker.targets, members, rng_for(seed, "attackers", index, "targets"))
            config = {**common, "kind": attacker.kind, "group": member.group,
                      "params": attacker.params.model_dump(mode="json"),
                      "targets": [t.name for t in targets], "target_addresses": [endpoints[t.name].p2p for t in targets],
                      "netgroup_bits": scenario.network.netgroup_bits,
                      "attack": attack_identity(member, endpoint, attacker.kind,
                                                plan_params(attacker.kind, attacker.params, _identity_index(member.name),
                                                            budgets.get(attacker.label, ())),
                                                [(t.name, endpoints[t.name].p2p) for t in targets])}
    else:  # seeder: only what backends.node_config.seeder_config translates (its address and ports are the NodePlan's)
        seeder = scenario.seeder
        config = {"magic": scenario.network.magic, "time_scale": scenario.network.time_scale, "zone": seeder.zone, "ttl": seeder.ttl, "mode": seeder.mode,
                  "params": seeder.params.model_dump(mode="json"), "honest": honest,
                  "attackers": [endpoints[m.name].p2p for m in members if m.role == "attacker"]}
    return NodePlan(name=member.name, role=member.role, group=member.group, address=endpoint.address,
                    p2p_port=endpoint.p2p_port, control_port=endpoint.control_port, config=config)


def honest_node_config(scenario: Scenario, member: Member, endpoint: Endpoint, allowlist: list[str],
                       seeders: list[str], fixed_seeds: list[str], rng_seed: int) -> dict[str, Any]:
    """An honest node's configuration, in the node's own vocabulary (harness_node.config.NodeConfig),
    so every backend hands it to `harness-node` unchanged."""
    return p2p_node_config(scenario, member.name, member.group, endpoint, allowlist, rng_seed,
                           seeders=seeders, fixed_seeds=fixed_seeds,
                           extra={"role": member.role, "group": member.group})


def passive_attacker_config(scenario: Scenario, member: Member, endpoint: Endpoint, allowlist: list[str],
                            kind: str, rng_seed: int) -> dict[str, Any]:
    """A passive attacker (sybil, eclipse until the attack issue): our node software on the
    attacker's address with the network's settings, listening and answering the protocol but never
    dialling out: no outbound or block-relay slots, no feelers, no seeds, no -connect."""
    config = p2p_node_config(scenario, member.name, None, endpoint, allowlist, rng_seed, seeders=[], fixed_seeds=[],
                             extra={"role": "attacker", "kind": kind, "group": member.group})
    peering = config["peering"]
    peering.update(outbound_full_relay=0, block_relay=0)
    peering["countermeasures"]["feelers"] = False
    return config


def attack_identity(member: Member, endpoint: Endpoint, kind: str, params: dict[str, Any],
                    targets: list[tuple[str, str]]) -> dict[str, Any]:
    """One identity of an attacker process, in its vocabulary (harness_node.attack.config
    .AttackerSpec): its planned address and control port, its targets' planned addresses and names."""
    return {"name": member.name, "group": member.group, "kind": kind, "address": endpoint.address, "port": endpoint.p2p_port,
            "control_port": endpoint.control_port, "targets": [address for _, address in targets],
            "target_names": [name for name, _ in targets], "params": params}


def attacker_budgets(members: list[Member], endpoints: dict[str, Endpoint]) -> dict[str, list[str]]:
    """Attacker entry label -> every identity's planned "ip:port" (its address budget), built once per
    plan: a per-identity scan of the members would be quadratic."""
    budgets: dict[str, list[str]] = {}
    for m in members:
        if m.role == "attacker" and m.group is not None:
            budgets.setdefault(m.group, []).append(endpoints[m.name].p2p)
    return budgets


def _identity_index(name: str) -> int:
    """k of an attacker identity named <label>-k."""
    return int(name.rsplit("-", 1)[1])


def p2p_node_config(scenario: Scenario, name: str, group: str | None, endpoint: Endpoint, allowlist: list[str],
                    rng_seed: int, *, seeders: list[str], fixed_seeds: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """A node's configuration in the node's vocabulary, with the settings of honest group `group`
    (None: the network's own settings)."""
    network = scenario.network
    g = group_settings(network, group)
    latency = g["latency"]
    return {
        "name": name, "bind": endpoint.address, "port": endpoint.p2p_port,
        "control_port": endpoint.control_port, "magic": network.magic, "time_scale": network.time_scale,
        "seed": rng_seed, "relay_policy": g["relay_policy"],
        "dandelion": {k: v for k, v in g["dandelion"].items() if k not in ("epoch", "embargo")},
        "misbehaviour_policy": g["misbehaviour_policy"],
        "allowlist": allowlist, "connect": [],
        # the scenario's bantime and Dandelion epoch are Core time; timer overrides are wall seconds
        "timers": {"bantime": g["bantime"] * network.time_scale,
                   **_dandelion_timers(g["dandelion"], network.time_scale)},
        "link": {"delay_ms": 1000.0 * latency["delay"], "jitter_ms": 1000.0 * latency["jitter"],
                 "loss": latency["loss"]},
        "peering": {
            "outbound_full_relay": g["outbound_full_relay"], "block_relay": g["block_relay"],
            "max_connections": g["max_connections"], "netgroup_bits": network.netgroup_bits,
            "all_routable": network.all_routable, "seeders": seeders, "fixed_seeds": fixed_seeds,
            "self_advertise_in_ibd": network.self_advertise_in_ibd,
            "countermeasures": g["countermeasures"],
        },
        "capture": g["capture"], "capture_max_bytes": network.capture_max_bytes,
        "extra": extra,
    }


def _dandelion_timers(dandelion: dict[str, Any], time_scale: float) -> dict[str, float]:
    """The scenario's Dandelion epoch and embargo as wall-seconds timer overrides, only those it
    changed (the node scales BIP 156's own values itself)."""
    return {f"dandelion_{key}": dandelion[key] * time_scale for key in ("epoch", "embargo")
            if dandelion[key] != CORE_TIMERS[f"dandelion_{key}"]}


def _seeders(scenario: Scenario, endpoints: dict[str, Endpoint]) -> list[str]:
    """DNS seeds as the node takes them: "zone@ip:port"."""
    if not scenario.seeder.enabled:
        return []
    seeder = endpoints["seeder"]
    return [f"{scenario.seeder.zone}@{seeder.address}:{seeder.p2p_port}"]


def _seeder_networks(scenario: Scenario, endpoints: dict[str, Endpoint]) -> list[str]:
    """The seeder's own address as a /32 (/128): a node may query it, not dial the rest of its network."""
    if not scenario.seeder.enabled:
        return []
    address = ipaddress.ip_address(endpoints["seeder"].address)
    return [f"{address}/{address.max_prefixlen}"]


def _bitcoind_args(endpoint: Endpoint, connect: list[str]) -> list[str]:
    # Reference §1.4 and testbed adaptation 2: it only reaches us by -connect, and speaks v1.
    return ["-regtest", "-listen=1", f"-bind={endpoint.address}:{endpoint.p2p_port}", "-v2transport=0",
            "-dnsseed=0", "-fixedseeds=0", f"-rpcbind={endpoint.address}", f"-rpcport={endpoint.control_port}",
            f"-rpcallowip={endpoint.address}/32", *(f"-connect={peer}" for peer in connect)]


def _sample(rng, items: list[str], most: int) -> list[str]:
    picked = set(rng.sample(items, min(most, len(items))))
    return [item for item in items if item in picked]  # in the items' order (one pass, not index() each)


# ---------------------------------------------------------------- timeline and checks


def timeline(scenario: Scenario, seed: int, members: list[Member]) -> list[Event]:
    """Faults and workload as concrete events, ordered by time (ties: faults first, in file order)."""
    events: list[Event] = []
    for index, fault in enumerate(scenario.faults):
        nodes = [m.name for m in pick(fault.target, members, rng_for(seed, "faults", index))]
        params = _resolve(fault.params, members, seed, ("faults", index))
        source = f"faults[{index}]"
        if fault.action == "churn":  # expanded here, so the seed fixes who leaves when
            events += churn_events(index, fault.at, fault.duration or 0.0, nodes, params, seed)
            continue
        if fault.duration is not None and takes_duration(fault.action):
            events.append(Event(at=fault.at, action=fault.action, nodes=nodes, params=params, phase="begin", source=source))
            events.append(Event(at=_t(fault.at + fault.duration), action=fault.action, nodes=nodes, params=params,
                                phase="end", source=source))
        else:
            events.append(Event(at=fault.at, action=fault.action, nodes=nodes, params=params, source=source))
    events += _workload(scenario, seed, members)
    order = {id(event): position for position, event in enumerate(events)}
    return sorted(events, key=lambda event: (event.at, order[id(event)]))


def _workload(scenario: Scenario, seed: int, members: list[Member]) -> list[Event]:
    work = scenario.workload
    start, stop = work.start, scenario.workload_stop
    if not work.tx_rate and not work.block_interval:
        return []
    sources = [m.name for m in pick(work.sources, members, rng_for(seed, "workload", "from"))]
    events = []
    if work.tx_rate:
        chooser = rng_for(seed, "workload", "tx")
        count = math.ceil((stop - start) * work.tx_rate - 1e-9)
        for k in range(count):
            events.append(Event(at=_t(start + k / work.tx_rate), action="inject_tx", nodes=[chooser.choice(sources)],
                                params={"count": 1}, source="workload.tx"))
    if work.block_interval:
        chooser = rng_for(seed, "workload", "block")
        k = 1
        while start + k * work.block_interval <= stop + 1e-9:
            events.append(Event(at=_t(start + k * work.block_interval), action="inject_block",
                                nodes=[chooser.choice(sources)], params={"count": 1}, source="workload.block"))
            k += 1
    return events


def _check_plan(check: BaseModel, index: int, members: list[Member], seed: int) -> CheckPlan:
    params = _resolve(check, members, seed, ("expect", index))
    del params["check"]
    return CheckPlan(check=check.check, params=params, source=f"expect[{index}]")


def _resolve(model: BaseModel, members: list[Member], seed: int, labels: tuple) -> dict[str, Any]:
    """The model as JSON data, each Selector field replaced by the node names it picks."""
    data = model.model_dump(mode="json", by_alias=True)
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, Selector):
            data[info.alias or name] = [m.name for m in pick(value, members, rng_for(seed, *labels, name))]
        elif isinstance(value, list) and value and all(isinstance(v, Selector) for v in value):  # partition groups
            data[info.alias or name] = [[m.name for m in pick(v, members, rng_for(seed, *labels, name, i))]
                                        for i, v in enumerate(value)]
    return data


def _t(seconds: float) -> float:
    return round(seconds, 6)  # microseconds: keeps 10 + 1/3 s readable and the JSON stable


def plan_file(path: str | Path, seed: int | None = None) -> Plan:
    """Load and validate a scenario file and plan it: the full validation (planning resolves every
    selector). ScenarioError (exit 2) names the file, the field and what is allowed."""
    from harness.scenario import load_scenario

    return plan(load_scenario(Path(path)), seed)
