"""The planner: pure, reproducible from the seed, every node its own address, timeline concrete."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import pytest

from harness.plan.model import Plan
from harness.plan.planner import plan
from harness.scenario import load_scenario, parse_scenario
from harness.scenario.selectors import Member, Selector, match, pattern_matcher, pick, rng_for

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

RANDOM = """
name: random-picks
seed: 3
duration: 2m
network:
  total: 30
  groups:
    - {name: core, percent: 33, misbehaviour_policy: discourage, countermeasures: {feelers: false}}
    - {name: edge, percent: 33}
    - {name: rest, percent: 34}
  bitcoind: 1
attackers:
  - {kind: spy, count: 5, netgroups: 2, targets: {role: honest, mode: fixed, value: 4}}
  - {kind: spam, name: spammers, count: 3, params: {behaviours: [{behaviour: garbage}, {behaviour: ping-flood}]}}
workload:
  tx_rate: 1
  from: {role: honest, mode: random-max-percent, value: 50}
  start: 10s
  stop: 40s
  block_interval: 10s
faults:
  - {at: 5s, action: pause_node, target: {group: edge, mode: one}, duration: 20s}
  - {at: 30s, action: restart_node, target: {role: honest, mode: percent, value: 20}, params: {wipe_datadir: true}}
  - {at: 50s, action: disconnect_peer, target: node-0, params: {peer: {role: attacker, mode: one}}}
expect:
  - {check: not_eclipsed, victim: {group: core, mode: fixed, value: 2}}
"""


def random_plan(seed: int | None = None) -> Plan:
    return plan(parse_scenario(RANDOM, "random.yaml"), seed=seed)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_same_scenario_and_seed_give_the_same_bytes(path: Path):
    first, second = plan(load_scenario(path)), plan(load_scenario(path))
    assert first.to_json() == second.to_json()
    assert first.digest == second.digest
    assert Plan.from_json(first.to_json()).digest == first.digest


def test_a_different_seed_changes_every_random_choice_but_not_the_layout():
    plans = [random_plan(seed) for seed in range(8)]
    assert len({p.digest for p in plans}) == 8
    # where randomness applies, the choice varies with the seed ...
    fault_picks = {tuple(p.timeline[0].nodes) for p in plans}
    workload_sources = {tuple(e.nodes[0] for e in p.timeline if e.action == "inject_tx") for p in plans}
    spy_targets = {tuple(p.node("spy-0").config["targets"]) for p in plans}
    assert len(fault_picks) > 1 and len(workload_sources) > 1 and len(spy_targets) > 1
    # ... while names and addresses do not depend on it
    assert len({tuple((n.name, n.address) for n in p.nodes) for p in plans}) == 1


def test_the_seed_option_overrides_the_file_seed():
    assert random_plan(3).digest == random_plan().digest
    assert random_plan(4).seed == 4


def test_every_node_has_its_own_loopback_address_and_honest_nodes_spread_over_netgroups():
    result = random_plan()
    addresses = [(n.address, n.p2p_port) for n in result.nodes]
    assert len(addresses) == len(set(addresses)) == 30 + 1 + 5 + 3 + 1 + 1  # + seeder + controller
    assert all(ipaddress.ip_address(n.address) in ipaddress.ip_network("127.0.0.0/8") for n in result.nodes)
    honest_groups = Counter(n.address.split(".")[1] for n in result.by_role("honest"))
    assert len(honest_groups) == 30  # 30 honest nodes, 30 different /16s
    attacker_groups = {n.address.rsplit(".", 2)[0] for n in result.by_role("attacker")}
    assert attacker_groups == {"127.100", "127.101", "127.102"}  # spy spans 2 /16s, spammers 1
    assert not attacker_groups & {n.address.rsplit(".", 2)[0] for n in result.by_role("honest")}
    assert (result.node("seeder").address, result.node("seeder").p2p_port) == ("127.0.53.1", 5353)
    assert result.node("controller").address == "127.0.0.1"


def test_the_allowlist_covers_every_peer_and_not_the_seeder_or_controller():
    result = random_plan()
    networks = [ipaddress.ip_network(text) for text in result.allowlist]
    for node in result.nodes:
        inside = any(ipaddress.ip_address(node.address) in net for net in networks)
        assert inside == (node.role in ("honest", "attacker", "bitcoind")), node.name
    # a node's own allowlist adds the seeder's /32 only: it checks every DNS query against it
    seeder = result.node("seeder")
    assert result.node("node-0").config["allowlist"] == result.allowlist + [f"{seeder.address}/32"]


def test_percent_groups_share_the_total_exactly_and_carry_their_overrides():
    result = random_plan()
    sizes = Counter(n.group for n in result.by_role("honest"))
    assert sizes == {"core": 10, "edge": 10, "rest": 10}  # 9.9 + 9.9 + 10.2 by largest remainder
    core, edge = result.node("node-0").config, result.node("node-10").config
    assert (core["extra"]["group"], core["misbehaviour_policy"]) == ("core", "discourage")
    assert core["peering"]["countermeasures"]["feelers"] is False
    assert core["peering"]["countermeasures"]["anchors"] is True
    assert (edge["extra"]["group"], edge["misbehaviour_policy"]) == ("edge", "ban")
    assert edge["peering"]["countermeasures"]["feelers"] is True


def test_node_configs_differ_in_rng_seed_and_point_at_the_seeder():
    result = random_plan()
    honest = result.by_role("honest")
    assert len({n.config["seed"] for n in honest}) == len(honest)
    assert honest[0].config["peering"]["seeders"] == ["seed.testnet.@127.0.53.1:5353"]
    bitcoind = result.node("bitcoind-0").config
    assert len(bitcoind["connect"]) == 8 and "-v2transport=0" in bitcoind["args"]
    assert all(f"-connect={peer}" in bitcoind["args"] for peer in bitcoind["connect"])


def test_every_honest_config_is_one_the_node_accepts_unchanged():
    from harness_node.config import NodeConfig

    for node in random_plan().by_role("honest"):
        cfg = NodeConfig.from_dict(node.config)
        assert (cfg.bind, cfg.port, cfg.name) == (node.address, node.p2p_port, node.name)
        assert cfg.peering.seeders and cfg.make_timers().bantime > 0


@pytest.mark.parametrize("nodes, workers", [(30, 16), (2000, 100), (10000, 500)])
def test_the_seeder_crawls_every_honest_node_with_workers_for_the_network_size(nodes: int, workers: int):
    from harness.backends.node_config import seeder_config
    from harness_node.seeder import SeederConfig

    result = plan(parse_scenario(f"name: big\nseed: 1\nduration: 1m\nnetwork: {{nodes: {nodes}}}\n"))
    config = SeederConfig(**seeder_config(result.seeder, "t"))
    assert config.concurrency == workers
    assert len(config.seeds) == nodes == len(set(config.seeds))
    assert config.warmup_share == 0.9  # adaptation 13: a testnet's seeder waits for its nodes to answer


def test_selector_modes_pick_the_stated_number_of_nodes():
    result = random_plan()
    assert len(result.node("spy-0").config["targets"]) == 4  # fixed 4
    assert len(result.node("spammers-0").config["targets"]) == 30  # default: every honest node
    restart = next(e for e in result.timeline if e.action == "restart_node")
    assert len(restart.nodes) == 6  # 20 % of 30
    eclipse = result.checks[0]
    assert len(eclipse.params["victim"]) == 2 and all(result.node(n).group == "core" for n in eclipse.params["victim"])
    disconnect = next(e for e in result.timeline if e.action == "disconnect_peer")
    assert len(disconnect.params["peer"]) == 1 and result.node(disconnect.params["peer"][0]).role == "attacker"


def test_the_timeline_is_absolute_sorted_and_expands_durations_and_workload():
    result = random_plan()
    times = [e.at for e in result.timeline]
    assert times == sorted(times)
    pause = [e for e in result.timeline if e.action == "pause_node"]
    assert [(e.at, e.phase) for e in pause] == [(5.0, "begin"), (25.0, "end")] and pause[0].nodes == pause[1].nodes
    txs = [e.at for e in result.timeline if e.source == "workload.tx"]
    assert txs == [float(t) for t in range(10, 40)]  # 1/s over [10 s, 40 s)
    blocks = [e.at for e in result.timeline if e.source == "workload.block"]
    assert blocks == [20.0, 30.0, 40.0]


def test_quickstart_plans_a_few_txs_a_block_and_one_restart():
    result = plan(load_scenario(ROOT / "scenarios" / "quickstart.yaml"))
    actions = Counter(e.action for e in result.timeline)
    assert actions == {"inject_tx": 10, "inject_block": 1, "restart_node": 1}
    assert {c.check for c in result.checks} == {"tx_propagation", "no_honest_banned"}
    assert len(result.by_role("honest")) == 12


def test_planning_does_not_change_the_scenario():
    scenario = parse_scenario(RANDOM, "random.yaml")
    before = scenario.model_dump_json()
    plan(scenario, seed=9)
    assert scenario.model_dump_json() == before


def test_patterns_are_numeric_ranges_and_globs():
    in_range = pattern_matcher("node-[0-9]")
    assert in_range("node-0") and in_range("node-9") and not in_range("node-10")
    assert pattern_matcher("node-[10-12]")("node-11") and not pattern_matcher("node-[10-12]")("node-13")
    assert pattern_matcher("spam-*")("spam-17") and not pattern_matcher("spam-*")("node-1")


def test_random_max_percent_never_exceeds_its_share_nor_selects_nothing():
    members = [Member(f"node-{i}", "honest") for i in range(10)]
    selector = Selector(role="honest", mode="random-max-percent", value=30)
    sizes = {len(pick(selector, members, rng_for(seed, "t"))) for seed in range(50)}
    assert sizes == {1, 2, 3}
    assert [m.name for m in match(Selector(nodes=["node-[2-3]", "node-7"]), members)] == ["node-2", "node-3", "node-7"]


PROFILES = """
name: profiles
duration: 10s
network:
  countermeasures: legacy
  groups:
    - {name: legacy-feelers, count: 1, countermeasures: {feelers: true}}
    - {name: today, count: 1, countermeasures: current}
    - {name: today-no-anchors, count: 1, countermeasures: {profile: current, anchors: false}}
"""


def test_countermeasure_profiles_expand_to_switches_and_groups_override_them():
    from harness_node.names import COUNTERMEASURE_PROFILES
    configs = {n.group: n.config["peering"]["countermeasures"] for n in plan(parse_scenario(PROFILES, "p.yaml")).nodes if n.role == "honest"}
    off = {group: {k for k, on in switches.items() if not on} for group, switches in configs.items()}
    assert off["legacy-feelers"] == set(COUNTERMEASURE_PROFILES["legacy"]) - {"feelers"}
    assert off["today"] == set()
    assert off["today-no-anchors"] == {"anchors"}


def test_self_advertise_in_ibd_reaches_every_node_config_and_mainnet_scale_uses_cores_rule():
    from harness_node.config import NodeConfig

    def configs(extra: str) -> list:
        text = f"name: ibd\nduration: 1m\nnetwork:\n  nodes: 3\n{extra}"
        return [NodeConfig.from_dict(n.config) for n in plan(parse_scenario(text, "ibd.yaml")).by_role("honest")]

    assert [c.peering.self_advertise_in_ibd for c in configs("")] == [True] * 3  # the testbed's default
    assert [c.peering.self_advertise_in_ibd for c in configs("  self_advertise_in_ibd: false\n")] == [False] * 3
    assert load_scenario(ROOT / "scenarios" / "mainnet-scale.yaml").network.self_advertise_in_ibd is False
