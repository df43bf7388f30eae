"""The plan -> the harness chart's values (helm/harness/values.yaml documents the data model).

Pure: the same plan and options always give the same values, so `harness render` output can be
diffed and committed (GitOps). One release per testnet: honest nodes are grouped by their planned
group (one StatefulSet each), attackers by their attacker label, the seeder and the controller are
one Deployment each. Nodes keep their planned protocol address (``address``); where they are
reachable (pod DNS names) is layout.py's business.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.k8s.layout import (Placement, ValuesError, attacks_of, dns_label, groups_of, namespace_for,
                                         node_transport, pod_layout, release_name, transport_table)
from harness.backends.base import RunState
from harness.plan.model import ATTACKER, BITCOIND, NodePlan, Plan

SEEDER_DNS_PORT = 5353
SEEDER_CONTROL_PORT = 8053
CONTROLLER_PORT = 9100
# kind's and minikube's default service CIDR is 10.96.0.0/12 (kube-dns takes 10.96.0.10): the
# seeder's Service gets a fixed address there so node configs can name it before anything runs.
DEFAULT_SEEDER_SERVICE_IP = "10.96.0.53"
DEFAULT_IMAGE = "harness-node:latest"
DEFAULT_BITCOIND_IMAGE = "harness-bitcoind:latest"  # the node image + the binary (`harness image build --bitcoind`)
# Keys of a node's config the chart owns (where it listens and keeps data) or that never go into a
# ConfigMap (the token: it comes from the Secret's file).
CHART_OWNED = ("name", "bind", "port", "control_bind", "control_port", "datadir", "control_token")
SEEDER_CHART_OWNED = ("dns_host", "dns_port", "control_host", "control_port", "control_token")
SEEDER_FILE = "seeder.json"  # the key of the chart's ConfigMap <release>-seeder
# An attacker identity's keys the chart owns: where it dials from and serves its control site.
ATTACK_CHART_OWNED = ("bind", "control_bind", "control_port")
# A bitcoind supervisor's keys the chart owns: the binary in the image, its data, where it listens,
# and the token (the Secret's file).
BITCOIND_CHART_OWNED = ("binary", "datadir", "address", "port", "rpc_port", "control_port", "control_token")


@dataclass(frozen=True)
class ValuesOptions:
    """What the k8s backend and `harness render` let a user choose beyond the plan."""

    nodes_per_pod: int | None = None  # None: the scenario's deploy.nodes_per_container, else 1
    image: str = DEFAULT_IMAGE
    controller_image: str = DEFAULT_IMAGE  # the image with harness + harness_node (harness image build)
    seeder_service_ip: str = DEFAULT_SEEDER_SERVICE_IP
    bitcoind_image: str = DEFAULT_BITCOIND_IMAGE  # the image of bitcoind members' pods
    monitoring: dict[str, Any] = field(default_factory=dict)  # merged into values["monitoring"]

    def __post_init__(self) -> None:
        if self.nodes_per_pod is not None and self.nodes_per_pod < 1:
            raise ValuesError(f"--nodes-per-pod: {self.nodes_per_pod} is not allowed; at least 1")

    @classmethod
    def given(cls, nodes_per_pod: int | None = None, image: str | None = None) -> "ValuesOptions":
        """From command-line options: one --image names the nodes' and the controller's image."""
        return cls(nodes_per_pod=nodes_per_pod, **({"image": image, "controller_image": image} if image else {}))

    def for_plan(self, plan: Plan) -> "ValuesOptions":
        """With the packing decided: the option, else the scenario's `deploy.nodes_per_container`
        (the container backends' one packing setting), else 1."""
        if self.nodes_per_pod is not None:
            return self
        deploy = plan.scenario.get("deploy") or {}
        return dataclasses.replace(self, nodes_per_pod=int(deploy.get("nodes_per_container") or 1))


def split_image(image: str) -> dict[str, str]:
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # "registry:5000/img" has no tag
        return {"repository": image, "tag": "latest", "pullPolicy": "IfNotPresent"}
    return {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}


def run_state(plan: Plan, run_id: str, options: ValuesOptions | None = None, *, kube_context: str | None = None,
              kubeconfig: str | None = None, created_at: float = 0.0) -> RunState:
    """The run's state as the k8s backend records it, without a token: every node's and the
    seeder's in-cluster endpoints, and the backend's record (release, namespace, packing, pods).
    The same state goes to the in-cluster controller (chart value controller.state)."""
    options = (options or ValuesOptions()).for_plan(plan)
    release, namespace = release_name(run_id), namespace_for(run_id)
    layout = pod_layout(plan, release, namespace, options.nodes_per_pod)
    endpoints = {name: {"p2p": p.p2p, "control_url": p.control_url} for name, p in layout.items()}
    if plan.seeder:
        endpoints[plan.seeder.name] = {"p2p": f"{options.seeder_service_ip}:53",
                                       "control_url": f"http://{release}-seeder.{namespace}.svc:{SEEDER_CONTROL_PORT}"}
    return RunState(scenario=plan.name, backend="k8s", plan_digest=plan.digest, run_id=run_id, created_at=created_at,
                    endpoints=endpoints, started_nodes=list(layout),
                    controller_url=f"http://{release}-controller.{namespace}.svc:{CONTROLLER_PORT}",
                    backend_state={"release": release, "namespace": namespace, "kube_context": kube_context,
                                   "kubeconfig": kubeconfig, "nodes_per_pod": options.nodes_per_pod, "chaos": [],
                                   "pods": sorted({p.pod for p in layout.values()}), "controller": False})


def chart_values(plan: Plan, run_id: str, options: ValuesOptions | None = None, token: str | None = None,
                 controller_state: RunState | None = None) -> dict[str, Any]:
    """The chart's values for ``plan`` as run ``run_id``. ``token``: put in the chart's own Secret
    (`harness render` leaves it out: the values then name an existing Secret `<release>-token`
    the installer creates); never in a ConfigMap. ``controller_state``: run the controller in the
    cluster with this state (its token stripped); None: no controller (`harness run` plays the
    timeline itself)."""
    options = (options or ValuesOptions()).for_plan(plan)
    release, namespace = release_name(run_id), namespace_for(run_id)
    layout = pod_layout(plan, release, namespace, options.nodes_per_pod)
    transport = node_transport(plan, layout, options.seeder_service_ip)
    image = split_image(options.image)
    values: dict[str, Any] = {
        "run": run_id,
        "image": image,
        "nodesPerPod": options.nodes_per_pod,
        "groups": [],
        "attackers": [],
        "attacks": [_attack(name, kind, identities, layout) for name, kind, identities in attacks_of(plan)],
        "bitcoinds": [],
        "bitcoindImage": split_image(options.bitcoind_image),
        # Rendered without a token, the release expects a Secret <release>-token made by whoever installs it.
        "transport": transport_table(plan, layout),
        "controlToken": {"value": token} if token else {"existingSecret": f"{release}-token"},
    }
    for name, role, kind, members in groups_of(plan):
        if role == BITCOIND:
            values["bitcoinds"].append(_bitcoinds(name, members, layout))
            continue
        group: dict[str, Any] = {"name": name, "members": [_member(n, layout, transport) for n in members]}
        if role == ATTACKER:
            group["kind"] = dns_label(kind or "attacker")
            values["attackers"].append(group)
        else:
            values["groups"].append(group)
    values["seeder"] = _seeder(plan, options)
    values["controller"] = {"enabled": controller_state is not None, "image": split_image(options.controller_image),
                            "port": CONTROLLER_PORT, "plan": plan.to_json(indent=None)}
    if controller_state is not None:
        shipped = RunState.from_dict({**controller_state.to_dict(), "control_token": None})
        values["controller"]["state"] = json.dumps(shipped.to_dict(), sort_keys=True)
    if options.monitoring:
        values["monitoring"] = options.monitoring
    return values


def _member(node: NodePlan, layout: dict[str, Any], transport: dict[str, dict[str, Any]]) -> dict[str, Any]:
    place = layout[node.name]
    config = {k: v for k, v in node.config.items() if k not in CHART_OWNED}
    config.update(transport[node.name])
    config["address"] = node.address  # its protocol address, whatever IP the pod gets (NodeConfig.address)
    return {"name": node.name, "address": node.address, "port": place.port, "controlPort": place.control_port,
            "config": config}


def _attack(name: str, kind: str, identities: list[NodePlan], layout: dict[str, Placement]) -> dict[str, Any]:
    """One attacker entry: a StatefulSet running `harness-node attack`, identity i alone in pod i.
    ``targetPods``: the pods it may dial (its NetworkPolicy); ``listen``/``port``: the identities
    accept dials there (the pod's P2P port, its Service's); the process-wide settings come from
    the first identity, as attack_process_config takes them."""
    first = identities[0].config
    targets = sorted({layout[t].pod for node in identities for t in node.config["attack"].get("target_names", [])
                      if t in layout})
    place = layout[identities[0].name]
    # `listen`: the identities accept the victims' dials on `port` (their planned one; one rule per
    # entry, since `listens` depends on the entry's params only)
    return {"name": name, "kind": dns_label(kind), "magic": first["magic"], "timeScale": first["time_scale"],
            "controlPort": place.control_port, "listen": place.listens, "port": place.port, "targetPods": targets,
            "identities": [{"name": n.name, "address": n.address,
                            "config": {k: v for k, v in n.config["attack"].items() if k not in ATTACK_CHART_OWNED}}
                           for n in identities]}


def _bitcoinds(name: str, members: list[NodePlan], layout: dict[str, Placement]) -> dict[str, Any]:
    """One entry of bitcoind members: the supervisor's config as the local backend writes it (one
    translation: backends/local/bitcoind.member_config), without what the chart owns. Its `connect`
    keeps planned addresses: the supervisor places them with the transport table at start."""
    from harness.backends.local.bitcoind import member_config

    captured = [n.name for n in members if n.config.get("capture")]
    if captured:  # the supervisor captures from the outside, off the host's loopback: local backend only
        raise ValuesError(f"plan node {captured[0]}: the scenario's network.capture: true also captures the bitcoind "
                          f"members' messages, which works on the local backend only (docs/capture.md); allowed "
                          f"on k8s: network.capture: false (capture light nodes with groups[i].capture)")
    place = layout[members[0].name]
    return {"name": name, "port": place.port, "controlPort": place.control_port,
            "members": [{"name": n.name, "address": n.address,
                         "config": {k: v for k, v in dict(member_config(n, "", "", ""), capture_interface="").items()
                                    if k not in BITCOIND_CHART_OWNED}}
                        for n in members]}


def _seeder(plan: Plan, options: ValuesOptions) -> dict[str, Any]:
    spec = plan.seeder
    if spec is None:
        return {"enabled": False}
    return {"enabled": True, "address": spec.address, "serviceIP": options.seeder_service_ip,
            "dnsPort": SEEDER_DNS_PORT, "controlPort": SEEDER_CONTROL_PORT, "config": seeder_values_config(spec)}


def seeder_values_config(spec: NodePlan, rogue_addresses: Sequence[str] | None = None) -> dict[str, Any]:
    """The seeder's config as the chart takes it (without what the chart owns): the planned honest
    seeder, or with ``rogue_addresses`` a rogue one serving only them (`replace_seeder`)."""
    from harness.backends.node_config import rogue_seeder_config, seeder_config  # the one translation of the seeder's vocabulary

    made = seeder_config(spec, token="") if rogue_addresses is None else rogue_seeder_config(spec, "", list(rogue_addresses))
    config = {k: v for k, v in made.items() if k not in SEEDER_CHART_OWNED}
    # The crawler dials planned addresses and has no transport table: on Kubernetes the seeder
    # serves the planned nodes as known-good instead of crawling them (docs/kubernetes.md, Addresses).
    # (A rogue seeder has no crawler and its attackers as static nodes already.)
    if rogue_addresses is None:
        config.update(crawl=False, static_nodes=list(config.get("seeds", [])))
    return config

