"""Where the docker backend puts bitcoind members, without an engine (layout.py and bitcoind.py are
pure): each alone in a container even when light nodes are packed, attributed in the light nodes'
transport table, and given the reverse map and -connect endpoints in its member config. The
engine itself: tests/harness/test_docker_bitcoind.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.docker import bitcoind as dbtc
from harness.backends.docker import compose
from harness.backends.docker.layout import layout, transport
from harness.errors import BackendUnavailable
from harness.plan.planner import plan
from harness.scenario import parse_scenario

SCENARIO = """\
name: b
duration: 1m
network: {nodes: 5, bitcoind: 2, magic: dab5bffa, outbound_full_relay: 2, block_relay: 0}
"""
SUBNET = "10.130.0.0/20"


@pytest.mark.parametrize("per_container", [1, 3])
def test_each_bitcoind_has_a_container_of_its_own_attributed_in_the_transport_table(per_container: int) -> None:
    p = plan(parse_scenario(SCENARIO, "b.yaml"))
    lay = layout(p, SUBNET, per_container)
    boxes = {c.member: c for c in lay.containers if c.kind == "bitcoind"}
    assert sorted(boxes) == ["bitcoind-0", "bitcoind-1"] and all(c.nodes == [c.member] for c in boxes.values())
    assert all(set(c.nodes) <= {n.name for n in p.peers() if n.role == "honest"} for c in lay.containers if c.kind == "node")
    inbound = transport(p, lay)["node-0"]["inbound_hosts"]
    for name, c in boxes.items():
        assert inbound[c.ip] == [p.node(name).address]


def test_the_member_config_dials_container_endpoints_and_maps_them_back() -> None:
    p = plan(parse_scenario(SCENARIO, "b.yaml"))
    lay = layout(p, SUBNET, 3)  # packed light nodes: a container IP alone is ambiguous
    spec = p.node("bitcoind-0")
    config = dbtc.member_config(spec, p, lay, "/var/lib/harness-node/bitcoind-0", "token")
    ip, p2p, control = lay.endpoint("bitcoind-0")
    assert (config["address"], config["port"], config["control_port"], config["rpc_port"]) == (ip, p2p, control, control + 1)
    assert config["identity"] == spec.address and config["binary"] == dbtc.BINARY_IN_IMAGE
    planned = [c.rpartition(":")[0] for c in spec.config["connect"]]
    assert [config["peer_addresses"][c] for c in config["connect"]] == planned
    packed = next(c for c in lay.containers if c.kind == "node" and len(c.nodes) > 1)
    assert packed.ip not in config["peer_addresses"] and config["peer_addresses"][ip] == spec.address


def test_the_compose_export_refuses_bitcoind_members() -> None:
    with pytest.raises(BackendUnavailable, match="bitcoind members"):
        compose.compose(plan(parse_scenario(SCENARIO, "b.yaml")), "harness-node:latest")


def test_the_image_tag_follows_the_binary_and_the_node_image(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    tags = {dbtc.image_tag(str(a), "sha256:1"), dbtc.image_tag(str(b), "sha256:1"), dbtc.image_tag(str(a), "sha256:2")}
    assert len(tags) == 3 and dbtc.image_tag(str(a), "sha256:1") in tags
