"""Scenario errors from the library: located, one at a time, in plain words."""

from __future__ import annotations

import pytest

from harness.errors import ExitCode, HarnessError, ScenarioError
from harness.scenario import parse_scenario, validate_scenario
from harness.scenario.durations import DurationError, format_duration, parse_duration

BASE = "name: t\nduration: 1m\nnetwork:\n  nodes: 4\n"


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value


def test_a_scenario_error_is_invalid_input():
    error = error_of(BASE + "seed: x\n")
    assert isinstance(error, HarnessError) and error.exit_code == ExitCode.INVALID_INPUT == 2
    assert (error.file, error.line, error.column, error.path) == ("s.yaml", 5, 7, ("seed",))
    assert str(error) == "s.yaml:5:7: seed: must be a whole number (got 'x')"


@pytest.mark.parametrize("extra, path, words", [
    ("workload:\n  tx_rate: -1\n", "workload.tx_rate", "must be >= 0"),
    ("workload:\n  tx_rate: 1\n  stop: 2m\n", "workload.stop", "after the end of the scenario"),
    ("workload:\n  tx_rate: 1000\n  block_interval: 1s\nduration2: 1\n", "duration2", "unknown key"),
    ("faults:\n  - {at: 1s, action: restart_node, target: node-1, duration: 5s}\n", "faults[0].duration",
     "restart_node takes no duration"),
    ("faults:\n  - {at: 1s, action: stop_node}\n", "faults[0]", "stop_node needs a target"),
    ("faults:\n  - {at: 1s, action: stop_node, target: {role: honest, mode: fixed, value: 9}}\n",
     "faults[0].target.value", "matches only 4 node(s)"),
    ("faults:\n  - {at: 1s, action: stop_node, target: {role: honest, mode: all, value: 9}}\n",
     "faults[0].target.value", "mode 'all' takes no value"),
    ("faults:\n  - {at: 1s, action: stop_node, target: 'node-[a-b]'}\n", "faults[0].target", "bad pattern"),
    ("faults:\n  - {at: 1s, action: disconnect_peer, target: node-1, params: {address: nowhere}}\n",
     "faults[0].params.address", "not an IP address"),
    ("faults:\n  - {at: 1s, action: disconnect_peer, target: node-1}\n", "faults[0].params",
     "give exactly one of: peer"),
    ("faults:\n  - {at: 1s, action: seeder_mode, params: {mode: evil}}\n", "faults[0].params.mode", "must be one of"),
    ("attackers:\n  - {kind: sybil}\n  - {kind: sybil}\n", "attackers[1].kind", "already used"),
    ("attackers:\n  - {kind: sybil, name: node}\n", "attackers[0].name", "reserved"),
    ("attackers:\n  - {kind: spam, params: {behaviours: [{behaviour: garbage}, {behaviour: ping-flood}]}}\n",
     "attackers[0].count", "below the 2 identities"),
    ("attackers:\n  - {kind: spam, params: {behaviours: [{behaviour: garbag}]}}\n",
     "attackers[0].params.behaviours[0].behaviour", "unknown spam behaviour 'garbag'"),
    ("attackers:\n  - {kind: spam, params: {behaviours: [{behaviour: garbage, speed: 1}]}}\n",
     "attackers[0].params.behaviours[0].speed", "unknown key (allowed here: behaviour, rate"),
    ("attackers:\n  - {kind: eclipse, params: {trash: 5, flood: 1}}\n",
     "attackers[0].params.flood", "did you mean 'flood_every'? (allowed here: trash, trash_network"),
    ("attackers:\n  - {kind: eclipse, params: {trash_network: 127.0.0.0/8}}\n",
     "attackers[0].params.trash_network", "routable network"),
    ("attackers:\n  - {kind: eclipse, params: {advertise: everyone}}\n",
     "attackers[0].params.advertise", "must be one of: budget, own"),
    ("expect:\n  - {check: eclipsed, victim: node-1, min_share: 0}\n", "expect[0].min_share", "must be > 0"),
    ("expect:\n  - {check: not_eclipsed, victim: node-1, max_attacker_share: 1.5}\n",
     "expect[0].max_attacker_share", "must be <= 1"),
    ("expect:\n  - {check: spam_banned, within: 10s}\n", "expect[0].attackers.role", "no attacker node"),
    ("seeder: {zone: 'bad zone!'}\n", "seeder.zone", "must be a DNS name"),
])
def test_cross_field_and_nested_problems_name_their_field(extra: str, path: str, words: str):
    error = error_of(BASE + extra)
    assert error.message.startswith(f"s.yaml:{error.line}:{error.column}: {path}: "), error.message
    assert words in error.problem
    assert "Input should" not in error.message and "pydantic" not in error.message


def test_groups_must_add_up_to_the_total():
    error = error_of("name: t\nduration: 1m\nnetwork:\n  total: 10\n  groups:\n"
                     "    - {name: a, percent: 50}\n    - {name: b, percent: 30}\n")
    assert (error.line, error.path) == (4, ("network", "total"))
    assert "add up to 8 nodes, not total 10" in error.problem


def test_nodes_and_groups_are_exclusive():
    error = error_of("name: t\nduration: 1m\nnetwork:\n  nodes: 3\n  groups: [{name: a, count: 2}]\n")
    assert error.path == ("network", "groups") and "not both" in error.problem


def test_bitcoind_needs_the_regtest_magic():
    error = error_of("name: t\nduration: 1m\nnetwork:\n  nodes: 3\n  bitcoind: 1\n  magic: 0b110907\n")
    assert error.path == ("network", "magic") and "regtest" in error.problem


def test_the_first_problem_in_file_order_wins():
    error = error_of("name: t\nduration: 1m\nseed: nope\nnetwork:\n  nodes: -1\n  relay_policy: gossip\n")
    assert (error.line, error.path) == (3, ("seed",))


def test_data_without_a_file_still_gets_a_field_path():
    with pytest.raises(ScenarioError) as caught:
        validate_scenario({"name": "t", "duration": "1m", "network": {"nodes": 0}})
    assert str(caught.value) == "<scenario>: network.nodes: must be >= 1 (got 0)"


def test_yaml_syntax_errors_are_located_and_plain():
    error = error_of("name: t\nnetwork: {nodes: 3\n")
    assert error.line is not None and error.problem.startswith("YAML syntax error: ")
    assert error_of("").problem.startswith("the file is empty")


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), (90, 90), (0.5, 0.5), ("2d", 172800),
])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "30s5m", "1h1h", "", "-3s", -1, True, None, "5", "m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_durations_format_back():
    assert [format_duration(s) for s in (0.25, 30, 90, 5400, 0)] == ["250ms", "30s", "1m30s", "1h30m", "0s"]
