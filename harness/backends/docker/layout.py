"""Where each planned member lives on Docker: which container, which IP in the run's subnet, which
ports, and the transport tables the nodes need. Pure (no engine), so it is tested without Docker.

Planned (protocol) addresses are 127.a.b.c; a Docker network cannot hold 127/8, so every container
gets an IP of the run's own subnet and the nodes are told how to reach a planned address
(``endpoints``) and which planned addresses an inbound connection from a container IP may claim
(``inbound_hosts``). Addrman, netgroups, bans and reports keep the planned addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.backends.node_config import attack_process_config, is_attack_identity
from harness.plan.model import BITCOIND, NodePlan, Plan

# Candidate subnets: /20s (4,094 addresses) inside 10.128.0.0/9, starting at one derived from the
# run id, so two runs on one engine rarely try the same first and never share one (Docker refuses
# an overlapping pool; the backend then tries the next).
SUBNET_POOL = ipaddress.ip_network("10.128.0.0/9")
SUBNET_PREFIX = 20
SUBNET_TRIES = 16
# Ports inside a container hosting several nodes (one IP): node k listens on these + k.
PACKED_P2P_BASE = 20000
PACKED_CONTROL_BASE = 40000
CONTAINER_HOSTS_FIRST = 2  # .1 is the bridge's gateway


@dataclass
class ContainerSpec:
    """One container of the run: ``kind`` node (hosting ``nodes``), bitcoind (one bitcoind member,
    never packed: its own image and process), attacker (one identity) or seeder."""

    member: str  # the member name `members()`/`logs()` use: the node's or attack identity's name, pack-<k>, or seeder
    kind: str  # node | bitcoind | attacker (one `harness-node attack` identity) | seeder
    ip: str
    nodes: list[str] = field(default_factory=list)
    # node -> [p2p port, control port] inside this container
    ports: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Layout:
    subnet: str
    containers: list[ContainerSpec]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Layout":
        return cls(data["subnet"], [ContainerSpec(**c) for c in data["containers"]])

    def container_of(self, node: str) -> ContainerSpec:
        for c in self.containers:
            if node in c.nodes or (c.kind == "seeder" and c.member == node):
                return c
        raise KeyError(node)

    def endpoint(self, node: str) -> tuple[str, int, int]:
        """(container ip, p2p port, control port) of a planned node or the seeder."""
        c = self.container_of(node)
        p2p, control = c.ports[node]
        return c.ip, p2p, control


def subnet_candidates(run_id: str, tries: int = SUBNET_TRIES) -> list[str]:
    """The subnets to try for run ``run_id``, in order."""
    count = 2 ** (SUBNET_PREFIX - SUBNET_POOL.prefixlen)
    first = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:4], "big") % count
    size = 2 ** (32 - SUBNET_PREFIX)
    base = int(SUBNET_POOL.network_address)
    return [str(ipaddress.ip_network((base + ((first + k) % count) * size, SUBNET_PREFIX))) for k in range(tries)]


def layout(plan: Plan, subnet: str, nodes_per_container: int = 1) -> Layout:
    """Every peer in a container of its own (``nodes_per_container`` 1, the default: its planned
    ports) or packed ``nodes_per_container`` to a container (ports PACKED_*_BASE + k); the seeder
    in its own. IPs from the subnet's host .2 on, in plan order: the same plan and subnet always
    give the same layout."""
    if nodes_per_container < 1:
        raise ValueError("nodes_per_container must be at least 1")
    net = ipaddress.ip_network(subnet)
    peers = [n for n in plan.peers() if n.role != BITCOIND and not is_attack_identity(n)]
    bitcoinds = [n for n in plan.peers() if n.role == BITCOIND]
    attackers = [n for n in plan.peers() if is_attack_identity(n)]
    groups = [peers[i:i + nodes_per_container] for i in range(0, len(peers), nodes_per_container)]
    needed = len(groups) + len(bitcoinds) + len(attackers) + (1 if plan.seeder else 0)
    if needed > net.num_addresses - CONTAINER_HOSTS_FIRST - 1:
        raise ValueError(f"{needed} containers do not fit in {subnet}")
    ips = (str(net.network_address + CONTAINER_HOSTS_FIRST + k) for k in range(needed))
    containers = []
    for k, group in enumerate(groups):
        ip = next(ips)
        if nodes_per_container == 1:
            node = group[0]
            containers.append(ContainerSpec(node.name, "node", ip, [node.name], {node.name: [node.p2p_port, node.control_port]}))
        else:
            ports = {n.name: [PACKED_P2P_BASE + i, PACKED_CONTROL_BASE + i] for i, n in enumerate(group)}
            containers.append(ContainerSpec(f"pack-{k}", "node", ip, [n.name for n in group], ports))
    for b in bitcoinds:
        containers.append(ContainerSpec(b.name, "bitcoind", next(ips), [b.name], {b.name: [b.p2p_port, b.control_port]}))
    for node in attackers:
        # each active identity alone (even when nodes are packed): with an IP of its own a victim
        # attributes it from its first byte, before any version could name it (pre-version spam)
        containers.append(ContainerSpec(node.name, "attacker", next(ips), [node.name],
                                        {node.name: [node.p2p_port, node.control_port]}))
    if plan.seeder:
        s = plan.seeder
        containers.append(ContainerSpec(s.name, "seeder", next(ips), [], {s.name: [s.p2p_port, s.control_port]}))
    return Layout(subnet, containers)


def endpoints_table(plan: Plan, lay: Layout) -> dict[str, str]:
    """planned ip -> "container ip:port" for every peer (the seeder's DNS is reached by its own
    seed spec, rewritten in `node_transport`)."""
    return {n.address: f"{lay.endpoint(n.name)[0]}:{lay.endpoint(n.name)[1]}" for n in plan.peers()}


def inbound_table(plan: Plan, lay: Layout) -> dict[str, list[str]]:
    """container ip -> the planned addresses of the nodes it hosts; the seeder's container is the
    seeder's address (its crawler dials from there, as it dials from 127.0.53.1 locally)."""
    by_name = {n.name: n for n in plan.peers()}
    table = {c.ip: [by_name[n].address for n in c.nodes] for c in lay.containers if c.kind in ("node", "bitcoind", "attacker")}
    table.update({c.ip: [plan.seeder.address] for c in lay.containers if c.kind == "seeder" and plan.seeder})
    return table


def transport(plan: Plan, lay: Layout) -> dict[str, dict[str, Any]]:
    """Backend.transport_for: the same two tables for every node (each node needs to reach all)."""
    tables = {"endpoints": endpoints_table(plan, lay), "inbound_hosts": inbound_table(plan, lay)}
    return {n.name: tables for n in plan.peers()}


def container_node_config(base: dict[str, Any], spec: NodePlan, plan: Plan, lay: Layout) -> dict[str, Any]:
    """A node's config (node_config's output) placed in its container: it listens on the container
    IP and its container ports, keeps its planned address as its identity, may dial the run's
    subnet, and asks the seeder at the seeder container's IP."""
    ip, p2p, control = lay.endpoint(spec.name)
    out = dict(base, bind=ip, port=p2p, control_bind=ip, control_port=control, address=spec.address)
    out["allowlist"] = [*base.get("allowlist", ["127.0.0.0/8"]), lay.subnet]
    if plan.seeder:
        seeder_ip = lay.endpoint(plan.seeder.name)[0]
        peering = dict(out.get("peering") or {})
        if peering.get("seeders"):
            peering["seeders"] = [_reseat_seed(s, plan.seeder.address, seeder_ip) for s in peering["seeders"]]
        out["peering"] = peering
    return out


def container_attack_config(plan: Plan, lay: Layout, name: str, token: str) -> dict[str, Any]:
    """The `harness-node attack` config of identity ``name`` placed in its container: it dials from,
    and serves its control API on, the container IP; its version names its planned address
    (addr_from), and the victims' inbound_hosts attribute the container IP to it."""
    ip, _, control = lay.endpoint(name)
    base = attack_process_config([plan.node(name)], token, transport(plan, lay))
    return dict(base, attackers=[dict(a, bind=ip, control_bind=ip, control_port=control) for a in base["attackers"]])


def _reseat_seed(spec: str, planned: str, actual: str) -> str:
    """`zone@ip:port` with the planned seeder ip replaced by its container ip."""
    zone, at, rest = spec.rpartition("@")
    host, colon, port = rest.rpartition(":")
    if host == planned:
        rest = f"{actual}{colon}{port}"
    return f"{zone}{at}{rest}"
