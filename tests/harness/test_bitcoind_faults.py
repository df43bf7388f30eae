"""pause_node, resume_node and restart_node of a real bitcoind member on the local backend, through
the timeline's actions (`runner.inject`, what `harness inject` and a scenario's faults run):
paused, its control API, its RPC and a P2P peer of the test get no answer (SIGSTOP of the member's
process group) and its light-node peers drop it after their ping timeout; resumed, all three answer again, the frozen ping included; restarted, it comes back
in a new process with its chain (the same tip) and dials its planned light nodes again."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.local import processes as lw
from harness.backends.registry import make_backend
from harness.run import runner
from harness.run.rundir import RunDir
from harness_node.bitcoind.launch import RPC
from tests.bitcoind import require_bitcoind
from tests.harness.bitcoind_faults import (
    ANSWER_TIMEOUT_S, SCENARIO, SILENT_S, pings_unanswered, probe, silent, status, wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.bitcoind, pytest.mark.timeout(600)]

# Core's 20 min ping timeout at the scenario's time_scale 0.05 is 60 s, plus a ping interval (6 s),
# plus a loaded machine.
PING_TIMEOUT_S = 240.0


def test_pause_resume_and_restart_a_bitcoind_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BITCOIND", str(require_bitcoind()))
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(SCENARIO.format(nodes=4))
    run = RunDir(tmp_path / "run")
    state = runner.deploy(scenario, "local", run.path, wait=True)
    token = state.control_token or ""
    be = make_backend("local", run)
    spec = be.plan.node("bitcoind-0")
    ep = be.node_endpoints()["bitcoind-0"]
    rpc = RPC(spec.address, spec.control_port + 1, token)
    planned = sorted(spec.config["connect"])
    peer = None
    try:
        block = runner.inject(run.path, "inject_block", "bitcoind-0")["result"]
        tip = rpc("getbestblockhash")
        assert tip in str(block)
        wait_for(lambda: sorted(p["addr"] for p in rpc("getpeerinfo") if not p["inbound"]) == planned,
                 ANSWER_TIMEOUT_S, "bitcoind-0 connected to its planned light nodes")
        peer = probe(spec.address, spec.p2p_port)
        eps = be.node_endpoints()
        lights = [n.name for n in be.plan.peers() if f"{n.address}:{n.p2p_port}" in planned]

        def links_from_bitcoind() -> set[str]:
            """The light nodes' inbound peers that are bitcoind's connections: it dials from 127.0.0.1
            (it does not bind its outgoing sockets), which no light node does."""
            return {f"{name} {p['address']}" for name in lights for p in status(token, eps[name], 10.0)["peers"]
                    if p["direction"] == "inbound" and p["address"].startswith("127.0.0.1:")}

        before = wait_for(lambda: len(links_from_bitcoind()) == len(lights) and links_from_bitcoind(),
                          ANSWER_TIMEOUT_S, "the light nodes to list bitcoind-0's links")

        runner.inject(run.path, "pause_node", "bitcoind-0")
        host = lw.host_of(run.load_state(), "bitcoind-0")
        states = {pid: lw._stat_fields(pid)[0] for pid in lw.live_groups({host.pgid})[host.pgid]}
        assert len(states) >= 2 and set(states.values()) == {"T"}, states  # supervisor and bitcoind stopped
        assert silent(token, ep)
        with pytest.raises(OSError):  # urllib's timeout is an OSError
            rpc("getblockcount", timeout=SILENT_S)
        assert pings_unanswered(peer)
        # its light-node peers find it silent: their pings go unanswered and after their ping timeout
        # (20 min of Core time, 60 s at time_scale 0.05) they drop it
        wait_for(lambda: not (links_from_bitcoind() & before), PING_TIMEOUT_S,
                 "the light nodes to drop the silent bitcoind-0")

        runner.inject(run.path, "resume_node", "bitcoind-0")
        assert status(token, ep, ANSWER_TIMEOUT_S)["tip"] == tip
        assert rpc("getbestblockhash") == tip
        peer.ping_roundtrip(timeout=ANSWER_TIMEOUT_S)  # the test's link survived the freeze
        assert not peer.closed
        wait_for(lambda: sorted(p["addr"] for p in rpc("getpeerinfo") if not p["inbound"]) == planned,
                 ANSWER_TIMEOUT_S, "the resumed bitcoind-0 to dial its dropped light nodes again")

        peer.close()
        peer = None
        runner.inject(run.path, "restart_node", "bitcoind-0")
        state = run.load_state()
        host2 = lw.host_of(state, "bitcoind-0")
        assert host2.name.startswith("node-bitcoind-0-") and host2.pgid != host.pgid
        assert not lw.live_groups({host.pgid})
        assert status(token, ep, ANSWER_TIMEOUT_S)["tip"] == tip  # its chain, from its datadir
        wait_for(lambda: sorted(p["addr"] for p in rpc("getpeerinfo") if not p["inbound"]) == planned,
                 ANSWER_TIMEOUT_S, "the restarted bitcoind-0 to dial its planned light nodes again")
        # paused again, then `down`: the frozen member still gets its clean stop
        runner.inject(run.path, "pause_node", "bitcoind-0")
    finally:
        if peer is not None:
            peer.close()
        summary = runner.down(run.path)
    assert not summary["left"].get("process")
    assert summary["forced"].get("process", 0) == 0  # SIGCONT after SIGTERM: no SIGKILL was needed
    assert not any(lw.port_is_bound(spec.address, p) for p in (spec.p2p_port, spec.control_port, spec.control_port + 1))
