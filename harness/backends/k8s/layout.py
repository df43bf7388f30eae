"""Where a planned node lives in the cluster and how its peers reach it.

Every node keeps its planned protocol address (what addrman, netgroups, addr messages, bans and
reports see). On Kubernetes a node is reachable at its pod, whose IP is known only once the pod
runs, but whose DNS name is stable: `<pod>.<statefulset>.<namespace>.svc` (the headless Service
publishes it even before the pod is ready). Slot k of a packed pod listens on its own port pair.

So the one table of a release (chart value ``transport``, a ConfigMap every node pod mounts as
transport.json next to its own config) names pods, not IPs:

- ``endpoints``: planned IP -> "<pod dns name>:<port>" (where to dial a planned address);
- ``inbound_hosts``: "<pod dns name>" -> [planned IPs of the nodes packed in that pod] (which
  planned addresses an inbound connection from that pod may claim; the dialler names itself in
  its version message's addr_from, docs/protocol.md §1.4).

The node resolves the names when it dials and when it accepts (pod IPs change when a pod is
deleted and recreated); so do an attacker process (`--transport`) and a bitcoind member's
supervisor (`harness-node bitcoind --transport`: bitcoind itself cannot read the table). One table, not one per node: per-node copies would grow with the square of
the nodes. NodeConfig's own ``endpoints``/``inbound_hosts`` take IPs only, so the node config names
the file in ``extra.transport`` (docs/kubernetes.md, "Addresses").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re

from harness.backends.node_config import is_attack_identity
from harness.errors import HarnessError
from harness.plan.model import ATTACKER, BITCOIND, HONEST, NodePlan, Plan
from harness.scenario.attackers import listens, runnable, runnable_kinds

# Ports inside a pod: slot k of a packed pod listens on P2P_PORT + 2k and controls on +1. Each pod
# has its own network namespace, so every pod uses the same small set of ports.
P2P_PORT = 18444
CONTROL_PORT = 18445
TRANSPORT_FILE = "transport.json"  # the chart's ConfigMap <release>-transport, beside each pod's config
GROUP_NAME_MAX = 20  # the chart's limit: <release (<= 31)>-<group> fits a StatefulSet name (52)


class ValuesError(HarnessError):
    """The plan cannot be placed on Kubernetes as asked (a role the chart has no place for, names
    that collide once made DNS labels, a bad option)."""


def release_name(run_id: str) -> str:
    """The Helm release of a run: starts with a letter, at most 31 characters (the chart's rule)."""
    return f"harness-{run_id}"[:31]


def namespace_for(run_id: str) -> str:
    return f"harness-{run_id}"


def dns_label(name: str) -> str:
    """A planned group or attacker label as a chart group name (a DNS label of <= 20 characters)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:GROUP_NAME_MAX].strip("-")
    if not label or not label[0].isalpha():
        label = f"g{label}"[:GROUP_NAME_MAX]
    return label


def groups_of(plan: Plan) -> list[tuple[str, str, str, list[NodePlan]]]:
    """(chart group name, role, attacker kind, members) in plan order: honest groups first, then
    passive attackers (nodes running our node software), then bitcoind members. Active attacker
    identities are `attacks_of`'s. Refuses roles the chart cannot run and labels that collide as
    DNS labels."""
    return _grouped(plan)[0]


def attacks_of(plan: Plan) -> list[tuple[str, str, list[NodePlan]]]:
    """(chart attack name, kind, identities) per attacker entry whose identities run in a
    `harness-node attack` process (runs_as="attacker"), in plan order."""
    return _grouped(plan)[1]


def _grouped(plan: Plan) -> tuple[list[tuple[str, str, str, list[NodePlan]]], list[tuple[str, str, list[NodePlan]]]]:
    out: dict[tuple[str, str], list[NodePlan]] = {}
    for node in plan.peers():
        if node.role not in (HONEST, ATTACKER, BITCOIND):
            raise ValuesError(f"plan node {node.name}: role {node.role!r} cannot run on the k8s backend "
                              f"(allowed: honest, attacker, bitcoind); use --backend local")
        if is_attack_identity(node) and not runnable(str(node.config["attack"].get("kind"))):
            raise ValuesError(f"plan node {node.name}: attacker kind {node.config['attack'].get('kind')!r} has no "
                              f"implementation yet (runnable kinds: {', '.join(runnable_kinds())})")
        role = "attack" if is_attack_identity(node) else node.role
        out.setdefault((role, node.group or node.role), []).append(node)
    seen: dict[str, str] = {}
    groups, attacks = [], []
    for role in (HONEST, ATTACKER, BITCOIND, "attack"):
        for (r, planned), members in out.items():
            if r != role:
                continue
            name = dns_label(planned)
            if name in seen:
                raise ValuesError(f"groups {seen[name]!r} and {planned!r} both become the Kubernetes name {name!r}; "
                                  f"rename one in the scenario (DNS labels: a-z, 0-9, '-', {GROUP_NAME_MAX} characters)")
            seen[name] = planned
            if role == "attack":
                attacks.append((name, str(members[0].config["attack"]["kind"]), members))
                continue
            kind = str(members[0].config.get("extra", {}).get("kind", "")) if role == ATTACKER else ""
            groups.append((name, role, kind, members))
    return groups, attacks


@dataclass(frozen=True)
class Placement:
    """One node's place: its pod, its slot in the pod, its ports there, and the pod's DNS name."""

    pod: str
    statefulset: str
    slot: int
    port: int
    control_port: int
    host: str  # <pod>.<statefulset>.<namespace>.svc
    listens: bool = True  # False: an attacker identity that only dials (nobody dials it)
    attack: bool = False  # a `harness-node attack` identity (no NodeConfig: values.py writes its attack config)
    bitcoind: bool = False  # a bitcoind member (no NodeConfig: values.py writes its supervisor's config)

    @property
    def p2p(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"


def pod_layout(plan: Plan, release: str, namespace: str, nodes_per_pod: int) -> dict[str, Placement]:
    """node name -> Placement, as the chart packs them (pod i of group g hosts members[i*N:(i+1)*N]).
    An active attacker identity is alone in pod i of its attack's StatefulSet (identity i), slot
    0: its own pod IP is its own transport address, so a victim charges a misbehaviour, even one
    before `version`, to the right planned address. An identity that accepts the victims' dials
    (`attackers.listens`: bootstrap; eclipse and spy unless `listen: false`) listens on its
    planned port in its pod, and the transport table sends a dial of its planned address there,
    exactly as for a node."""
    layout: dict[str, Placement] = {}
    for group, role, _kind, members in groups_of(plan):
        sts = f"{release}-{group}"
        per_pod = 1 if role == BITCOIND else nodes_per_pod  # a bitcoind is one process with one address: alone
        for i, node in enumerate(members):
            pod, slot = f"{sts}-{i // per_pod}", i % per_pod
            layout[node.name] = Placement(pod=pod, statefulset=sts, slot=slot, port=P2P_PORT + 2 * slot,
                                          control_port=CONTROL_PORT + 2 * slot, host=f"{pod}.{sts}.{namespace}.svc",
                                          bitcoind=role == BITCOIND)
    for attack, kind, identities in attacks_of(plan):
        sts = f"{release}-{attack}"
        for i, node in enumerate(identities):
            pod, params = f"{sts}-{i}", node.config["attack"].get("params") or {}
            # its own config's `port` (the planned one) is where the identity listens in its pod
            layout[node.name] = Placement(pod=pod, statefulset=sts, slot=0, port=node.p2p_port, control_port=CONTROL_PORT,
                                          host=f"{pod}.{sts}.{namespace}.svc", listens=listens(kind, params), attack=True)
    return layout


def transport_table(plan: Plan, layout: dict[str, Placement]) -> dict[str, dict[str, Any]]:
    """The release's one table (chart value ``transport``): ``endpoints`` (members that listen,
    listening attacker identities too) and ``inbound_hosts`` (every member, attacker identities
    too: how victims attribute them)."""
    endpoints = {plan.node(name).address: place.p2p for name, place in layout.items() if place.listens}
    inbound: dict[str, list[str]] = {}
    for name, place in layout.items():
        inbound.setdefault(place.host, []).append(plan.node(name).address)
    return {"endpoints": endpoints, "inbound_hosts": inbound}


def node_transport(plan: Plan, layout: dict[str, Placement], seeder_ip: str | None = None) -> dict[str, dict[str, Any]]:
    """Per node, what its config gets beyond the plan's: ``extra.address`` (its planned address),
    ``extra.transport`` (the file holding the release's table, next to its own config) and, when
    the seeder's Service has a fixed IP, ``peering.seeders`` pointing there instead of the planned
    seeder address."""
    out: dict[str, dict[str, Any]] = {}
    for name, place in layout.items():
        if place.attack or place.bitcoind:
            continue  # they take no NodeConfig (values.py writes their attack or supervisor config)
        node = plan.node(name)
        fields: dict[str, Any] = {"extra": {**node.config.get("extra", {}), "address": node.address,
                                            "transport": TRANSPORT_FILE}}
        peering = node.config.get("peering")
        if seeder_ip and peering and peering.get("seeders"):
            fields["peering"] = {**peering, "seeders": [_reseat(s, seeder_ip) for s in peering["seeders"]]}
        out[name] = fields
    return out


def _reseat(seeder: str, ip: str) -> str:
    """"zone@planned-ip:53" -> "zone@service-ip:53" (the Service answers DNS on 53)."""
    zone, _, _where = seeder.rpartition("@")
    return f"{zone}@{ip}:53"
