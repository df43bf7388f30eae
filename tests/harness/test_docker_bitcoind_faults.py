"""pause_node, resume_node and restart_node of a real bitcoind member on the docker backend, through
the timeline's actions (`runner.inject`), on the real engine with the real binary (with CI=true a
missing engine, base image or binary fails): paused (`docker pause`), its control API and a P2P
peer of the test get no answer; resumed, both answer again, the frozen ping included; restarted
(the container started again), it answers with its chain (the same tip) and dials its planned light
nodes again; `harness capture start` of it is refused (capture from the outside is the local backend's).
Only objects of this test's run are touched; the bitcoind image it built is removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from typer.testing import CliRunner

from harness.backends.docker import engine
from harness.backends.registry import make_backend
from harness.cli.app import app
from harness.run import runner
from harness.run.rundir import RunDir
from tests.harness.bitcoind_faults import ANSWER_TIMEOUT_S, SCENARIO, pings_unanswered, probe, silent, status, wait_for
from tests.harness.docker_bitcoind import bitcoind_run

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.bitcoind, pytest.mark.timeout(900)]

TAG = "harness-node:test-docker-bitcoind-faults"


def test_pause_resume_and_restart_a_bitcoind_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = None
    with bitcoind_run(tmp_path, monkeypatch, TAG, SCENARIO.format(nodes=4)) as run:
        client, state, run_dir = run.client, run.state, run.run_dir
        token = state.control_token or ""
        try:
            be = make_backend("docker", RunDir(run_dir))
            spec = be.plan.node("bitcoind-0")
            ep = be.node_endpoints()["bitcoind-0"]
            planned = sorted(spec.config["connect"])

            def outbound() -> list[str]:
                return sorted(p["address"] for p in status(token, ep, 10.0)["peers"] if p["direction"] == "outbound")

            # capture of a bitcoind member is the local backend's (from the outside): refused, with the reason
            result = CliRunner().invoke(app, ["capture", "start", "bitcoind-0", "--run-dir", str(run_dir)])
            assert result.exit_code != 0 and "409" in result.output and "local backend" in result.output, result.output

            runner.inject(run_dir, "inject_block", "bitcoind-0")
            tip = status(token, ep, ANSWER_TIMEOUT_S)["tip"]
            wait_for(lambda: outbound() == planned, ANSWER_TIMEOUT_S, "bitcoind-0 connected to its planned light nodes")
            peer = probe(ep.address, ep.port)
            (container,) = [c for c in engine.of_run(client, state.run_id)[0]
                            if c.labels["harness.io/member"] == "bitcoind-0"]

            runner.inject(run_dir, "pause_node", "bitcoind-0")
            container.reload()
            assert container.status == "paused"
            assert silent(token, ep)
            assert pings_unanswered(peer)

            runner.inject(run_dir, "resume_node", "bitcoind-0")
            assert status(token, ep, ANSWER_TIMEOUT_S)["tip"] == tip
            peer.ping_roundtrip(timeout=ANSWER_TIMEOUT_S)  # the link survived the freeze
            assert not peer.closed

            peer.close()
            peer = None
            started = container.attrs["State"]["StartedAt"]
            runner.inject(run_dir, "restart_node", "bitcoind-0")
            container.reload()
            assert container.status == "running" and container.attrs["State"]["StartedAt"] != started
            assert status(token, ep, ANSWER_TIMEOUT_S)["tip"] == tip  # its chain, from its datadir
            wait_for(lambda: outbound() == planned, ANSWER_TIMEOUT_S,
                     "the restarted bitcoind-0 to dial its planned light nodes again")
        finally:
            if peer is not None:
                peer.close()
