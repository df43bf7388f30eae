"""Wrong values are refused by Helm before anything is created, with the field named: by
values.schema.json for shapes and ranges, by the templates for what a schema cannot say
(uniqueness, ports shared by a pod)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.chart import CHART, make_values, need, render_error, spam_attack

pytestmark = pytest.mark.k8s_render


def with_member(**fields: Any) -> dict[str, Any]:
    values = make_values(nodes=2)
    values["groups"][0]["members"][1].update(fields)
    return values


def with_group(**fields: Any) -> dict[str, Any]:
    values = make_values(nodes=2)
    values["groups"][0].update(fields)
    return values


SCHEMA_CASES = {
    "run id not a DNS label": (make_values(run="Quick_Start"), "/run"),
    "run id missing": (make_values(run=""), "/run"),
    "unknown top-level key": (make_values(nodez=3), "'nodez' not allowed"),
    "port below 1024": (with_member(port=80), "/groups/0/members/1/port"),
    "port as a string": (with_member(controlPort="18445"), "/groups/0/members/1/controlPort"),
    "address not IPv4": (with_member(address="10.1.2"), "/groups/0/members/1/address"),
    "member without address": ({**make_values(nodes=1), "groups": [{"name": "honest", "members": [
        {"name": "n", "port": 18444, "controlPort": 18445}]}]}, "/groups/0/members/0"),
    "config sets what the chart owns": (with_member(config={"bind": "1.2.3.4"}), "/groups/0/members/1/config"),
    "group name with capitals": (with_group(name="Honest"), "/groups/0/name"),
    "nodesPerPod zero": (with_group(nodesPerPod=0), "/groups/0/nodesPerPod"),
    "attacker without kind": (make_values(attackers=1) | {"attackers": [{"name": "x", "members": []}]}, "/attackers/0"),
    "short token": (make_values(controlToken={"value": "abc"}), "/controlToken/value"),
    "bad image pull policy": (make_values(image={"repository": "r", "tag": "t", "pullPolicy": "Sometimes"}), "/image/pullPolicy"),
    "bad cpu quantity": (make_values(resources={"node": {"requests": {"cpu": "lots"}}}), "/resources/node/requests/cpu"),
    "seeder dnsPort out of range": (make_values(seeder={"dnsPort": 70000}), "/seeder/dnsPort"),
    "prometheus interval": (make_values(monitoring={"prometheus": {"scrapeInterval": "soon"}}), "/monitoring/prometheus/scrapeInterval"),
    "attack magic not hex": (make_values(attacks=[{**spam_attack(), "magic": "regtest!"}]), "/attacks/0/magic"),
    "attack without identities": (make_values(attacks=[{**spam_attack(), "identities": []}]), "/attacks/0/identities"),
    "attack identity without address": (make_values(attacks=[{**spam_attack(), "identities": [{"name": "s", "config": {}}]}]),
                                        "/attacks/0/identities/0"),
    "attack listen port out of range": (make_values(attacks=[{**spam_attack(), "listen": True, "port": 80}]), "/attacks/0/port"),
    "configMapMaxBytes over 1 MB": (make_values(configMapMaxBytes=2_000_000), "/configMapMaxBytes"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_schema_rejects_naming_the_field(case: str) -> None:
    values, field = SCHEMA_CASES[case]
    message = render_error(values)
    assert "schema" in message, message
    assert field in message, message


def test_two_nodes_with_one_name() -> None:
    message = render_error(with_member(name="node-0"))
    assert "groups[0].members[1].name" in message and "node-0" in message


def test_two_groups_with_one_name() -> None:
    values = make_values(nodes=2, attackers=1)
    values["attackers"][0]["name"] = "honest"
    message = render_error(values)
    assert "attackers[0].name" in message and "unique" in message


def test_an_attack_named_like_a_group() -> None:
    message = render_error(make_values(nodes=2, attacks=[spam_attack(name="honest")]))
    assert "attacks[0].name" in message and "unique" in message


def test_a_bitcoind_entry_named_like_a_group() -> None:
    entry = {"name": "honest", "port": 18444, "controlPort": 18445,
             "members": [{"name": "bitcoind-0", "address": "10.240.0.1", "config": {"magic": "dab5bffa"}}]}
    message = render_error(make_values(nodes=2, bitcoinds=[entry]))
    assert "bitcoinds[0].name" in message and "unique" in message
    message = render_error(make_values(nodes=2, bitcoinds=[{**entry, "name": "btc", "controlPort": 65535}]))
    assert "schema" in message and "/bitcoinds/0/controlPort" in message  # RPC listens one above


def test_a_listening_attack_without_a_port() -> None:
    message = render_error(make_values(nodes=2, attacks=[{**spam_attack(), "listen": True}]))
    assert "attacks[0].port" in message and "listen" in message


def test_two_nodes_of_one_pod_on_one_port() -> None:
    values = make_values(nodes=4, nodes_per_pod=2)
    values["groups"][0]["members"][1]["port"] = 18444
    message = render_error(values)
    assert "groups[0].members[1].port" in message and "qs-honest-0" in message


def test_slots_of_a_group_share_their_ports() -> None:
    values = make_values(nodes=4, nodes_per_pod=2)
    values["groups"][0]["members"][3]["controlPort"] = 19000
    message = render_error(values)
    assert "groups[0].members[3]" in message and "slot 1" in message


def test_no_token_at_all() -> None:
    message = render_error(make_values(controlToken={"value": "", "existingSecret": ""}))
    assert "controlToken" in message


def test_release_name_too_long_for_statefulset_names() -> None:
    helm = need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        chart.render(make_values(nodes=1), name="r" * 31, namespace="ns", is_install=True)  # the longest allowed
        with pytest.raises(helm.HelmError) as info:
            chart.render(make_values(nodes=1), name="r" * 32, namespace="ns", is_install=True)
    assert "release name" in str(info.value) and "at most 31" in str(info.value)


def test_release_name_must_start_with_a_letter() -> None:
    helm = need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmError) as info:
            chart.render(make_values(nodes=1), name="1run", namespace="ns", is_install=True)
    assert "release name" in str(info.value) and "letter" in str(info.value)
