"""The local backend with real node-host processes on real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import pytest

from harness.plan.model import Plan
from harness.plan.planner import plan_file
from harness.run import runner
from harness.backends.registry import backend_class, make_backend
from harness.backends.local import processes as lw
from harness.backends.local.backend import SEEDER_NICE
from harness.backends.base import BackendError
from harness.backends.client import ControlAPIError, ControlClient
from harness.errors import BackendUnavailable
from harness.run.rundir import RunDir
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SMALL = """\
name: small
seed: 3
duration: {duration}
network:
  nodes: {nodes}
  time_scale: 0.05
seeder:
  enabled: false
"""


def scenario(tmp_path: Path, nodes: int = 8, duration: str = "5s", extra: str = "") -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL.format(nodes=nodes, duration=duration) + extra)
    return path




def nothing_left(run: RunDir) -> None:
    """No process of the run's recorded groups alive, no node port still bound."""
    state = run.load_state()
    assert lw.live_groups({p.pgid for p in lw.records(state)}) == {}
    plan = Plan.from_json(run.plan_file.read_text())
    bound = [(n.address, p) for n in plan.peers() for p in (n.p2p_port, n.control_port) if lw.port_is_bound(n.address, p)]
    assert bound == []


def connect_ring(run: RunDir) -> None:
    """Dial node i -> node i+1 through the control API (the nodes' own bootstrap is not needed)."""
    be = make_backend("local", run)
    eps = list(be.node_endpoints().values())

    async def dial() -> None:
        async with ControlClient(run.load_state().control_token) as client:
            await asyncio.gather(*(client.add_peer(a, b.p2p) for a, b in zip(eps, eps[1:] + eps[:1])))

    asyncio.run(dial())


def test_eight_nodes_come_up_connect_and_down_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    be.up(plan_file(scenario(tmp_path)))
    try:
        be.wait_ready(timeout=30)
        assert runner.status(run.path)["summary"]["reachable"] == 8
        connect_ring(run)

        def ring_connected() -> bool:
            nodes = runner.status(run.path)["nodes"]
            return len(nodes) == 8 and all(n["outbound"] >= 1 and n["inbound"] >= 1 for n in nodes.values())

        wait_until(ring_connected, what="every node to have an outbound and an inbound peer")
        status = runner.status(run.path)
        assert status["running"] and status["status"] == "running"
        assert all(p["alive"] for p in status["members"])
    finally:
        summary = be.down()
    assert summary.clean and not summary.already_down and summary.removed["process"] >= 1
    nothing_left(run)
    assert not be.is_running()
    again = runner.down(run.path)
    assert again["already_down"] and again["clean"]


def test_status_asks_each_worker_once_and_a_member_without_the_host_route_alone(tmp_path: Path) -> None:
    """ControlClient.statuses (what `harness status` polls): 12 nodes in 3 workers answer in a few
    GET /host/status, with the counts each node gives on its own; an endpoint that cannot answer
    for a host (here a closed port) is asked alone and reported unreachable."""
    from harness.backends.endpoint import Endpoint
    from tests.harness.counting_client import CountingClient

    run = RunDir(tmp_path / "run")
    be = make_backend("local", run, cores=3, nodes_per_worker=4)
    state = be.up(plan_file(scenario(tmp_path, nodes=12)))
    try:
        be.wait_ready(timeout=30)
        assert len([r for r in lw.records(state) if r.kind == "worker"]) == 3
        connect_ring(run)
        eps = list(be.node_endpoints().values())
        wait_until(lambda: all(n["outbound"] >= 1 for n in runner.status(run.path)["nodes"].values()), what="the ring")
        with socket.socket() as s:
            s.bind(("127.243.8.1", 0))
            closed = Endpoint("ghost", "127.243.8.1", 18444, f"http://127.243.8.1:{s.getsockname()[1]}")

        async def poll() -> tuple[dict, dict, CountingClient]:
            async with CountingClient(state.control_token, timeout=3.0, retries=0) as client:
                each = await client.gather(eps, lambda ep: client.status(ep, peer_counts=True))
                client.paths.clear()
                return each, await client.statuses([*eps, closed]), client

        async def placed() -> dict[str, int]:
            async with CountingClient(state.control_token, timeout=3.0, retries=0) as client:
                client.place(be.host_groups())
                await client.statuses(eps)
                return dict(client.paths)

        each, hosts, client = asyncio.run(poll())
        groups = be.host_groups()
        placed_paths = asyncio.run(placed())
    finally:
        be.down()
    workers = [r.nodes for r in lw.records(state) if r.kind == "worker"]
    assert sorted(map(sorted, groups)) == sorted(map(sorted, workers))
    assert placed_paths == {"/host/status": 3}, placed_paths  # told the groups: one request a worker
    assert set(hosts) == {*each, "ghost"} and isinstance(hosts["ghost"], ControlAPIError)
    for name, alone in each.items():
        assert {k: hosts[name][k] for k in ("id", "height", "peer_counts")} == \
               {k: alone[k] for k in ("id", "height", "peer_counts")}, name
    # 3 workers: rounds of 4 picks, no endpoint asked twice (at most 3 rounds), then the ghost alone
    assert client.paths["/host/status"] <= 12 and client.paths["/status"] <= 1, client.paths


def test_the_seeder_runs_at_a_higher_cpu_priority_than_the_workers(tmp_path: Path) -> None:
    """It shares the cores with every worker (on a real network it is a machine of its own): where
    the priority may be granted (root, as CI) it gets it; otherwise the deploy is unchanged."""
    path = tmp_path / "seeded.yaml"
    path.write_text("name: seeded\nseed: 3\nduration: 5s\nnetwork:\n  nodes: 4\n  time_scale: 0.05\n")
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    be.up(plan_file(path))
    try:
        be.wait_ready(timeout=30)
        records = lw.records(run.load_state())
        nice = {r.kind: os.getpriority(os.PRIO_PROCESS, r.pid) for r in records}
        assert nice == ({"seeder": SEEDER_NICE, "worker": 0} if os.geteuid() == 0 else {"seeder": 0, "worker": 0})
        # where Linux shares the CPU between sessions first (autogroup), the seeder's session has the
        # weight: each member is a session of its own, so its own nice alone would count for nothing
        if Path("/proc/sys/kernel/sched_autogroup_enabled").exists() and os.geteuid() == 0:
            group = {r.kind: Path(f"/proc/{r.pid}/autogroup").read_text().split()[-1] for r in records}
            assert group == {"seeder": str(SEEDER_NICE), "worker": "0"}, group
    finally:
        assert be.down().clean


def test_down_of_a_directory_with_no_run_is_fine(tmp_path: Path) -> None:
    assert runner.down(tmp_path / "never-deployed")["already_down"]


def test_deploy_refuses_a_run_directory_that_is_still_running(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    plan = plan_file(scenario(tmp_path, nodes=2))
    be.up(plan)
    try:
        with pytest.raises(BackendError, match="already deployed"):
            make_backend("local", run).up(plan)
    finally:
        be.down()


def test_deploy_runs_a_detached_controller_that_down_stops_too(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    runner.deploy(scenario(tmp_path, nodes=4, duration="60s"), run_dir=run_dir, wait=True)
    run = RunDir(run_dir)
    try:
        assert {m["kind"] for m in runner.members(run_dir)} == {"worker", "controller"}
        wait_until(lambda: (run.read_json(run.results_file) if run.results_file.exists() else {}).get("phase") == "timeline",
                   what="the controller to start the timeline")
        status = runner.status(run_dir)
        assert status["controller"]["url"].startswith("http://127.0.0.1:")
        assert status["summary"]["reachable"] == 4
    finally:
        summary = runner.down(run_dir)
    assert summary["clean"] and summary["removed"]["process"] == 2
    nothing_left(run)


def test_unknown_backends_say_so_with_exit_code_2() -> None:
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'") as err:
        backend_class("nope")
    assert err.value.exit_code == 2


def test_restart_node_comes_back_on_the_same_address(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    be.up(plan_file(scenario(tmp_path, nodes=3)))
    try:
        be.wait_ready(timeout=30)
        be.restart_node("node-1", wipe_datadir=True)
        assert ["node-1"] in be.host_groups()  # a process of its own now
        assert runner.status(run.path)["nodes"]["node-1"]["reachable"]
        assert "node-node-1-1" in {m.name for m in be.members()}
    finally:
        be.down()
    nothing_left(run)


def test_a_stopping_nodes_process_is_never_dead_while_the_node_counts_as_running(tmp_path: Path) -> None:
    """A restarted node runs alone in its process. While the timeline stops it, another node's
    wait_ready (raise_if_crashed) may look at every process: the node must count as stopped before
    its process is gone, or concurrent restarts of a group report each other as crashed."""
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    be.up(plan_file(scenario(tmp_path, nodes=3)))
    try:
        be.wait_ready(timeout=30)
        be.restart_node("node-1")
        host = lw.host_of(run.load_state(), "node-1")
        assert host.nodes == ["node-1"]
        stopping = threading.Thread(target=be.stop_node, args=("node-1",))
        stopping.start()
        dead_but_running = 0
        while stopping.is_alive():
            gone = not lw.live_groups({host.pgid})
            if gone and "node-1" not in run.load_state().stopped_nodes:
                dead_but_running += 1
        stopping.join()
        assert dead_but_running == 0
        be.raise_if_crashed()  # the other nodes' view: nothing crashed
    finally:
        be.down()
    nothing_left(run)


def test_a_crash_check_whose_state_predates_a_concurrent_stop_does_not_report_it(tmp_path: Path) -> None:
    """The interleaving one CI run hit while a group of four restarted at once: another thread's
    raise_if_crashed reads the state, then this node is stopped (recorded, signalled, gone) before
    that thread looks at the processes. The dead process is a stop, not a crash. The stale read is
    made here by running the stop inside the check's first state read."""
    run = RunDir(tmp_path / "run")
    be = make_backend("local", run)
    be.up(plan_file(scenario(tmp_path, nodes=3)))
    try:
        be.wait_ready(timeout=30)
        be.restart_node("node-1")  # alone in its process: stopping it ends that process
        host = lw.host_of(run.load_state(), "node-1")
        read_state = be._state
        reads = []

        def read_then_stop():
            state = read_state()
            if not reads:
                reads.append(state)
                be.stop_node("node-1")  # its own reads come back here and go straight through
            return state

        be._state = read_then_stop
        be.raise_if_crashed()
        assert not lw.live_groups({host.pgid})  # the process was gone when the check looked
        assert "node-1" not in reads[0].stopped_nodes  # and the first read predated the stop
        be._state = read_state
        be.raise_if_crashed()
    finally:
        be.down()
    nothing_left(run)


def test_a_deploy_onto_addresses_in_use_starts_nothing_and_says_so(tmp_path: Path) -> None:
    from harness.backends.base import AddressesInUse

    plan = plan_file(scenario(tmp_path, nodes=3))
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((plan.peers()[1].address, plan.peers()[1].p2p_port))
    squatter.listen()
    run = RunDir(tmp_path / "run")
    try:
        with pytest.raises(AddressesInUse, match="already in use") as err:
            make_backend("local", run).up(plan)
        assert err.value.exit_code == 2
        assert not run.exists()  # nothing started, not even a run directory
        assert f"held by pid {os.getpid()}: " in str(err.value), str(err.value)  # the squatter: this process
    finally:
        squatter.close()


def test_an_address_held_by_no_visible_process_is_said_so(tmp_path: Path) -> None:
    """A listener no descriptor table here shows, as one in another pid namespace sharing this
    loopback (a container, another user's CI job): made real by passing the socket through a unix
    socket pair and closing every descriptor of it, so it lives only in the pair's queue."""
    from harness.backends.base import AddressesInUse

    plan = plan_file(scenario(tmp_path, nodes=3))
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((plan.peers()[1].address, plan.peers()[1].p2p_port))
    squatter.listen()
    pair = socket.socketpair(socket.AF_UNIX)
    socket.send_fds(pair[0], [b"x"], [squatter.fileno()])
    squatter.close()
    try:
        with pytest.raises(AddressesInUse, match="already in use") as err:
            make_backend("local", RunDir(tmp_path / "run")).up(plan)
        assert "(held by no process visible here)" in str(err.value), str(err.value)
    finally:
        _, (fd,), _, _ = socket.recv_fds(pair[1], 1, 1)
        os.close(fd)
        pair[0].close()
        pair[1].close()


def test_down_right_after_deploy_stops_the_controller_on_sigterm(tmp_path: Path) -> None:
    """`down` while the detached controller still waits for the nodes (its wait_ready is a thread):
    it leaves on SIGTERM at once instead of waiting for that thread until the grace runs out and
    SIGKILL ends it (harness/run/detached.py)."""
    run_dir = tmp_path / "run"
    runner.deploy(scenario(tmp_path, nodes=4, duration="60s"), run_dir=run_dir, wait=False)
    summary = runner.down(run_dir)
    assert summary["clean"] and summary["forced"]["process"] == 0, summary
