"""pause_node, resume_node and restart_node of a real bitcoind member on the docker backend, through
the timeline's actions (`runner.inject`), on the real engine with the real binary (with CI=true a
missing engine, base image or binary fails): paused (`docker pause`), its control API and a P2P
peer of the test get no answer; resumed, both answer again, the frozen ping included; restarted
(the container started again), it answers with its chain (the same tip) and dials its planned light
nodes again; `harness capture start` of it is refused (capture from the outside is the local backend's).
Only objects of this test's run are touched; the bitcoind image it built is removed."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest

from typer.testing import CliRunner

from harness.backends.docker import bitcoind as dbtc
from harness.backends.docker import engine
from harness.backends.images import LOCAL_BASE_IMAGE, build_node_image
from harness.backends.registry import make_backend
from harness.cli.app import app
from harness.run import runner
from harness.run.rundir import RunDir
from tests.bitcoind import require_bitcoind
from tests.harness.bitcoind_faults import ANSWER_TIMEOUT_S, SCENARIO, pings_unanswered, probe, silent, status, wait_for
from tests.real import docker_engine

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.bitcoind, pytest.mark.timeout(900)]

BASE_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", LOCAL_BASE_IMAGE)
TAG = "harness-node:test-docker-bitcoind-faults"


def test_pause_resume_and_restart_a_bitcoind_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = str(require_bitcoind())
    client = docker_engine(BASE_IMAGE)
    build_node_image(TAG, BASE_IMAGE, client=client)
    monkeypatch.setenv("HARNESS_IMAGE", TAG)
    monkeypatch.setenv("HARNESS_BITCOIND", binary)
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(SCENARIO.format(nodes=4))
    run_dir = tmp_path / "run"
    bitcoind_image = dbtc.image_tag(binary, client.images.get(TAG).id)
    peer = None
    try:
        state = runner.deploy(scenario, "docker", run_dir, wait=True)
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
            summary = runner.down(run_dir)
        assert not summary["left"].get("container")
        assert not any(engine.of_run(client, state.run_id))
    finally:
        try:
            client.images.remove(bitcoind_image, force=True)
        except docker.errors.ImageNotFound:
            pass
        client.close()
