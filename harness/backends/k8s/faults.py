"""Chaos Mesh objects for a run's faults (pure builders; cluster.py creates and deletes them).

Chaos Mesh acts on whole pods, so these are used only when a node is alone in its pod
(``nodes_per_pod: 1``); in a packed pod the node's own emulation (its control API's link model)
acts on the one node instead. Object names are DNS-1123 and start with the run id, so `down`
finds them by name and by the run's labels.
"""

from __future__ import annotations

import hashlib
from typing import Any

from harness.backends.k8s.cluster import CHAOS_GROUP, CHAOS_VERSION

API_VERSION = f"{CHAOS_GROUP}/{CHAOS_VERSION}"


def chaos_name(run_id: str, action: str, pods: list[str], other: list[str] | None = None) -> str:
    """Stable per (action, pods): the same fault's begin and end name the same object."""
    digest = hashlib.sha256("|".join([action, *sorted(pods), "/", *sorted(other or [])]).encode()).hexdigest()[:10]
    return f"h-{run_id}-{action.replace('_', '-')}-{digest}"[:63]


def _selector(namespace: str, pods: list[str]) -> dict[str, Any]:
    return {"pods": {namespace: sorted(pods)}}


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def network_chaos(run_id: str, namespace: str, labels: dict[str, str], action: str, pods: list[str], *,
                  delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0,
                  other: list[str] | None = None) -> dict[str, Any]:
    """A NetworkChaos: ``action`` is "partition" (between ``pods`` and ``other``, both ways),
    "delay" or "loss" (on ``pods``' traffic, direction to)."""
    spec: dict[str, Any] = {"action": action, "mode": "all", "selector": _selector(namespace, pods)}
    if action == "partition":
        if not other:
            raise ValueError("a partition needs pods on the other side")
        spec.update(direction="both", target={"mode": "all", "selector": _selector(namespace, other)})
    elif action == "delay":
        spec.update(direction="to", delay={"latency": f"{delay_ms:g}ms", "jitter": f"{jitter_ms:g}ms", "correlation": "0"})
    elif action == "loss":
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss {loss} is not a fraction between 0 and 1")
        spec.update(direction="to", loss={"loss": f"{100.0 * loss:g}", "correlation": "0"})
    else:
        raise ValueError(f"NetworkChaos action {action!r}: allowed partition, delay, loss")
    return {"apiVersion": API_VERSION, "kind": "NetworkChaos",
            "metadata": _meta(chaos_name(run_id, action, pods, other), namespace, labels), "spec": spec}


def pod_pause(run_id: str, namespace: str, labels: dict[str, str], pods: list[str]) -> dict[str, Any]:
    """A PodChaos pod-failure: the pods' containers are replaced by a pause image until the object
    is deleted (the node's pause: it neither reads nor writes, its connections hang)."""
    return {"apiVersion": API_VERSION, "kind": "PodChaos",
            "metadata": _meta(chaos_name(run_id, "pause", pods), namespace, labels),
            "spec": {"action": "pod-failure", "mode": "all", "selector": _selector(namespace, pods)}}
