"""The transport table read from a file (Kubernetes: the ConfigMap `<release>-transport`, mounted
as transport.json next to the pod's own config and named in a node config's `extra.transport`).

The table names stable pod DNS names because pod IPs are known only at run time:
`endpoints` {planned IP: "<name>:<port>"} and `inbound_hosts` {"<name>": [planned IPs]}. At host
start the names are resolved (waiting while pods are still being scheduled, up to a deadline) into
the IP-only `endpoints` and `inbound_hosts` a NodeConfig takes. Names still unresolved at the
deadline are left out: the node then cannot dial those planned addresses, as if they were down.
"""

from __future__ import annotations

import json
import pathlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RESOLVE_DEADLINE_SECONDS = 120.0  # pods of a large testnet are scheduled over tens of seconds
RESOLVE_RETRY_SECONDS = 1.0
RESOLVE_THREADS = 32


def read_transport_file(path: str | pathlib.Path) -> dict[str, Any]:
    """The table; ValueError naming the file when it is unreadable or not the expected shape."""
    p = pathlib.Path(path)
    try:
        table = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"transport file {p}: {e}") from None
    if not isinstance(table, dict) or not isinstance(table.get("endpoints", {}), dict) \
            or not isinstance(table.get("inbound_hosts", {}), dict):
        raise ValueError(f"transport file {p}: expected {{\"endpoints\": {{...}}, \"inbound_hosts\": {{...}}}}")
    return table


def _lookup(name: str) -> str | None:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


def resolve_names(names: set[str], deadline: float = RESOLVE_DEADLINE_SECONDS) -> dict[str, str]:
    """name -> IP for every name that resolves before ``deadline`` seconds have passed."""
    resolved: dict[str, str] = {}
    end = time.monotonic() + deadline
    with ThreadPoolExecutor(max_workers=RESOLVE_THREADS) as pool:
        while True:
            pending = sorted(names - resolved.keys())
            for name, ip in zip(pending, pool.map(_lookup, pending)):
                if ip is not None:
                    resolved[name] = ip
            if len(resolved) == len(names) or time.monotonic() >= end:
                return resolved
            time.sleep(RESOLVE_RETRY_SECONDS)  # a pod not scheduled yet has no DNS record


def resolve_table(table: dict[str, Any], deadline: float = RESOLVE_DEADLINE_SECONDS) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(endpoints, inbound_hosts, unresolved names) with every name replaced by its IP."""
    endpoints_in: dict[str, str] = table.get("endpoints", {})
    inbound_in: dict[str, list[str]] = table.get("inbound_hosts", {})
    names = {ep.rpartition(":")[0] for ep in endpoints_in.values()} | set(inbound_in)
    ips = resolve_names(names, deadline)
    endpoints = {planned: f"{ips[host]}:{port}" for planned, ep in endpoints_in.items()
                 for host, _, port in [ep.rpartition(":")] if host in ips}
    inbound: dict[str, list[str]] = {}
    for host, planned in inbound_in.items():
        if host in ips:
            inbound.setdefault(ips[host], []).extend(planned)
    return endpoints, inbound, sorted(names - ips.keys())
