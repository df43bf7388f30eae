"""The docker backend's pure parts (layout and transport tables, the scenario's deploy: section, the
compose file, the monitoring containers' specs) and what cannot run here, tested by the command
lines it would run.

Engine-backed behaviour is in test_docker_backend.py; the Prometheus image is built for real here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from harness.backends import images
from harness.backends.docker import compose, monitor
from harness.backends.docker.layout import (
    PACKED_P2P_BASE, container_attack_config, container_node_config, inbound_table, layout, subnet_candidates, transport,
)
from harness.backends.node_config import node_config
from harness.cli.app import app
from harness.plan.planner import plan_file
from tests.real import missing, require

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "docker-30.yaml"
SPAM = ROOT / "scenarios" / "docker-spam.yaml"


@pytest.fixture(scope="module")
def plan() -> Any:
    return plan_file(SCENARIO)


def test_layout_one_container_per_node(plan: Any) -> None:
    lay = layout(plan, "10.130.16.0/20")
    assert len(lay.containers) == 32  # 30 nodes, the seeder and the spam identity
    ips = [c.ip for c in lay.containers]
    assert len(set(ips)) == 32 and all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.130.16.0/20") for ip in ips)
    assert "10.130.16.1" not in ips  # the gateway
    node0 = plan.node("node-0")
    assert lay.endpoint("node-0")[1:] == (node0.p2p_port, node0.control_port)


def test_layout_packed_shares_an_ip_and_gives_each_node_its_port(plan: Any) -> None:
    lay = layout(plan, "10.130.16.0/20", nodes_per_container=10)
    nodes = [c for c in lay.containers if c.kind == "node"]
    assert [len(c.nodes) for c in nodes] == [10, 10, 10]
    assert sorted(p for p, _ in nodes[0].ports.values()) == list(range(PACKED_P2P_BASE, PACKED_P2P_BASE + 10))
    # an inbound connection from that container may claim any of its ten planned addresses
    inbound = inbound_table(plan, lay)
    assert inbound[nodes[0].ip] == [plan.node(n).address for n in nodes[0].nodes]


def test_transport_keeps_planned_addresses_as_identities(plan: Any) -> None:
    lay = layout(plan, "10.130.16.0/20")
    tables = transport(plan, lay)["node-0"]
    node7 = plan.node("node-7")
    ip, port, _ = lay.endpoint("node-7")
    assert tables["endpoints"][node7.address] == f"{ip}:{port}"
    config = container_node_config(node_config(plan.node("node-0"), "/d", "t", tables), plan.node("node-0"), plan, lay)
    assert config["address"] == plan.node("node-0").address  # the identity peers see
    assert config["bind"] == lay.endpoint("node-0")[0]  # where it listens
    assert "10.130.16.0/20" in config["allowlist"]  # it may dial the run's subnet
    seeder_ip = lay.endpoint("seeder")[0]
    assert config["peering"]["seeders"] and all(seeder_ip in s for s in config["peering"]["seeders"])


@pytest.mark.parametrize("per_container", [1, 2])
def test_attack_identities_each_get_a_container_and_are_attributed_by_its_ip(per_container: int) -> None:
    """Even with packed nodes every spam identity is alone in its container: a victim then knows it
    by its container IP from the first byte (pre-version spam cannot name itself)."""
    plan = plan_file(SPAM)
    lay = layout(plan, "10.130.16.0/20", per_container)
    identities = [n for n in plan.peers() if n.role == "attacker"]
    attackers = [c for c in lay.containers if c.kind == "attacker"]
    assert [c.nodes for c in attackers] == [[n.name] for n in identities] and len(identities) == 3
    inbound = inbound_table(plan, lay)
    for c, spec in zip(attackers, identities):
        assert inbound[c.ip] == [spec.address]
        config = container_attack_config(plan, lay, spec.name, "token")
        [identity] = config["attackers"]
        # it dials from, and answers control calls on, its container IP; victims see its planned address
        assert (identity["bind"], identity["control_bind"]) == (c.ip, c.ip) and identity["address"] == spec.address
        for target in identity["targets"]:
            victim = next(n for n in plan.peers() if f"{n.address}:{n.p2p_port}" == target)
            ip, port, _ = lay.endpoint(victim.name)
            assert config["endpoints"][victim.address] == f"{ip}:{port}"


def test_rendered_compose_file_runs_attack_identities(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", str(SPAM), "--backend", "docker", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    services = yaml.safe_load((tmp_path / "compose.yaml").read_text())["services"]
    assert services["spam-0"]["command"][0] == "attack" and services["spam-0"]["labels"]["harness.io/role"] == "attacker"
    config = json.loads((tmp_path / "config" / "spam-0.json").read_text())
    assert config["attackers"][0]["bind"] == services["spam-0"]["networks"]["harness"]["ipv4_address"]


def test_subnet_candidates_are_distinct_private_subnets() -> None:
    first, second = subnet_candidates("a1b2c3d4"), subnet_candidates("0badf00d")
    assert len(set(first)) == len(first)
    assert all(ipaddress.ip_network(s).subnet_of(ipaddress.ip_network("10.128.0.0/9")) for s in first + second)
    assert first == subnet_candidates("a1b2c3d4")  # deterministic per run id


@pytest.mark.parametrize("deploy, field, allowed", [
    ({"nodes_per_container": 0}, "deploy.nodes_per_container", ">= 1"),
    ({"resources": {"node": {"memory": "lots"}}}, "deploy.resources.node.memory", "like 64m or 1g"),
    ({"resources": {"node": {"memory": "1m"}}}, "deploy.resources.node.memory", "at least 6m"),
    ({"resources": {"seeder": {"cpus": 0}}}, "deploy.resources.seeder.cpus", "must be > 0"),
    ({"resources": {"gpu": {}}}, "deploy.resources.gpu", ""),
])
def test_bad_deploy_section_exits_2_naming_the_field(tmp_path: Path, deploy: dict[str, Any], field: str, allowed: str) -> None:
    data = yaml.safe_load(SCENARIO.read_text())
    data["deploy"] = deploy
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and field in result.output and allowed in result.output
    assert "Traceback" not in result.output


def test_rendered_compose_file_is_valid(tmp_path: Path) -> None:
    """`docker-compose config` (Debian's docker-compose package) parses and validates the file."""
    tool = require("docker-compose")
    result = CliRunner().invoke(app, ["render", str(SCENARIO), "--backend", "docker", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "compose.yaml").read_text())
    assert len(document["services"]) == 32  # 30 nodes, the seeder and the spam identity
    node0 = document["services"]["node-0"]
    assert node0["mem_limit"] == 128 * 1024 ** 2 and node0["user"] != "0:0"
    config = tmp_path / "config" / "node-0.json"
    assert config.stat().st_mode & 0o777 == 0o600  # it holds the control token
    assert json.loads(config.read_text())["nodes"][0]["address"].startswith("127.")
    check = subprocess.run([tool, "-f", str(tmp_path / "compose.yaml"), "config", "-q"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_image_load_command_lines() -> None:
    """kind and minikube cannot run here: the exact argument lists `--load` runs are checked, and
    the runner is a recording stand-in for subprocess.run."""
    assert images.load_command("harness-node:1", "kind") == ["kind", "load", "docker-image", "harness-node:1"]
    assert images.load_command("harness-node:1", "minikube") == ["minikube", "image", "load", "harness-node:1"]
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "no cluster")

    with pytest.raises(images.ImageBuildError, match="failed \\(exit 1\\): no cluster"):
        images.load_image("harness-node:1", "kind", run=fake_run)
    assert calls == [["kind", "load", "docker-image", "harness-node:1"]]
    with pytest.raises(images.ImageBuildError, match="choose one of"):
        images.load_command("x", "k3d")


def test_monitoring_specs(plan: Any) -> None:
    """Grafana cannot be pulled here: its container spec and mounts are checked instead."""
    subnet = "10.130.16.0/20"
    spec = monitor.grafana_spec("grafana/grafana:latest", subnet)
    mounts = {v["bind"]: Path(k) for k, v in spec["volumes"].items()}
    provisioning = mounts[monitor.GRAFANA_PROVISIONING]
    assert (provisioning / "datasources" / "prometheus.yaml").is_file()
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert datasource["url"] == f"http://prometheus:{monitor.PROMETHEUS_PORT}"
    assert spec["extra_hosts"]["prometheus"] == monitor.gateway(subnet)  # that name reaches our Prometheus
    dashboards = yaml.safe_load((provisioning / "dashboards" / "harness.yaml").read_text())["providers"][0]
    assert dashboards["options"]["path"] == monitor.GRAFANA_DASHBOARDS
    assert list(mounts[monitor.GRAFANA_DASHBOARDS].glob("*.json"))
    assert all(v["mode"] == "ro" for v in spec["volumes"].values())
    p = monitor.prometheus_spec("harness-prometheus:latest", subnet)
    assert p["network_mode"] == "host" and f"--web.listen-address={monitor.gateway(subnet)}:9090" in p["command"]


@pytest.mark.docker
def test_prometheus_image_builds_from_the_base_and_debian_package() -> None:
    import docker

    base = os.environ.get("HARNESS_BASE_IMAGE", images.LOCAL_BASE_IMAGE)
    try:
        client = docker.from_env()
        client.images.get(base)
    except Exception as e:  # noqa: BLE001 - no engine or no base: missing() says which
        missing("docker", f"no engine or no base image {base} ({e})")
    tag = "harness-prometheus:test"
    images.build_prometheus_image(tag, base, client=client)
    out = client.containers.run(tag, ["--version"], remove=True).decode()
    assert "prometheus, version" in out
    client.close()
    assert shutil.which("docker")  # the CLI path below goes through the same function


def test_native_partition_refuses_one_way_before_touching_the_engine(tmp_path: Path) -> None:
    """A network disconnect cuts both directions, so a one-way partition is refused (the timeline
    then falls back to the node-level fault) without an engine being contacted."""
    from harness.backends.base import BackendError
    from harness.backends.docker.backend import DockerBackend

    class NoRun:
        path = tmp_path

    be = DockerBackend(NoRun())  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="one direction"):
        be.partition([["node-0"], ["node-1"]], one_way=True)
    assert be._client is None  # refused before any engine connection


class _StaleNetwork:
    """A network as the engine showed it once in CI: its containers are gone, inspect lists none,
    and removal still fails with "has active endpoints" until an endpoint is force-disconnected by
    the removed container's name. A stand-in, because a real engine cannot be brought into that
    state on demand; the ordinary path (listed endpoints) runs on the real engine in
    test_docker_backend.py."""

    def __init__(self, stale: set[str], listed: dict[str, Any] | None = None) -> None:
        self.stale, self.attrs, self.calls = set(stale), {"Containers": dict(listed or {})}, []

    def remove(self) -> None:
        import docker

        self.calls.append("remove")
        if self.stale or self.attrs["Containers"]:
            raise docker.errors.APIError("error while removing network: network harness-x has active endpoints")

    def reload(self) -> None:
        pass

    def disconnect(self, target: str, force: bool = False) -> None:
        import docker

        self.calls.append(f"disconnect {target} force={force}")
        if target in self.attrs["Containers"]:
            del self.attrs["Containers"][target]
        elif target in self.stale:
            self.stale.discard(target)
        else:
            raise docker.errors.APIError(f"container {target} is not connected to network harness-x")


def test_a_network_holding_an_unlisted_endpoint_is_removed_by_disconnecting_the_removed_names() -> None:
    pytest.importorskip("docker")
    from harness.backends.docker.engine import _remove_network

    net = _StaleNetwork(stale={"harness-x-node-7"})
    _remove_network(net, ["harness-x-node-3", "harness-x-node-7"])
    assert net.calls == ["remove", "disconnect harness-x-node-3 force=True", "disconnect harness-x-node-7 force=True",
                         "remove"]
    # listed endpoints are disconnected by id first; the names only when nothing is listed
    net = _StaleNetwork(stale=set(), listed={"c0ffee": {}})
    _remove_network(net, ["harness-x-node-3"])
    assert net.calls == ["remove", "disconnect c0ffee force=True", "remove"]
