"""The k8s backend's values for every scenario in scenarios/, through Helm's real engine: they
render, lint clean, validate strictly against Kubernetes 1.29/1.31/1.33, carry the run's labels,
pack nodes as asked, and the node software accepts every node config."""

from __future__ import annotations

import re
import json
from pathlib import Path
from typing import Any

import pytest

from harness_node.attack.config import AttackConfig
from harness_node.bitcoind.launch import BitcoindConfig
from harness_node.config import NodeConfig
from harness_node.seeder.config import SeederConfig
from harness.backends.k8s.layout import ValuesError, dns_label, namespace_for, pod_layout, release_name
from harness.backends.k8s.values import ValuesOptions, chart_values
from harness.plan.planner import plan_file
from tests.k8s.chart import CHART, CRD_KINDS, by_kind, need, render
from tests.k8s.test_manifests_valid import VERSIONS

# mainnet-scale.yaml is 10,000 nodes: its render and three strict validations took > 300 s at load ~27 on 2 cores
pytestmark = [pytest.mark.k8s_render, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml"))
RUN_ID = "0123abcd"
# Scenarios whose attacker identities must be dialled (attackers.listens): bootstrap, eclipse, spy.
LISTENING_SCENARIOS = {"bootstrap-poison.yaml", "eclipse-heilman.yaml", "eclipse-defences.yaml", "spy.yaml"}


def values_for(scenario: str, nodes_per_pod: int = 1) -> tuple[Any, dict[str, Any]]:
    plan = plan_file(ROOT / "scenarios" / scenario)
    return plan, chart_values(plan, RUN_ID, ValuesOptions(nodes_per_pod=nodes_per_pod), token="t" * 32)


@pytest.fixture(scope="module", params=SCENARIOS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, Any, dict[str, Any], list[dict[str, Any]]]:
    plan, values = values_for(request.param, nodes_per_pod=3)
    return request.param, plan, values, render(values, release=release_name(RUN_ID), namespace=namespace_for(RUN_ID))


def test_every_scenario_renders_validates_and_carries_labels(rendered: tuple[str, Any, dict[str, Any], list[dict[str, Any]]],
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    kv = need("kubernetes_validate")
    scenario, plan, values, objects = rendered
    for version in VERSIONS:
        for obj in objects:
            if obj["kind"] in CRD_KINDS:
                continue
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{scenario} on {version}: {obj['kind']}/{obj['metadata']['name']}: {e.path}: {e.message}")
    assert {o["metadata"]["labels"]["harness.io/run"] for o in objects} == {RUN_ID}
    # One release: every planned peer is in exactly one pod config, packed 3 to a pod.
    hosted, attacking, supervised = {}, {}, {}
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"]["labels"]["app.kubernetes.io/component"] == "bitcoind":  # one bitcoind member per pod
            for key, text in cm["data"].items():
                path = tmp_path_factory.mktemp("bitcoind") / "member.json"
                path.write_text(text)
                # the supervisor's own loader, with the Secret's token (--token-file)
                supervised[json.loads(text)["name"]] = (key.removesuffix(".json"), BitcoindConfig.from_file(path, token="s"))
        elif "-config-" in cm["metadata"]["name"]:
            for key, text in cm["data"].items():
                for node in json.loads(text)["nodes"]:
                    hosted[node["name"]] = (key.removesuffix(".json"), node)
        elif cm["metadata"]["name"].endswith("-config"):  # an active attacker's pods, one identity each
            for key, text in cm["data"].items():
                # the attacker process's own strict loader, with the Secret's token (--token-file)
                (spec,) = AttackConfig.from_dict({**json.loads(text), "control_token": "from-the-secret"}).attackers
                attacking[spec.name] = (key.removesuffix(".json"), spec)
    assert sorted([*hosted, *attacking, *supervised]) == sorted(plan.names())
    layout = pod_layout(plan, release_name(RUN_ID), namespace_for(RUN_ID), 3)
    for name, (pod, member) in supervised.items():
        assert pod == layout[name].pod and member.identity == plan.node(name).address
        # it listens in its pod; its -connect peers stay planned until the supervisor reads the table
        assert (member.address, member.port) == ("0.0.0.0", layout[name].port)
        assert member.connect == plan.node(name).config["connect"] and member.binary == "/usr/local/bin/bitcoind"
    for name, (pod, spec) in attacking.items():
        assert pod == layout[name].pod and spec.address == plan.node(name).address  # dials as its planned address
        assert spec.bind == "0.0.0.0" and spec.control_port == layout[name].control_port
        if layout[name].listens:  # it accepts dials on its planned port, which its pod exposes
            sts = next(o for o in by_kind(objects, "StatefulSet") if o["metadata"]["name"] == layout[name].statefulset)
            (container,) = sts["spec"]["template"]["spec"]["containers"]
            assert {"name": "p2p-0", "containerPort": spec.port, "protocol": "TCP"} in container["ports"]
            assert layout[name].port == spec.port == plan.node(name).p2p_port
    for name, (pod, node) in hosted.items():
        assert pod == layout[name].pod
        # the node's own strict loader, with the token the pod reads from its Secret (--token-file)
        config = NodeConfig.from_dict({**node, "control_token": "from-the-secret"})
        assert config.address == plan.node(name).address  # the planned protocol address survives
        assert config.port == layout[name].port and config.extra["transport"] == "transport.json"
    table = json.loads(next(cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"].endswith("-transport"))
                       ["data"]["transport.json"])
    assert table["endpoints"] == {plan.node(n).address: p.p2p for n, p in layout.items() if p.listens}
    listening = {n for n, p in layout.items() if p.attack and p.listens}
    # a victim that learns a listening identity's planned address (addr, a poisoned seeder) reaches its pod
    assert all(table["endpoints"][plan.node(n).address] == f"{layout[n].host}:{plan.node(n).p2p_port}" for n in listening)
    if scenario in LISTENING_SCENARIOS:
        assert listening, f"{scenario}: no listening attacker identity in the table"
    for _pod, spec in attacking.values():  # every target of every identity is reachable through the table
        assert {t.rpartition(":")[0] for t in spec.targets} <= table["endpoints"].keys()
    assert sum(len(v) for v in table["inbound_hosts"].values()) == len(plan.names())
    seeder = SeederConfig.from_dict(json.loads(next(cm for cm in by_kind(objects, "ConfigMap")
                                                    if cm["metadata"]["name"].endswith("-seeder"))["data"]["seeder.json"]))
    assert not seeder.crawl and sorted(seeder.static_nodes) == sorted(seeder.seeds)  # no transport for the crawler


@pytest.mark.parametrize("kube_version", VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_lints_clean(scenario: str, kube_version: str) -> None:
    helm = need("helm_python")
    _, values = values_for(scenario)
    result = helm.lint(str(CHART), values, strict=True, kube_version=kube_version)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


def test_a_role_the_chart_has_no_place_for_is_refused_naming_the_node() -> None:
    plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
    broken = plan.model_copy(update={"nodes": [n.model_copy(update={"role": "observer"}) if n.name == "node-3" else n
                                               for n in plan.nodes]})
    with pytest.raises(ValuesError, match=re.escape("plan node node-3: role 'observer' cannot run on the k8s backend")):
        chart_values(broken, RUN_ID)


def test_values_are_a_pure_function_of_the_plan() -> None:
    assert values_for("quickstart.yaml", 2)[1] == values_for("quickstart.yaml", 2)[1]


def test_seeder_is_reached_at_its_service_ip_and_token_is_never_in_a_configmap() -> None:
    plan, values = values_for("quickstart.yaml")
    assert values["seeder"]["serviceIP"] == "10.96.0.53"
    assert all(s.endswith("@10.96.0.53:53") for g in values["groups"] for m in g["members"]
               for s in m["config"]["peering"]["seeders"])
    objects = render(values, release=release_name(RUN_ID), namespace=namespace_for(RUN_ID))
    for cm in by_kind(objects, "ConfigMap"):
        assert "t" * 32 not in json.dumps(cm["data"]), cm["metadata"]["name"]
    rendered_no_token = chart_values(plan, RUN_ID)
    assert rendered_no_token["controlToken"] == {"existingSecret": f"{release_name(RUN_ID)}-token"}


def test_names_are_dns_labels_within_the_charts_limits() -> None:
    assert dns_label("Honest_Group.A") == "honest-group-a"
    assert dns_label("9lives") == "g9lives"
    assert len(dns_label("x" * 40)) == 20
    assert release_name("ffffffff") == "harness-ffffffff" and len(release_name("f" * 40)) == 31


def test_nodes_per_pod_below_one_is_refused() -> None:
    with pytest.raises(ValuesError, match="--nodes-per-pod: 0"):
        ValuesOptions(nodes_per_pod=0)


def test_packing_defaults_to_the_scenarios_deploy_section() -> None:
    """--nodes-per-pod wins; without it the scenario's deploy.nodes_per_container (the container
    backends' one packing setting), without that 1."""
    plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
    packed = plan.model_copy(update={"scenario": {**plan.scenario, "deploy": {"nodes_per_container": 4}}})
    assert chart_values(packed, RUN_ID)["nodesPerPod"] == 4
    assert chart_values(packed, RUN_ID, ValuesOptions(nodes_per_pod=3))["nodesPerPod"] == 3
    assert chart_values(plan, RUN_ID)["nodesPerPod"] == 1
