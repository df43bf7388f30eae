"""What every backend adds to the planner's configs before handing them to `harness-node`.

The planner already writes an honest node's config in the node's own vocabulary
(harness_node.config.NodeConfig); a backend only owns where data lives and the control token.
The seeder's config is translated here, the one place that knows both vocabularies.
"""

from __future__ import annotations

from typing import Any

from harness.plan.model import NodePlan


def node_config(spec: NodePlan, datadir: str, token: str, transport: dict[str, Any] | None = None) -> dict[str, Any]:
    """``transport``: the backend's `endpoints`/`inbound_hosts` for this node (Backend.transport_for);
    none means the node is reachable at its planned address, the node's default."""
    return {**spec.config, **(transport or {}), "datadir": datadir, "control_token": token}


# seeder mode -> {seeder's param name: scenario's SeederParams name}; modes not listed take none
_MODE_PARAMS = {"poison": {"addresses": "addresses"}, "mixed": {"addresses": "addresses", "fraction": "attacker_fraction"},
                "stale": {"addresses": "addresses"}, "slow": {"delay": "delay"}}


def seeder_mode_params(mode: str, params: dict[str, Any], attackers: list[str]) -> dict[str, Any]:
    """The scenario's seeder params -> the ones the seeder's ``mode`` takes (it rejects others).
    poison and mixed serve the attackers' addresses unless the scenario names some."""
    out = {ours: params[theirs] for ours, theirs in _MODE_PARAMS.get(mode, {}).items() if params.get(theirs) is not None}
    if mode in ("poison", "mixed") and not out.get("addresses"):
        out["addresses"] = [a.rsplit(":", 1)[0] for a in attackers]
    return out


def crawl_concurrency(honest: int) -> int:
    """The seeder's crawl workers for a testnet of `honest` nodes: its default 16 below 320 nodes,
    one per 20 above (500 for the largest, 10,000). A worker is held for a handshake only (testbed
    adaptation 10), which takes up to a second while thousands of nodes start on a few cores."""
    return max(16, honest // 20)


# Testbed adaptation 13 (docs/protocol.md): a testnet's seeder answers once this share of the nodes it
# has tried answered (or its warm-up ran out), so that its first answers are not only the nodes of
# the host that started first
SEEDER_WARMUP_SHARE = 0.9


def seeder_config(spec: NodePlan, token: str) -> dict[str, Any]:
    plan = dict(spec.config)
    out: dict[str, Any] = {k: plan[k] for k in ("zone", "ttl", "mode", "magic", "time_scale") if k in plan}
    seeds = list(plan.get("honest") or [])
    out.update(dns_host=spec.address, dns_port=spec.p2p_port, control_host=spec.address, control_port=spec.control_port,
               control_token=token, seeds=seeds, concurrency=crawl_concurrency(len(seeds)),
               warmup_share=SEEDER_WARMUP_SHARE,
               mode_params=seeder_mode_params(plan.get("mode", "honest"), dict(plan.get("params") or {}),
                                              list(plan.get("attackers") or [])))
    return out


def rogue_seeder_config(spec: NodePlan, token: str, addresses: list[str]) -> dict[str, Any]:
    """A rogue seeder taking over the honest one's address and ports (issue "Private DNS seeder",
    part 3): no crawler, the attackers' ``addresses`` (IPs) as its only nodes, answering in mode
    poison, so every answer names only them."""
    if not addresses:
        raise ValueError("a rogue seeder needs at least one address to serve: the run has no attacker nodes "
                         "and the action gives no params.addresses")
    out = seeder_config(spec, token)
    out.update(crawl=False, seeds=[], static_nodes=list(addresses), mode="poison",
               mode_params={"addresses": list(addresses)})
    return out


def is_attack_identity(spec: NodePlan) -> bool:
    """An active attacker identity, run by a `harness-node attack` process rather than a node host."""
    return spec.role == "attacker" and "attack" in spec.config


def attack_process_config(specs: list[NodePlan], token: str,
                          transports: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The config of one `harness-node attack` process hosting the identities `specs`
    (harness_node.attack.config.AttackConfig). ``transports``: Backend.transport_for per identity;
    their `endpoints` maps (planned target ip -> where to dial) are merged, as for nodes."""
    if not specs:
        raise ValueError("an attacker process needs at least one identity")
    endpoints: dict[str, str] = {}
    for spec in specs:
        endpoints.update((transports or {}).get(spec.name, {}).get("endpoints", {}))
    first = specs[0].config
    return {"magic": first["magic"], "time_scale": first["time_scale"], "control_token": token,
            "endpoints": endpoints, "attackers": [dict(spec.config["attack"]) for spec in specs]}
