"""bitcoind members on the local backend, end to end with the real binary (docs/bitcoind.md):
two bitcoinds and 20 light nodes from scenarios/mixed-bitcoind.yaml; a wallet payment of bitcoind-0
reaches bitcoind-1 byte-identical through the light nodes (the bitcoinds never link directly); their
first-seen times and peers are in report.json; `down` leaves no bitcoind running. Both wallets are
funded on one chain by the time the deploy returns; a bitcoind that does not connect a funder's tip
is named."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.backends.client import ControlClient
from harness.backends.funding import fund_wallets
from harness.backends.local import processes as lw
from harness.backends.registry import make_backend
from harness.cli.app import app
from harness.errors import BackendError
from harness.plan.model import Plan
from harness.run import runner
from harness.run.rundir import RunDir
from harness_node.bitcoind.launch import RPC
from tests.bitcoind import require_bitcoind

pytestmark = [pytest.mark.slow, pytest.mark.bitcoind, pytest.mark.timeout(400)]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "mixed-bitcoind.yaml"
RELAY_TIMEOUT_S = 120.0  # the tx through the light nodes; a few s when idle


def rpc_of(run: RunDir, plan: Plan, name: str) -> RPC:
    """The member's RPC: its address, one port above its control API, the run's token as password."""
    spec = plan.node(name)
    return RPC(spec.address, spec.control_port + 1, run.load_state().control_token or "")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # RPC not answering yet / tx not there yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def test_a_wallet_tx_crosses_the_light_network_between_two_bitcoinds(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_BITCOIND", str(require_bitcoind()))
    run = RunDir(tmp_path / "run")
    runner.deploy(SCENARIO, "local", run.path, wait=True)
    plan = Plan.from_json(run.plan_file.read_text())
    try:
        btc0, btc1 = rpc_of(run, plan, "bitcoind-0"), rpc_of(run, plan, "bitcoind-1")
        # funded while the run got ready: 101 blocks each, in turn, on one chain both have connected
        assert btc0("getbestblockhash") == btc1("getbestblockhash") and btc0("getblockcount") == 202
        assert btc0("getbalance") > 0 and btc1("getbalance") > 0
        record = runner.inject(run.path, "inject_tx", "bitcoind-0")
        (txid,) = record["result"]["txids"]
        raw0 = btc0("getrawtransaction", txid)
        raw1 = wait_for(lambda: btc1("getrawtransaction", txid), RELAY_TIMEOUT_S, f"{txid} at bitcoind-1")
        assert raw1 == raw0
        # through the light nodes: bitcoind-1 has no link to bitcoind-0
        b0 = plan.node("bitcoind-0").address
        assert all(p["addr"].rsplit(":", 1)[0] != b0 for p in btc1("getpeerinfo"))
        rep, _ = runner.report(run.path, tmp_path / "report")
        report = json.loads((tmp_path / "report" / "report.json").read_text())
        members = report["bitcoind"]
        assert sorted(members) == ["bitcoind-0", "bitcoind-1"]
        (seen,) = [p for p in members["bitcoind-1"]["propagation"] if p["item_id"] == txid]
        assert seen["origin_node"] == "bitcoind-0" and 0 <= seen["delay_s"] < RELAY_TIMEOUT_S
        light, spam = set(plan.names("honest")), set(plan.names("attacker"))
        for name in members:  # each dialled its 8 planned light nodes (-connect) and nothing else
            peers = members[name]["peers"]
            outbound = [p["peer"] for p in peers if p["direction"] == "outbound"]
            assert set(outbound) <= light and len(outbound) == 8
            # inbound: only the scenario's spammers (from 30 s), which may be connected by now
            assert {p["peer"] for p in peers if p["direction"] == "inbound"} <= spam
        assert report["propagation"]["items"][0]["item_id"] == txid

        # funding waits for every bitcoind to connect the funder's tip, and names one that does not
        runner.inject(run.path, "pause_node", "bitcoind-1")
        btc0("generatetoaddress", 1, btc0("getnewaddress"))  # a tip the paused one cannot connect
        eps = make_backend("local", run).node_endpoints()

        async def fund() -> None:
            async with ControlClient(run.load_state().control_token, timeout=2.0, retries=0) as client:
                await fund_wallets(client, [eps["bitcoind-0"], eps["bitcoind-1"]], timeout=3.0)

        with pytest.raises(BackendError, match="bitcoind-1 did not connect bitcoind-0's funding blocks"):
            asyncio.run(fund())
    finally:
        summary = runner.down(run.path)
    state = run.load_state()
    bitcoinds = [r for r in lw.records(state) if r.kind == "bitcoind"]
    assert len(bitcoinds) == 2 and lw.live_groups({r.pgid for r in bitcoinds}) == {}
    assert not summary["left"].get("process")
    for name in ("bitcoind-0", "bitcoind-1"):
        spec = plan.node(name)
        assert not any(lw.port_is_bound(spec.address, p) for p in (spec.p2p_port, spec.control_port, spec.control_port + 1))


def test_a_binary_whose_magic_differs_from_the_scenarios_is_refused_before_anything_starts(tmp_path):
    binary = require_bitcoind()  # Bitcoin SV: regtest magic dab5bffa
    scenario = tmp_path / "core-magic.yaml"
    scenario.write_text(SCENARIO.read_text().replace("magic: dab5bffa", "magic: fabfb5da"))
    result = CliRunner().invoke(app, ["deploy", str(scenario), "--run-dir", str(tmp_path / "run"), "--bitcoind", str(binary)])
    assert result.exit_code == 2
    assert "dab5bffa" in result.output and "network.magic" in result.output
    assert not (tmp_path / "run" / "state.json").exists()


def test_a_missing_binary_is_named(tmp_path):
    result = CliRunner().invoke(app, ["deploy", str(SCENARIO), "--run-dir", str(tmp_path / "run"),
                                      "--bitcoind", str(tmp_path / "no-such-bitcoind")])
    assert result.exit_code == 2 and "no-such-bitcoind" in result.output and "--bitcoind" in result.output
    assert not (tmp_path / "run" / "state.json").exists()
