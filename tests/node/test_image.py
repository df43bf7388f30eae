"""The node image, for real: built with the Docker SDK from node_image/, run on a bridge network of
the test's own, driven through its control API on a port published on 127.0.0.1 only.

Skipped only when no Docker engine answers or the local base image is missing (CI prepares both in
.ci/run). Nothing is pulled; every container and the network carry the
run's labels and are removed in `finally`, whatever happens.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import posixpath
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import docker  # a dependency of the harness: installed with it, so never a reason to skip
import pytest
import yaml

from conftest import wait_until
from harness.backends.images import LOCAL_BASE_IMAGE, ImageBuildError, build_node_image
from tests.real import docker_engine

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

BASE_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", LOCAL_BASE_IMAGE)
TAG = "harness-node:test"
P2P_PORT = 18444  # regtest, config.DEFAULT_P2P_PORT
CONTROL_PORT = 18445
# The control APIs bind 0.0.0.0 in the containers, which the node and the seeder refuse without a token.
TOKEN = uuid.uuid4().hex
SEEDER_CONTROL_PORT = 8053  # seeder/config.py default
SEEDER_DNS_PORT = 5353  # > 1024: the image's user is not root
NODE_CONFIG = "/etc/harness-node/node.yaml"  # the image's default CMD reads it
STOP_WITHIN_S = 5.0  # SIGTERM to exit: "within a few seconds" (Docker would SIGKILL at 10 s)
TIME_SCALE = 0.1  # Core's timers x 0.1: the inbound tx trickle averages 0.5 s instead of 5 s
# Installed with the harness, never in the node image.
HARNESS_ONLY_MODULES = ("harness", "typer", "rich", "pydantic", "docker", "kubernetes", "matplotlib", "networkx", "dns")
NODE_MODULES = ("harness_node", "aiohttp", "prometheus_client", "dnslib", "yaml", "uvloop")


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker_engine(BASE_IMAGE)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def image(engine: Any) -> str:
    """The image under test, built once per module; cached layers make a rebuild take about a second."""
    return build_node_image(TAG, BASE_IMAGE, client=engine)


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Sandbox:
    """A bridge network of this test's own and the labelled containers started on it."""

    def __init__(self, engine: Any, run_id: str) -> None:
        self.engine = engine
        self.run_id = run_id
        self.labels = {"harness.test": "test_image", "harness.test.run": run_id}
        self.network = engine.networks.create(f"harness-test-{run_id}", driver="bridge", labels=self.labels)
        self.network.reload()
        self.subnet: str = self.network.attrs["IPAM"]["Config"][0]["Subnet"]

    def start(self, name: str, command: list[str] | None = None, files: dict[str, str] | None = None,
              ports: tuple[str, ...] = ()) -> Any:
        """Create, copy `files` (absolute path -> text) in, start. Ports are published on 127.0.0.1 only."""
        container = self.engine.containers.create(
            TAG, command, name=f"harness-test-{self.run_id}-{name}", labels=self.labels,
            network=self.network.name, ports={p: ("127.0.0.1", None) for p in ports})
        by_dir: dict[str, dict[str, str]] = {}
        for path, text in (files or {}).items():
            by_dir.setdefault(posixpath.dirname(path), {})[posixpath.basename(path)] = text
        for directory, entries in by_dir.items():
            container.put_archive(directory, _tar(entries))
        container.start()
        container.reload()
        return container

    def run_once(self, command: list[str], entrypoint: str | None = None) -> tuple[int, str]:
        """Run a one-shot container with no network at all: (exit code, output)."""
        container = self.engine.containers.create(TAG, command, entrypoint=entrypoint, labels=self.labels,
                                                  network_mode="none")
        container.start()
        code = container.wait(timeout=30)["StatusCode"]
        return code, container.logs().decode(errors="replace")

    def ip(self, container: Any) -> str:
        return container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    @staticmethod
    def host_port(container: Any, port: str) -> int:
        return int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])

    def containers(self) -> list[Any]:
        return self.engine.containers.list(all=True, filters={"label": f"harness.test.run={self.run_id}"})

    def remove(self) -> None:
        """Everything this run created, found by label; the logs go to pytest's captured output."""
        for container in self.containers():
            print(f"--- {container.name} ---\n{container.logs(tail=40).decode(errors='replace')}")
            container.remove(force=True)
        self.network.remove()


@pytest.fixture
def sandbox(engine: Any, image: str) -> Iterator[Sandbox]:
    box = Sandbox(engine, uuid.uuid4().hex[:12])
    try:
        yield box
    finally:
        box.remove()


def http_json(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def answering(port: int, path: str) -> Any:
    """The JSON at `path`, or None while the process in the container is not listening yet."""
    try:
        return http_json(port, path)
    except (OSError, http.client.HTTPException):  # refused, or reset by Docker's port proxy
        return None


def stop_cleanly(container: Any) -> tuple[int, float]:
    """SIGTERM (docker stop), then (exit code, seconds it took)."""
    t0 = time.monotonic()
    container.stop(timeout=10)
    code = container.wait(timeout=15)["StatusCode"]
    return code, time.monotonic() - t0


def test_the_image_runs_the_cli_as_non_root_with_only_the_node_dependencies(sandbox: Sandbox) -> None:
    code, out = sandbox.run_once(["--help"])
    assert code == 0, out
    assert "run" in out and "seeder" in out and "host" in out
    probe = ("import importlib.util, json, os; print(json.dumps({'uid': os.getuid(), 'found': "
             f"[m for m in {NODE_MODULES + HARNESS_ONLY_MODULES!r} if importlib.util.find_spec(m)]}}))")
    code, out = sandbox.run_once(["-c", probe], entrypoint="python3")
    assert code == 0, out
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["uid"] != 0
    assert sorted(facts["found"]) == sorted(NODE_MODULES)


def test_a_missing_base_image_is_reported_not_pulled(engine: Any) -> None:
    with pytest.raises(ImageBuildError, match="harness-test-absent:base is not on the Docker engine"):
        build_node_image("harness-node:never-built", "harness-test-absent:base", client=engine)


def test_two_node_containers_peer_relay_a_tx_and_exit_0_on_sigterm(sandbox: Sandbox) -> None:
    a = sandbox.start("a", ["run", "--name", "a", "--bind", "0.0.0.0", "--control-port", str(CONTROL_PORT),
                            "--token", TOKEN, "--time-scale", str(TIME_SCALE)], ports=(f"{CONTROL_PORT}/tcp",))
    a_ip = sandbox.ip(a)
    # B through the image's default CMD (run --config /etc/harness-node/node.yaml); it may dial only
    # inside the test's bridge subnet.
    b_config = {"name": "b", "bind": "0.0.0.0", "control_port": CONTROL_PORT, "control_token": TOKEN,
                "connect": [f"{a_ip}:{P2P_PORT}"],
                "allowlist": [sandbox.subnet], "time_scale": TIME_SCALE}
    b = sandbox.start("b", files={NODE_CONFIG: yaml.safe_dump(b_config)}, ports=(f"{CONTROL_PORT}/tcp",))
    b_ip = sandbox.ip(b)
    a_api, b_api = sandbox.host_port(a, f"{CONTROL_PORT}/tcp"), sandbox.host_port(b, f"{CONTROL_PORT}/tcp")

    def peer_seen(api: int, ip: str, direction: str) -> bool:
        status = answering(api, "/status")
        return status is not None and any(
            p["address"].split(":")[0] == ip and p["direction"] == direction and p["handshake_done"]
            for p in status["peers"])

    wait_until(lambda: peer_seen(b_api, a_ip, "outbound"), timeout=30, what=f"b's outbound peer {a_ip}")
    wait_until(lambda: peer_seen(a_api, b_ip, "inbound"), timeout=10, what=f"a's inbound peer {b_ip}")

    txid = http_json(a_api, "/tx", {"synthetic": True})["txid"]
    wait_until(lambda: txid in http_json(b_api, "/mempool")["txids"], timeout=30, what=f"tx {txid} in b's mempool")

    for container in (b, a):
        code, took = stop_cleanly(container)
        assert code == 0, f"{container.name} exited {code} on SIGTERM"
        assert took < STOP_WITHIN_S, f"{container.name} took {took:.1f} s to stop"


def test_the_seeder_role_runs_from_the_same_image_as_non_root(sandbox: Sandbox) -> None:
    config = {"dns_host": "0.0.0.0", "dns_port": SEEDER_DNS_PORT, "control_port": SEEDER_CONTROL_PORT,
              "control_token": TOKEN, "allowlist": [sandbox.subnet]}
    seeder = sandbox.start("seeder", ["seeder", "--config", "/etc/harness-node/seeder.yaml"],
                           files={"/etc/harness-node/seeder.yaml": yaml.safe_dump(config)},
                           ports=(f"{SEEDER_CONTROL_PORT}/tcp",))
    api = sandbox.host_port(seeder, f"{SEEDER_CONTROL_PORT}/tcp")
    status = wait_until(lambda: answering(api, "/status"), timeout=30, what="the seeder's /status")
    assert status["dns"] == f"0.0.0.0:{SEEDER_DNS_PORT}"
    assert status["mode"] == "honest" and status["crawler"] is True

    code, took = stop_cleanly(seeder)
    assert code == 0, f"the seeder exited {code} on SIGTERM"
    assert took < STOP_WITHIN_S, f"the seeder took {took:.1f} s to stop"
