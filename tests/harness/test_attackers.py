"""Attackers that run as passive nodes (sybil: answer and never dial; an eclipse attacker is an active
attack-process identity, next to them in the plan), the clear
refusal of the kinds with no implementation yet, and the rogue seeder that takes over the honest
seeder's address. Real node and seeder processes on loopback, real DNS queries with dnspython."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from typer.testing import CliRunner

from harness.plan.model import Plan
from harness.run import runner
from harness.backends.local import processes as lw
from harness.backends.registry import make_backend
from harness.cli.app import app
from harness.controller import timeline
from harness.backends.client import ControlClient, call_sync
from harness.controller.collector import Collector
from harness.errors import ExitCode, ScenarioError
from harness.analysis.figures.eclipse import attacker_share
from harness.plan.model import Endpoint
from harness.plan.planner import CONTROL_PORT, DNS_PORT, LoopbackAllocator, plan
from harness.plan.model import Event
from harness.run.rundir import RunDir
from harness.scenario import parse_scenario
from harness_node.config import NodeConfig
from tests.harness.test_teardown import assert_nothing_left, wait_until

pytestmark = pytest.mark.timeout(120)

cli = CliRunner()
NEVER_DIALS_WINDOW = 3.0  # seconds a sybil that knows addresses is watched: 6 rounds of the 500 ms connect loop

BOTH_KINDS = """\
name: passive
duration: 30s
network: {nodes: 5, time_scale: 0.05}
attackers:
  - {kind: sybil, count: 6, netgroups: 3}
  - {kind: eclipse, name: eclipsers, count: 4, netgroups: 2}
"""

UNRUNNABLE = """\
name: rogue-only
duration: 30s
network: {nodes: 4, time_scale: 0.05}
attackers:
  - {kind: sybil, count: 2}
  - {kind: malicious_seeder, name: rogue, count: 2}
"""

class AsideAllocator(LoopbackAllocator):
    """The loopback layout moved to /16s and a seeder address the shipped scenarios and the other
    tests do not use, so this module's network never collides with theirs."""

    HONEST_GROUPS = range(210, 230)  # inside the attackers range of the default layout: no honest node of a 1,000-node run is there
    ATTACKER_GROUPS = range(230, 240)
    SEEDER = "127.0.54.1"

    def assign(self, scenario, members):  # type: ignore[no-untyped-def]
        endpoints = super().assign(scenario, members)
        if "seeder" in endpoints:
            endpoints["seeder"] = Endpoint(address=self.SEEDER, p2p_port=DNS_PORT, control_port=CONTROL_PORT)
        return endpoints


# 6 honest nodes in 127.210-215/16, 6 sybils in 127.230/16 and 127.231/16. The seeder serves every one
# of them (poison with an explicit list), so honest nodes learn the sybils at once and, one
# outbound peer per netgroup, dial both sybil /16s.
HONEST = [f"127.{210 + i}.0.1" for i in range(6)]
SYBILS = [f"127.{230 + i % 2}.0.{1 + i // 2}" for i in range(6)]
SIX_AND_SIX = f"""\
name: six-and-six
seed: 11
duration: 2m
network: {{nodes: 6, time_scale: 0.05}}
seeder:
  mode: poison
  params: {{addresses: [{", ".join(HONEST + SYBILS)}]}}
  ttl: 60
attackers:
  - {{kind: sybil, count: 6, netgroups: 2}}
"""


# --- planning ---------------------------------------------------------------------------------------

def test_sybil_attackers_are_planned_as_nodes_that_never_dial_and_eclipse_as_attack_identities() -> None:
    result = plan(parse_scenario(BOTH_KINDS))
    attackers = [n for n in result.nodes if n.role == "attacker"]
    assert len(attackers) == 10
    for node in attackers:
        if node.group == "eclipsers":  # active (harness_node.attack.eclipse): tests/harness/test_eclipse_plan.py
            assert node.config["attack"]["kind"] == "eclipse" and "peering" not in node.config
            continue
        config = NodeConfig.from_dict(node.config)  # the node's own vocabulary: harness-node accepts it
        assert (config.bind, config.port) == (node.address, node.p2p_port)
        assert config.connect == [] and config.addnode == []
        peering = config.peering
        assert (peering.outbound_full_relay, peering.block_relay) == (0, 0)
        assert not peering.countermeasures.feelers
        assert peering.seeders == [] and peering.fixed_seeds == [] and peering.seednodes == []
        assert config.extra == {"role": "attacker", "kind": "sybil", "group": node.group}
    # the planner's /16 spread holds: sybil over 3 netgroups, eclipsers over 2 others
    groups = {g: {n.address.rsplit(".", 2)[0] for n in attackers if n.group == g} for g in ("sybil", "eclipsers")}
    assert len(groups["sybil"]) == 3 and len(groups["eclipsers"]) == 2 and not groups["sybil"] & groups["eclipsers"]
    honest = NodeConfig.from_dict(next(n for n in result.nodes if n.role == "honest").config)
    assert honest.peering.outbound_full_relay == 8 and honest.peering.countermeasures.feelers  # untouched


# --- kinds with no implementation yet ---------------------------------------------------------------

def test_run_and_deploy_refuse_an_unimplemented_attacker_before_starting_anything(tmp_path: Path) -> None:
    path = tmp_path / "rogue-only.yaml"
    path.write_text(UNRUNNABLE)
    assert cli.invoke(app, ["validate", str(path)]).exit_code == ExitCode.OK  # the schema has their place
    planned = cli.invoke(app, ["plan", str(path)])
    assert planned.exit_code == ExitCode.OK and "rogue-0" in planned.stdout
    for command in ("run", "deploy"):
        run_dir = tmp_path / f"run-{command}"
        refused = cli.invoke(app, [command, str(path), "--run-dir", str(run_dir)])
        assert refused.exit_code == ExitCode.INVALID_INPUT, refused.output
        message = " ".join(refused.stderr.split())  # rich may wrap the line
        assert (f"{path}: attackers[1]: kind malicious_seeder does not run: a malicious seeder is the seeder's own "
                f"mode") in message and "attackers of kind bootstrap, eclipse, spam, spy, sybil run today" in message
        assert not run_dir.exists()  # no run dir, so no process was ever recorded or started


def test_a_rogue_seeder_needs_addresses_to_serve() -> None:
    no_attackers = """\
name: lonely
duration: 30s
network: {nodes: 3}
faults:
  - {at: 5s, action: seeder_mode, duration: 5s, params: {mode: rogue}}
"""
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.params\.mode: a rogue seeder serves the attackers' addresses"):
        parse_scenario(no_attackers)
    parse_scenario(no_attackers.replace("{mode: rogue}", "{mode: rogue, params: {addresses: [127.1.0.1]}}"))


# --- a running network with sybils ------------------------------------------------------------------

@pytest.fixture(scope="module")
def six_and_six(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunDir]:
    """Deployed without a controller (no timeline): the tests act through runner.inject."""
    run = RunDir(tmp_path_factory.mktemp("six-and-six") / "run")
    view = plan(parse_scenario(SIX_AND_SIX), allocator=AsideAllocator())
    assert [n.address for n in view.peers()] == HONEST + SYBILS
    be = make_backend("local", run)
    try:
        be.up(view)
        be.wait_ready()
        yield run
    finally:
        runner.down(run.path)


def statuses(run: RunDir) -> dict[str, dict]:
    be = make_backend("local", run)
    eps = list(be.node_endpoints().values())

    async def poll() -> dict[str, dict]:
        async with ControlClient(run.load_state().control_token) as client:
            return await client.gather(eps, client.status)

    return asyncio.run(poll())


def attacker_shares(run: RunDir) -> dict[str, float]:
    """Each honest victim's attacker share of outbound peers, as the controller's collector sees it."""
    be = make_backend("local", run)
    view = Plan.from_json(run.plan_file.read_text())

    async def observe() -> dict[str, float]:
        async with ControlClient(run.load_state().control_token) as client:
            obs = await Collector(view, client, be.node_endpoints(), time.time()).observe([])
        return {v.victim: attacker_share(v.samples[-1]) for v in obs.victims}

    return asyncio.run(observe())


def test_sybils_accept_honest_peers_and_never_dial(six_and_six: RunDir) -> None:
    shares: dict[str, float] = {}

    def some_victim_uses_a_sybil() -> bool:
        shares.update(attacker_shares(six_and_six))
        return any(share > 0 for share in shares.values())

    wait_until(some_victim_uses_a_sybil, timeout=30, what="an honest node with a sybil outbound peer")
    assert sorted(shares) == [f"node-{i}" for i in range(6)]  # with attackers and no check: every honest node

    def sybils() -> dict[str, dict]:
        return {name: s for name, s in statuses(six_and_six).items() if name.startswith("sybil-")}

    def known(status: dict) -> int:
        return status["peering"]["addrman"]["new"] + status["peering"]["addrman"]["tried"]

    # A sybil dialled by an honest node has its self-advertisement in its address table: a node
    # with outbound slots would dial it within one 500 ms connect-loop round.
    wait_until(lambda: any(known(s) for s in sybils().values()), timeout=15, what="a sybil that knows an address")
    deadline = time.monotonic() + NEVER_DIALS_WINDOW
    while time.monotonic() < deadline:  # watching for a violation over the window, not waiting for one
        for name, status in sybils().items():
            assert [p for p in status["peers"] if p["direction"] == "outbound"] == [], name
            assert status["peering"]["dials"] == 0 and status["bootstrap"]["queried"] == [], name
        time.sleep(0.2)
    final = sybils()
    assert len(final) == 6 and any(p["direction"] == "inbound" for s in final.values() for p in s["peers"])


def test_the_collector_keeps_sampling_a_victim_across_its_restart(six_and_six: RunDir) -> None:
    """One client for the whole run, as the controller has: a restarted victim must stay visible
    (a kept-alive connection would still reach the worker that hosted it before)."""
    be = make_backend("local", six_and_six)
    view = Plan.from_json(six_and_six.plan_file.read_text())

    async def sample_restart_sample() -> tuple[list[int], list[str]]:
        async with ControlClient(six_and_six.load_state().control_token) as client:
            collector = Collector(view, client, be.node_endpoints(), time.time())
            await collector.poll()
            await asyncio.to_thread(be.restart_node, "node-0", False)
            await collector.poll()
            obs = await collector.observe([], poll=False)
        return [len(v.samples) for v in obs.victims if v.victim == "node-0"], obs.unreachable

    samples, unreachable = asyncio.run(sample_restart_sample())
    assert samples == [2] and unreachable == []


def seed_answer() -> list[str]:
    """The A records a node bootstrapping now would get: x9.<zone> at the planned seeder address."""
    query = dns.message.make_query("x9.seed.testnet.", dns.rdatatype.A)
    reply = dns.query.udp(query, AsideAllocator.SEEDER, port=DNS_PORT, timeout=2)
    return sorted(r.address for rrset in reply.answer for r in rrset)


def seeder_status(run: RunDir) -> dict:
    ep = make_backend("local", run).seeder_endpoint()
    return call_sync(run.load_state().control_token, lambda c: c.seeder_status(ep))


def test_a_rogue_seeder_takes_over_the_seeders_address_and_serves_only_attackers(six_and_six: RunDir) -> None:
    assert set(seed_answer()) & set(HONEST)  # the planned seeder serves honest nodes too
    honest_seeder = lw.record(six_and_six.load_state(), "seeder")

    record = runner.inject(six_and_six.path, "seeder_mode", params={"mode": "rogue"})
    assert record["ok"] and record["result"]["mode"] == "rogue" and record["result"]["previous"] == "poison"
    assert sorted(record["result"]["addresses"]) == sorted(SYBILS)
    for _ in range(5):  # every answer, not one lucky sample
        answer = seed_answer()
        assert answer and set(answer) <= set(SYBILS), answer
    status = seeder_status(six_and_six)
    assert status["crawler"] is False and status["mode"] == "poison"
    state = six_and_six.load_state()
    assert [p.name for p in lw.records(state) if p.kind == "seeder"] == ["seeder", "seeder-rogue-2"]
    assert honest_seeder.pid not in {lw.record(state, m.name).pid for m in make_backend("local", six_and_six).members() if m.alive}

    back = runner.inject(six_and_six.path, "seeder_mode", params={"mode": "honest"})  # any other mode: honest again
    assert back["ok"], back
    assert seeder_status(six_and_six)["crawler"] is True
    assert [p.name for p in lw.records(six_and_six.load_state()) if p.kind == "seeder"][-1] == "seeder-3"


    # the timeline's begin/end pair: the rogue seeder for one second, then the honest one again
    rogue_for_a_second = [Event(at=0.0, action="seeder_mode", nodes=["seeder"], params={"mode": "rogue"}, phase="begin", source="test"),
                          Event(at=1.0, action="seeder_mode", nodes=["seeder"], params={"mode": "rogue"}, phase="end", source="test")]
    records = play(six_and_six, rogue_for_a_second)
    assert [(r.action, r.ok, r.result.get("mode")) for r in records] == [
        ("seeder_mode", True, "rogue"), ("seeder_mode_restore", True, "honest")], records
    assert seeder_status(six_and_six)["crawler"] is True
    # the restored seeder starts from its seeds and crawls: it answers honest nodes once they are verified
    wait_until(lambda: set(seed_answer()) & set(HONEST), timeout=30, what="the restored seeder answering honest nodes")

    runner.inject(six_and_six.path, "seeder_mode", params={"mode": "rogue"})  # leave a rogue one for `down`


def play(run: RunDir, events: list[Event]) -> list[timeline.EventRecord]:
    """Execute a timeline against the deployed run, as the controller does."""
    be = make_backend("local", run)
    view = Plan.from_json(run.plan_file.read_text())

    async def execute() -> list[timeline.EventRecord]:
        async with ControlClient(run.load_state().control_token) as client:
            ctx = timeline.TimelineContext(view, be, client, run, be.node_endpoints(), be.seeder_endpoint())
            return await timeline.execute(ctx, events)

    return asyncio.run(execute())


def test_down_stops_whichever_seeder_runs(six_and_six: RunDir) -> None:
    assert seeder_status(six_and_six)["crawler"] is False  # the rogue one from the previous test
    result = runner.down(six_and_six.path)
    assert result["clean"] and "seeder-rogue-6" in result["stopped"]
    assert_nothing_left(six_and_six)
    seeder = AsideAllocator.SEEDER
    assert not lw.port_is_bound(seeder, DNS_PORT, udp=True) and not lw.port_is_bound(seeder, CONTROL_PORT)


# --- bootstrap attackers and the malicious_seeder kind ----------------------------------------------

BOOTSTRAP = """\
name: boot
duration: 30s
network: {nodes: 4, time_scale: 0.05}
attackers:
  - {kind: bootstrap, name: poisoners, count: 3, netgroups: 3, targets: "node-0", params: {block_delay: 300s}}
"""


def test_bootstrap_attackers_are_planned_as_listening_identities_of_an_attacker_process() -> None:
    result = plan(parse_scenario(BOOTSTRAP), seed=1)
    identities = [n for n in result.nodes if n.role == "attacker"]
    assert len(identities) == 3 and len({n.address.rsplit(".", 2)[0] for n in identities}) == 3
    for node in identities:
        spec = node.config["attack"]
        assert spec["kind"] == "bootstrap" and spec["group"] == "poisoners" and spec["target_names"] == ["node-0"]
        assert (spec["address"], spec["port"]) == (node.address, node.p2p_port)  # where the seeder sends victims
        # every identity advertises the whole entry, even alone in its process (a container, a pod)
        assert spec["params"] == {"push_addresses": True, "push_every": 60.0, "censor": True, "delay_blocks": True,
                                  "block_delay": 300.0, "attacker_addresses": [n.endpoint for n in identities]}
    bad = BOOTSTRAP.replace("block_delay: 300s", "block_delay: 700s")  # past Core's 600 s download timeout
    with pytest.raises(ScenarioError, match="block_delay"):
        parse_scenario(bad)
    with pytest.raises(ScenarioError, match="bogus"):
        parse_scenario(BOOTSTRAP.replace("block_delay: 300s", "bogus: 1"))


def test_a_malicious_seeder_attacker_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    path = tmp_path / "ms.yaml"
    path.write_text(UNRUNNABLE)  # a sybil entry, then a malicious_seeder one
    run_dir = tmp_path / "run"
    refused = cli.invoke(app, ["run", str(path), "--run-dir", str(run_dir)])
    assert refused.exit_code == ExitCode.INVALID_INPUT, refused.output
    message = " ".join(refused.stderr.split())
    assert "attackers[1]: kind malicious_seeder does not run: a malicious seeder is the seeder's own mode" in message
    assert "seeder_mode" in message and "kind bootstrap" in message and not run_dir.exists()
