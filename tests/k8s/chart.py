"""Render the harness chart with Helm's real engine (helm-python-sdk: Helm's Go SDK as a shared
library inside the wheel, so no `helm` binary and no download) and build values for it.

The Kubernetes backend will generate values from a plan; until it lands, `make_values` builds the
same data model by hand: groups of members with planned addresses, ports and node configs.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "harness"
TOKEN = "test-token-0123456789abcdef"
P2P_PORT = 18444  # regtest
CONTROL_PORT = 18445
# The manifests kinds the chart may emit that Kubernetes does not define itself (CRDs).
CRD_KINDS = {"ServiceMonitor"}


def need(module: str) -> ModuleType:
    """Import a real part the tests need; skip without it, but fail with CI=true (CI must have it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is required with CI=true: pip install -e '.[k8s]' ({e})")
        pytest.skip(f"{module} is not installed (pip install -e '.[k8s]')")


def member(i: int, slot: int = 0, netgroups: int = 250) -> dict[str, Any]:
    """Node i: a planned address spread over /16 netgroups, its pod slot's ports, a node config
    shaped like the planner's (docs/node.md)."""
    return {
        "name": f"node-{i}",
        "address": f"10.{1 + i % netgroups}.{(i // netgroups) % 250}.{1 + i // (netgroups * 250)}",
        "port": P2P_PORT + 2 * slot,
        "controlPort": CONTROL_PORT + 2 * slot,
        "config": {
            "relay_policy": "diffusion",
            "time_scale": 0.05,
            "seed": 1000 + i,
            "allowlist": ["10.0.0.0/8"],
            "peering": {"seeders": ["seed.testnet.@10.96.0.53:53"], "netgroup_bits": 16},
            "extra": {"role": "honest"},
        },
    }


def group(name: str, first: int, count: int, nodes_per_pod: int = 1) -> dict[str, Any]:
    return {"name": name, "nodesPerPod": nodes_per_pod,
            "members": [member(i, slot=(i - first) % nodes_per_pod) for i in range(first, first + count)]}


def make_values(nodes: int = 12, nodes_per_pod: int = 1, attackers: int = 0, **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "run": "quickstart-1",
        "controlToken": {"value": TOKEN},
        "groups": [group("honest", 0, nodes, nodes_per_pod)],
        "seeder": {"address": "10.0.53.1", "serviceIP": "10.96.0.53",
                   "config": {"zone": "seed.testnet.", "seeds": ["10.1.0.1:18444"], "allowlist": ["10.0.0.0/8"]}},
        "controller": {"plan": '{"name": "quickstart"}'},
    }
    if attackers:
        atk = group("eclipse", nodes, attackers)
        atk["kind"] = "eclipse"
        for m in atk["members"]:
            m["config"]["extra"] = {"role": "attacker", "kind": "eclipse"}
        values["attackers"] = [atk]
    values.update(over)
    return values


def spam_attack(name: str = "spam", identities: int = 2, targets: tuple[str, ...] = ("qs-honest-0",)) -> dict[str, Any]:
    """An active attacker entry (chart value `attacks`) shaped like the backend's: identity i of
    `name` at a planned address of its own /16, spamming node-0 and node-1."""
    return {"name": name, "kind": "spam", "magic": "fabfb5da", "timeScale": 0.2, "controlPort": CONTROL_PORT,
            "targetPods": list(targets),
            "identities": [{"name": f"{name}-{i}", "address": f"10.{100 + i}.0.1",
                            "config": {"kind": "spam", "group": name, "port": P2P_PORT,
                                       "targets": ["10.1.0.1:18444", "10.2.0.1:18444"], "target_names": ["node-0", "node-1"],
                                       "params": {"behaviours": [{"behaviour": "oversized-inv", "rate": 10}]}}}
                           for i in range(identities)]}


def render(values: dict[str, Any], release: str = "qs", namespace: str = "harness-qs") -> list[dict[str, Any]]:
    """Every object the chart renders for these values, in template order."""
    helm = need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def render_error(values: dict[str, Any]) -> str:
    """The message Helm refuses these values with (schema or template `fail`)."""
    helm = need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmError) as info:
            chart.render(values, name="qs", namespace="harness-qs", is_install=True)
    return str(info.value)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]
