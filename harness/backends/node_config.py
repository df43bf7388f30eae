"""Adapter: the planner's per-node config dict -> the dict `harness-node host` / `harness-node seeder`
load (harness_node.config.NodeConfig, harness_node.seeder.config.SeederConfig).

The one place that knows both vocabularies. The planner writes scenario terms (``listen`` address,
``latency`` in seconds, ``rng_seed``, ``bantime`` in Core time); the node wants its own field names.
Settings the node has no field for yet go to NodeConfig.extra, where later node components read
them, so nothing the scenario said is silently dropped. Every backend uses this (a container runs
`harness-node run --config` with the same dict).
"""

from __future__ import annotations

from typing import Any

from harness.plan_view import NodeSpec, SeederSpec

# planner key -> NodeConfig field, same meaning and unit
_NODE_SAME = ("name", "port", "control_port", "magic", "time_scale", "connect", "relay_policy",
              "misbehaviour_policy", "allowlist")


def node_config(spec: NodeSpec, datadir: str, token: str) -> dict[str, Any]:
    plan = dict(spec.config)
    out: dict[str, Any] = {k: plan.pop(k) for k in _NODE_SAME if k in plan}
    out["bind"] = plan.pop("listen", spec.address)
    out["port"], out["control_port"] = spec.port, spec.control_port
    if "rng_seed" in plan:
        out["seed"] = plan.pop("rng_seed")
    latency = plan.pop("latency", None)
    if latency:
        out["link"] = {"delay_ms": 1000.0 * latency.get("delay", 0.0), "jitter_ms": 1000.0 * latency.get("jitter", 0.0),
                       "loss": latency.get("loss", 0.0)}
    if "bantime" in plan:
        # The scenario's bantime is Core time; NodeConfig.timers overrides are wall seconds.
        out["timers"] = {"bantime": plan.pop("bantime") * out.get("time_scale", 1.0)}
    out["datadir"], out["control_token"] = datadir, token
    out["extra"] = plan  # role, group, outbound_full_relay, countermeasures, seeders, fixed_seeds, kind...
    return out


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


def seeder_config(spec: SeederSpec, token: str) -> dict[str, Any]:
    plan = dict(spec.config)
    out: dict[str, Any] = {k: plan[k] for k in ("zone", "ttl", "mode", "magic", "time_scale") if k in plan}
    out.update(dns_host=spec.address, dns_port=spec.port, control_host=spec.address, control_port=spec.control_port,
               control_token=token, seeds=list(plan.get("honest") or []),
               mode_params=seeder_mode_params(plan.get("mode", "honest"), dict(plan.get("params") or {}),
                                              list(plan.get("attackers") or [])))
    return out
