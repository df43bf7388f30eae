"""The docker backend on the real engine: scenarios/docker-30.yaml as 32 containers (30 nodes, the
seeder and a spam identity), and packed ten nodes to a container.

Each test deploys through the runner as `harness deploy --backend docker` does, acts through the
backend's native faults and the nodes' control APIs, and ends with `down`, after which nothing
carrying the run's label may remain. Skipped when no engine answers or the base image is missing
(with CI=true: failed, tests/real.py). Only objects labelled with this test's run id are touched:
the engine is shared.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
import yaml
from typer.testing import CliRunner

from harness.backends.base import Endpoint
from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.docker import engine
from harness.backends.images import LOCAL_BASE_IMAGE, build_node_image, build_prometheus_image
from harness.backends.registry import make_backend
from harness.cli.app import app
from harness.controller.service import Results
from harness.errors import BackendError
from harness.run import runner
from harness.run.rundir import RunDir
from tests.real import docker_engine
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "docker-30.yaml"
BASE_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", LOCAL_BASE_IMAGE)
TAG = "harness-node:test-docker-backend"
PROMETHEUS_TAG = "harness-prometheus:test-docker-backend"  # built from the base and Debian's package
SCRAPE_TIMEOUT = 60.0
HEALTH_TIMEOUT = 90.0  # start period 20 s, interval 30 s (node_image/Dockerfile)
# Every node has an outbound peer: 5 s on an idle machine. A node whose seeder has crawled nobody yet
# asks again after 0.55 s, doubling (x 1-1.5) each time (addr/bootstrap.py), so a seeder slowed by a
# loaded engine can push a node's first peer past a minute (one CI run: 60 s was not enough in the
# packed variant). The failure message names each node without one and what it knew.
FORM_TIMEOUT = 120.0
RELAY_TIMEOUT = 30.0
# After a heal the partitioned node's TCP connections resume only when a retransmission gets
# through (exponential back-off, seconds to tens of seconds) or its peers time it out and it dials
# again (ping timeout 20 min x time_scale 0.05 = 60 s): that bounds how soon a new tx reaches it.
HEAL_RELAY_TIMEOUT = 120.0
# The detached controller evaluates the scenario's checks when its 40 s are over, counted from the
# moment every member answered; collecting from 32 members on a loaded machine takes seconds more.
RESULTS_TIMEOUT = 180.0
SPAM_TARGETS = {"node-20", "node-21", "node-22"}  # the scenario's spam entry
wait = partial(wait_until, interval=0.5)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    client = docker_engine(BASE_IMAGE)
    build_node_image(TAG, BASE_IMAGE, client=client)
    build_prometheus_image(PROMETHEUS_TAG, BASE_IMAGE, client=client)
    os.environ["HARNESS_IMAGE"] = TAG
    yield TAG
    client.close()


def _scenario(tmp_path: Path, per_container: int) -> Path:
    data = yaml.safe_load(SCENARIO.read_text())
    data["deploy"]["nodes_per_container"] = per_container
    path = tmp_path / f"docker-30-{per_container}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _statuses(token: str, eps: list[Endpoint]) -> dict[str, Any]:
    async with ControlClient(token, timeout=3.0, retries=0) as c:
        return await c.gather(eps, lambda ep: c.status(ep, retries=0))


def _linked(name: str, status: dict[str, Any], planned: dict[str, str] | None) -> bool:
    """An outbound peer past the handshake, or (given every node's planned ip) a link past the
    handshake with every other node: then nothing is left to dial, as in Core, which never dials an
    address it is already connected to in either direction (one CI run: all 29 others dialled
    node-5 before it learned an address)."""
    done = [p for p in status["peers"] if p["handshake_done"]]
    if any(p["direction"] == "outbound" for p in done):
        return True
    linked = {p["address"].rsplit(":", 1)[0] for p in done}
    return planned is not None and {ip for n, ip in planned.items() if n != name} <= linked


def _formed(token: str, eps: dict[str, Endpoint], lacking: dict[str, Any] | None = None,
            planned: dict[str, str] | None = None) -> bool:
    """Every node is linked (see _linked); ``lacking`` gets, for each node that is not, what it
    answered (its peers, peering and bootstrap state, or the error), for the failure message."""
    results = _run(_statuses(token, list(eps.values())))
    without = {n: r for n, r in results.items()
               if isinstance(r, ControlAPIError) or not _linked(n, r, planned)}
    if lacking is not None:
        lacking.clear()
        lacking.update({n: r if isinstance(r, ControlAPIError) else
                        {k: r.get(k) for k in ("peers", "peering", "bootstrap")} for n, r in without.items()})
    return not without


def _wait_formed(token: str, eps: dict[str, Endpoint], what: str, planned: dict[str, str] | None = None) -> None:
    lacking: dict[str, Any] = {}
    wait(lambda: _formed(token, eps, lacking, planned), FORM_TIMEOUT, lambda: f"{what} (lacking: {lacking})")


def _tx_everywhere(token: str, source: Endpoint, eps: list[Endpoint], timeout: float = RELAY_TIMEOUT) -> str:
    async def inject() -> str:
        async with ControlClient(token) as c:
            return await c.inject_tx(source)

    txid = _run(inject())

    lacking: list[str] = []

    async def seen() -> bool:
        async with ControlClient(token, timeout=3.0, retries=0) as c:
            results = await c.gather(eps, lambda ep: c.item(ep, "tx", txid))
        lacking[:] = sorted(n for n, r in results.items() if isinstance(r, ControlAPIError) or r is None)
        return not lacking

    wait(lambda: _run(seen()), timeout, lambda: f"tx {txid} at every one of {len(eps)} nodes (lacking: {lacking})")
    return txid


def _controller_results(run_dir: Path) -> Results:
    """The detached controller's results once it has evaluated the scenario's checks."""
    journal = RunDir(run_dir)

    def done() -> Results | None:
        if not journal.results_file.exists():
            return None
        results = Results.from_dict(journal.read_json(journal.results_file))
        return results if results.phase == "done" else None

    return wait(done, RESULTS_TIMEOUT, "the controller's results (phase done)")


def _spammer_banned_and_no_honest_node(results: Results) -> None:
    """The scenario's spam identity got the table's score and a ban from each of its targets, and
    no honest node banned another: the controller's own checks, and the observations behind them."""
    verdicts = {c.name: c for c in results.checks}
    for name in ("spam_banned", "no_honest_banned"):
        assert verdicts[name].verdict.value == "pass", verdicts[name]
    obs = results.observations
    assert obs is not None
    runs = [r for r in obs.spam if r.attacker == "spam-0"]
    assert {r.target for r in runs} == SPAM_TARGETS, runs
    assert all(r.observed_outcome == r.expected_outcome == "banned" and r.as_expected for r in runs), runs
    # each target's own ban list names the spammer (its planned address, mapped back to spam-0)
    banned_by = {b.banning_node for b in obs.bans if b.banned_node == "spam-0" and b.banned_is_attacker}
    assert banned_by == SPAM_TARGETS, obs.bans


def _labelled(run_id: str) -> dict[str, list[Any]]:
    client = docker.from_env()
    try:
        containers, networks, volumes = engine.of_run(client, run_id)
        return {"container": containers, "network": networks, "volume": volumes}
    finally:
        client.close()


def _scraped(prometheus: str, count: int) -> bool:
    """Prometheus reports ``count`` active targets, every one healthy (up), each a distinct member."""
    try:
        active = requests.get(f"{prometheus}/api/v1/targets", timeout=3).json()["data"]["activeTargets"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    members = {t["labels"]["member"] for t in active}
    return len(active) == count and len(members) == count and all(t["health"] == "up" for t in active)


def _can_dial(container: Any, ip: str, port: int) -> bool:
    """From inside ``container`` (docker exec: needs no network), can a TCP connection reach ip:port?"""
    code = (f"import socket,sys\ntry:\n socket.create_connection(('{ip}',{port}),timeout=3).close()\n"
            f"except OSError:\n sys.exit(1)")
    return container.exec_run(["python3", "-c", code]).exit_code == 0


@pytest.mark.docker
@pytest.mark.parametrize("per_container", [1, 10], ids=["container-per-node", "packed-10"])
def test_docker_30(image: str, tmp_path: Path, per_container: int) -> None:
    run_dir = tmp_path / "run"
    # Grafana's image cannot be pulled here (no registry): its spec is tested in test_docker_parts.py
    state = runner.deploy(_scenario(tmp_path, per_container), "docker", run_dir, wait=True,
                          monitor={"prometheus_image": PROMETHEUS_TAG, "grafana_image": None})
    run_id, token = state.run_id, state.control_token or ""
    be = make_backend("docker", RunDir(run_dir))
    try:
        labelled = _labelled(run_id)
        # nodes (packed: 3 containers of 10), the seeder, the spam identity (always alone) and Prometheus
        expected = (30 if per_container == 1 else 3) + 3
        assert len(labelled["container"]) == expected and len(labelled["network"]) == 1
        assert all(c.labels["harness.io/run"] == run_id for c in labelled["container"])
        # up recorded where its time went (bench/bench_docker.py prints it)
        phases = state.backend_state["up_phases"]
        assert list(phases) == ["image", "network", "layout", "containers"] and phases["containers"] > 0, phases
        plan = be.plan
        eps = {n: ep for n, ep in be.node_endpoints().items() if plan.node(n).role == "honest"}
        assert len(eps) == 30 and len(be.node_endpoints()) == 31  # and spam-0
        # every node answers at a container IP of the run's subnet, not at its planned address
        subnet = labelled["network"][0].attrs["IPAM"]["Config"][0]["Subnet"]
        assert all(not ep.address.startswith("127.") for ep in eps.values()), subnet

        # the network forms, and peers know each other by their planned (127.a.b.c) addresses
        _wait_formed(token, eps, "every node has an outbound peer or a link with every other",
                     {n: plan.node(n).address for n in eps})
        # (a packed container's inbound peer is attributed when its version arrives, so only peers
        # past the handshake are judged; the seeder's crawler is a planned member too)
        planned = {n.address for n in plan.nodes}
        peers = [p for p in _run(_statuses(token, [eps["node-0"]]))["node-0"]["peers"] if p["handshake_done"]]
        strangers = [p for p in peers if p["address"].rsplit(":", 1)[0] not in planned]
        assert peers and not strangers, strangers

        # the run's Prometheus scrapes every node, the spam identity, the seeder and the controller
        prometheus = state.backend_state["monitoring"]["prometheus"]
        wait(lambda: _scraped(prometheus, 33), SCRAPE_TIMEOUT, "Prometheus has 33 healthy targets")

        # a transaction reaches every node
        _tx_everywhere(token, eps["node-0"], list(eps.values()))

        # the members: one per container and the controller, all alive; logs come from the engine
        members = {m.name: m for m in be.members()}
        assert members["controller"].alive and members["seeder"].alive
        assert be.logs("seeder").strip(), "the seeder container logged nothing"

        # the image's HEALTHCHECK (every 30 s) finds the seeder's control API answering
        seeder = docker.from_env().containers.get(be._container_name(run_id, "seeder"))
        wait(lambda: seeder.reload() or seeder.attrs["State"]["Health"]["Status"] == "healthy", HEALTH_TIMEOUT,
             "the seeder container is healthy")

        # `harness logs MEMBER` reads a container's log through the backend; an unknown member is exit 2
        result = CliRunner().invoke(app, ["logs", "seeder", "--run-dir", str(run_dir)])
        assert result.exit_code == 0 and result.stdout.strip(), result.output
        assert CliRunner().invoke(app, ["logs", "no-such-member", "--run-dir", str(run_dir)]).exit_code == 2

        # the spammer, in its own container, is banned by its targets and no honest node is, in
        # this run: the controller evaluates the scenario's checks at its end (40 s), before the
        # native faults below, which would otherwise race its collection
        results = _controller_results(run_dir)
        _spammer_banned_and_no_honest_node(results)

        if per_container == 1:
            # the scenario's own timeline restarted node-3 at 28 s (through this backend, from the
            # controller)
            restarts = [e for e in results.events if e.action == "restart_node"]
            assert restarts and all(e.ok for e in restarts), restarts
            _native_faults(be, token, eps)
        else:
            # what a crashed `up` may leave unrecorded is still found by its label; another run's is not touched
            client = docker.from_env()
            stray = client.containers.create(image, ["--help"], labels={"harness.io/run": run_id})
            foreign = client.containers.create(image, ["--help"], labels={"harness.io/run": "not-" + run_id})
            client.close()
    finally:
        summary = be.down()
    if per_container != 1:
        foreign.reload()  # still there: NotFound otherwise
        foreign.remove(force=True)
    assert summary.clean, summary
    assert summary.removed["container"] == (33 if per_container == 1 else 7) and summary.removed["network"] == 1
    assert not any(_labelled(run_id).values())
    assert be.down().already_down  # idempotent


def _native_faults(be: Any, token: str, eps: dict[str, Endpoint]) -> None:
    client = docker.from_env()
    name = be._container_name  # the backend's naming, not re-derived here
    run_id = be.state().run_id
    # kill (SIGKILL) and restart: the node comes back at the same address and rejoins
    be.kill_node("node-5")
    assert client.containers.get(name(run_id, "node-5")).status == "exited"
    be.restart_node("node-5")
    _wait_formed(token, {"node-5": eps["node-5"]}, "restarted node-5 has an outbound peer")
    _tx_everywhere(token, eps["node-1"], list(eps.values()))

    # pause: a real freeze, its control API no longer answers; unpause: it answers again
    be.pause_node("node-6")
    assert client.containers.get(name(run_id, "node-6")).status == "paused"
    frozen = _run(_statuses(token, [eps["node-6"]]))["node-6"]
    assert isinstance(frozen, ControlAPIError), frozen
    be.resume_node("node-6")
    assert not isinstance(_run(_statuses(token, [eps["node-6"]]))["node-6"], ControlAPIError)

    # network disconnect: node-7 reaches nobody and nobody reaches it; heal: both again
    n7, n0 = client.containers.get(name(run_id, "node-7")), client.containers.get(name(run_id, "node-0"))
    assert _can_dial(n7, eps["node-0"].address, eps["node-0"].port)
    be.partition([[n for n in eps if n != "node-7"], ["node-7"]])
    assert not _can_dial(n7, eps["node-0"].address, eps["node-0"].port)
    assert not _can_dial(n0, eps["node-7"].address, eps["node-7"].port)
    be.heal()
    assert _can_dial(n7, eps["node-0"].address, eps["node-0"].port)
    assert _can_dial(n0, eps["node-7"].address, eps["node-7"].port)
    _tx_everywhere(token, eps["node-2"], list(eps.values()), HEAL_RELAY_TIMEOUT)
    client.close()


@pytest.mark.docker
def test_wait_ready_names_a_container_that_exited(image: str, tmp_path: Path) -> None:
    """The readiness wait asks the engine about the run's containers at most every
    CRASH_CHECK_SECONDS (not every round): a node container that died is still named within seconds."""
    scenario = tmp_path / "two.yaml"
    scenario.write_text(yaml.safe_dump({"name": "docker-crash", "duration": "5m", "seeder": {"enabled": False},
                                        "network": {"nodes": 2}}))
    be = make_backend("docker", RunDir(tmp_path / "run"))
    be.up(runner.runnable_plan(scenario))
    try:
        be.wait_ready()
        be.client.containers.get(be._container_name(be.state().run_id, "node-1")).kill()  # not through the backend
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"node-1 exited during start-up"):
            be.wait_ready(timeout=120.0)
        assert time.monotonic() - started < 60.0  # named by the crash check, not by the timeout
    finally:
        summary = be.down()
    assert summary.clean, summary


@pytest.mark.parametrize("backend", ["local"])
def test_the_same_scenario_file_passes_on_the_local_backend(tmp_path: Path, backend: str) -> None:
    """scenarios/docker-30.yaml, unchanged, on local processes: every check passes (its deploy:
    section means nothing there). Needs no engine; its own network namespace avoids address clashes."""
    code = runner.run(SCENARIO, backend, tmp_path / "report", tmp_path / "run")
    assert code == 0, (tmp_path / "report" / "summary.md").read_text()
