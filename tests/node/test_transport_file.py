"""The Kubernetes transport table on real loopback sockets: a host config whose nodes name
`extra.transport`, a transport.json beside it (as the chart mounts them), resolved at host start
into the IP tables the node uses, and two nodes that then know each other only by their planned
addresses. Names resolve through the system resolver: "localhost", and IP literals standing for
pod names (getaddrinfo takes both the same way; pod DNS names need a cluster)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from conftest import next_ip

from harness_node.cli import host_configs
from harness_node.host import Host
from harness_node.transportfile import read_transport_file, resolve_table

import pytest

PLANNED = f"127.251.{os.getpid() % 250}"  # planned addresses nobody binds
PORT = 18444


def test_names_resolve_and_unresolvable_ones_are_left_out() -> None:
    table = {"endpoints": {"10.1.0.1": "localhost:18444", "10.2.0.1": "no-such-pod.invalid:18444"},
             "inbound_hosts": {"localhost": ["10.1.0.1", "10.3.0.1"], "no-such-pod.invalid": ["10.2.0.1"]}}
    endpoints, inbound, missing = resolve_table(table, deadline=0.0)
    assert endpoints == {"10.1.0.1": "127.0.0.1:18444"}
    assert inbound == {"127.0.0.1": ["10.1.0.1", "10.3.0.1"]}
    assert missing == ["no-such-pod.invalid"]


def test_a_bad_transport_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "transport.json").write_text('{"endpoints": []}')
    with pytest.raises(ValueError, match="transport file .*transport.json"):
        read_transport_file(tmp_path / "transport.json")


def test_nodes_find_each_other_through_the_resolved_table(lt, tmp_path: Path) -> None:
    ta, tb = next_ip(), next_ip()
    pa, pb = f"{PLANNED}.1", f"{PLANNED}.2"
    (tmp_path / "transport.json").write_text(json.dumps({
        "endpoints": {pa: f"{ta}:{PORT}", pb: f"{tb}:{PORT}"},
        "inbound_hosts": {ta: [pa], tb: [pb]}}))
    fast = {"ping_interval": 3600.0, "feeler_mean": 3600.0}
    common = {"port": PORT, "timers": fast, "allowlist": [f"{PLANNED}.0/24"], "extra": {"transport": "transport.json"}}
    nodes = [{"name": "a", "bind": ta, "address": pa, "connect": [f"{pb}:{PORT}"], **common},
             {"name": "b", "bind": tb, "address": pb, **common}]
    (tmp_path / "pod.json").write_text(json.dumps({"nodes": nodes}))
    configs = host_configs(argparse.Namespace(config=str(tmp_path / "pod.json"), token_file=None))
    assert configs[0].endpoints == {pa: f"{ta}:{PORT}", pb: f"{tb}:{PORT}"}
    assert set(configs[0].allowlist[-2:]) == {f"{ta}/32", f"{tb}/32"}  # exactly the pods, added to the sandbox
    host = Host(configs)
    lt.run(host.start())
    try:
        a, b = host.nodes["a"], host.nodes["b"]
        lt.wait(lambda: {p.ip for p in b.peers.values() if p.verack_received} == {pa}, timeout=15,
                what="b to see a by its planned address")
        assert lt.eval(lambda: {p.ip for p in a.peers.values() if p.verack_received}) == {pb}
    finally:
        lt.run(host.stop())
