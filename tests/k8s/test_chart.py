"""The harness chart, rendered with Helm's real engine: structure, packing, chunking, labels,
RBAC, NetworkPolicies, monitoring, and the configs the node and seeder really accept."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness_node.config import NodeConfig
from harness_node.seeder.config import SeederConfig
from tests.k8s.chart import CHART, TOKEN, by_kind, make_values, named, need, render, render_error, spam_attack

pytestmark = pytest.mark.k8s_render

RUN_LABELS = ("harness.io/run", "harness.io/member", "harness.io/role", "app.kubernetes.io/name",
              "app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/managed-by")
FULL_MONITORING = {"serviceMonitor": {"enabled": True}, "prometheus": {"enabled": True}, "grafana": {"enabled": True}}


def pod_files(objects: list[dict[str, Any]], sts: str) -> dict[str, dict[str, Any]]:
    """Pod name → its host config, gathered from every config chunk of StatefulSet `sts`."""
    files: dict[str, dict[str, Any]] = {}
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].startswith(f"{sts}-config-"):
            for key, text in cm["data"].items():
                assert key not in files, f"{key} is in two chunks"
                files[key.removesuffix(".json")] = json.loads(text)
    return files


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.31.0", "1.33.0"])
def test_lint_is_clean(kube_version: str) -> None:
    helm = need("helm_python")
    result = helm.lint(str(CHART), make_values(attackers=2, monitoring=FULL_MONITORING), strict=True,
                       kube_version=kube_version)
    assert result["errors"] == []
    # Severity 1 is INFO ("icon is recommended"); nothing at warning level or above.
    assert [m for m in result["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize("values", [
    make_values(),
    make_values(nodes=10, nodes_per_pod=4, attackers=3, monitoring=FULL_MONITORING),
    make_values(controlToken={"existingSecret": "my-token"}, networkPolicy={"enabled": False},
                monitoring={"scrapeAnnotations": False, "dashboards": {"enabled": False}}),
], ids=["minimal", "packed-attackers-monitoring", "existing-secret-no-policies"])
def test_every_object_carries_the_run_labels(values: dict[str, Any]) -> None:
    objects = render(values)
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        assert {k for k in RUN_LABELS if k not in labels} == set(), where
        assert labels["harness.io/run"] == values["run"], where
        assert labels["app.kubernetes.io/instance"] == "qs", where
        template = obj.get("spec", {}).get("template")
        if template:  # pods too: `down` and the controller select them by these labels
            assert {k for k in RUN_LABELS if k not in template["metadata"]["labels"]} == set(), where


def test_groups_are_packed_into_stateful_pods_with_their_own_config_files() -> None:
    objects = render(make_values(nodes=10, nodes_per_pod=4))
    sts = named(objects, "StatefulSet", "qs-honest")
    assert sts["spec"]["replicas"] == 3  # ⌈10 / 4⌉
    assert sts["spec"]["serviceName"] == "qs-honest"
    svc = named(objects, "Service", "qs-honest")
    assert svc["spec"]["clusterIP"] == "None"
    files = pod_files(objects, "qs-honest")
    assert sorted(files) == ["qs-honest-0", "qs-honest-1", "qs-honest-2"]
    assert [n["name"] for n in files["qs-honest-2"]["nodes"]] == ["node-8", "node-9"]
    # Each node has its own port pair inside the pod, and its planned protocol address.
    first = files["qs-honest-0"]["nodes"]
    assert [(n["port"], n["control_port"]) for n in first] == [(18444, 18445), (18446, 18447), (18448, 18449), (18450, 18451)]
    assert [n["extra"]["address"] for n in first] == ["10.1.0.1", "10.2.0.1", "10.3.0.1", "10.4.0.1"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["host", "--config", "/etc/harness-node/pods/$(POD_NAME).json",
                                 "--token-file", "/var/run/harness/token"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "p2p-0": 18444, "ctl-0": 18445, "p2p-1": 18446, "ctl-1": 18447,
        "p2p-2": 18448, "ctl-2": 18449, "p2p-3": 18450, "ctl-3": 18451}
    assert [p["name"] for p in svc["spec"]["ports"]] == [p["name"] for p in container["ports"]]


def test_node_and_seeder_configs_are_accepted_by_the_node_software() -> None:
    """The configs are parsed by the node's own strict loaders (an unknown key is an error)."""
    objects = render(make_values(nodes=6, nodes_per_pod=3, attackers=2))
    for sts in ("qs-honest", "qs-eclipse"):
        for pod, host in pod_files(objects, sts).items():
            # as `harness-node host --token-file` loads them: the Secret's token applied before the checks
            configs = [NodeConfig.from_dict({**n, "control_token": "from-the-secret"}) for n in host["nodes"]]
            assert all(c.bind == "0.0.0.0" and c.control_bind == "0.0.0.0" for c in configs), pod
            assert all(c.datadir == f"/var/lib/harness-node/{c.name}" for c in configs), pod
            assert all(c.relay_policy == "diffusion" for c in configs), pod  # the plan's own fields survive
    seeder = json.loads(named(objects, "ConfigMap", "qs-seeder")["data"]["seeder.json"])
    parsed = SeederConfig.from_dict(seeder)
    assert (parsed.dns_port, parsed.control_port) == (5353, 8053)
    svc = named(objects, "Service", "qs-seeder")
    assert svc["spec"]["clusterIP"] == "10.96.0.53"
    assert {(p["port"], p["protocol"], p["targetPort"]) for p in svc["spec"]["ports"] if p["port"] == 53} == {
        (53, "UDP", "dns-udp"), (53, "TCP", "dns-tcp")}
    deploy = named(objects, "Deployment", "qs-seeder")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "seeder", "--config", "/etc/harness-node/seeder.json", "--token-file", "/var/run/harness/token"]


def test_configs_are_chunked_under_the_configmap_limit() -> None:
    limit = 8000
    objects = render(make_values(nodes=60, nodes_per_pod=2, configMapMaxBytes=limit))
    chunks = [cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"].startswith("qs-honest-config-")]
    assert len(chunks) > 1
    for cm in chunks:
        assert sum(len(k) + len(v) for k, v in cm["data"].items()) <= limit, cm["metadata"]["name"]
    files = pod_files(objects, "qs-honest")
    assert sorted(files, key=lambda p: int(p.rsplit("-", 1)[1])) == [f"qs-honest-{i}" for i in range(30)]
    assert [n["name"] for f in sorted(files.values(), key=lambda f: f["nodes"][0]["seed"]) for n in f["nodes"]] == [
        f"node-{i}" for i in range(60)]
    # Every pod mounts every chunk of its group, so the file named after it is always there.
    sts = named(objects, "StatefulSet", "qs-honest")
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert [s["configMap"]["name"] for s in volume["projected"]["sources"]] == [cm["metadata"]["name"] for cm in chunks]


def test_a_pod_too_big_for_one_configmap_is_refused_naming_the_group() -> None:
    message = render_error(make_values(nodes=40, nodes_per_pod=40, configMapMaxBytes=4096))
    assert "groups[0]" in message and "lower nodesPerPod" in message


def test_controller_plan_is_split_and_joined_in_order() -> None:
    plan = json.dumps({"nodes": ["x" * 100] * 200})  # ~20 kB
    objects = render(make_values(controller={"plan": plan}, configMapMaxBytes=8192))
    parts = sorted((cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"].startswith("qs-controller-plan-")),
                   key=lambda cm: cm["metadata"]["name"])
    assert len(parts) == 3
    joined = "".join(v for cm in parts for k, v in sorted(cm["data"].items()))
    assert joined == plan
    deploy = named(objects, "Deployment", "qs-controller")
    spec = deploy["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["command"][2].startswith("cat /plan/plan.json.* > /run-dir/plan.json")
    assert spec["containers"][0]["command"] == ["python", "-m", "harness.run.detached"]
    assert spec["containers"][0]["args"] == ["--run-dir", "/run-dir", "--port", "9100", "--host", "0.0.0.0",
                                             "--token-file", "/var/run/harness/token"]
    assert spec["serviceAccountName"] == "qs-controller"


def test_controller_role_allows_only_what_its_faults_need() -> None:
    objects = render(make_values())
    assert by_kind(objects, "ClusterRole") == [] and by_kind(objects, "ClusterRoleBinding") == []
    role = named(objects, "Role", "qs-controller")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["qs-seeder"], "verbs": ["get", "patch"]},
        {"apiGroups": ["chaos-mesh.org"], "resources": ["networkchaos", "podchaos"], "verbs": ["create", "delete"]},
    ]
    binding = named(objects, "RoleBinding", "qs-controller")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "qs-controller", "namespace": "harness-qs"}]
    without = named(render(make_values(controller={"plan": "{}", "chaosMesh": False})), "Role", "qs-controller")
    assert [r["apiGroups"] for r in without["rules"]] == [[""], [""]]
    # Only the controller talks to the API server.
    for obj in by_kind(objects, "StatefulSet") + by_kind(objects, "Deployment"):
        expected = obj["metadata"]["name"] == "qs-controller"
        assert obj["spec"]["template"]["spec"]["automountServiceAccountToken"] is expected, obj["metadata"]["name"]


def test_token_reaches_pods_only_through_a_secret() -> None:
    objects = render(make_values(nodes=4, attackers=1))
    secret = named(objects, "Secret", "qs-token")
    assert secret["data"]["token"]  # base64 of TOKEN
    for cm in by_kind(objects, "ConfigMap"):
        assert TOKEN not in json.dumps(cm), cm["metadata"]["name"]
    for obj in by_kind(objects, "StatefulSet") + by_kind(objects, "Deployment"):
        spec = obj["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec["volumes"]}
        if obj["metadata"]["name"].endswith(("-prometheus", "-grafana")):
            continue
        assert vols["token"]["secret"] == {"secretName": "qs-token", "defaultMode": 0o440}, obj["metadata"]["name"]
    existing = render(make_values(controlToken={"existingSecret": "shared-token"}))
    assert by_kind(existing, "Secret") == []
    sts = named(existing, "StatefulSet", "qs-honest")
    assert {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}["token"]["secret"]["secretName"] == "shared-token"


def test_network_policies_keep_traffic_inside_the_release() -> None:
    objects = render(make_values())
    testnet = named(objects, "NetworkPolicy", "qs-testnet")
    spec = testnet["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "qs"},  # attack pods have their own
                                   "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "NotIn",
                                                         "values": ["attack"]}]}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    release = {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "qs"}}}
    assert spec["ingress"] == [{"from": [release]}]
    assert spec["egress"][0] == {"to": [release]}
    dns = spec["egress"][1]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert len(spec["egress"]) == 2  # nothing else leaves
    api = named(objects, "NetworkPolicy", "qs-controller-api")["spec"]
    assert api["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "controller"
    strict = named(render(make_values(networkPolicy={"allowClusterDNS": False})), "NetworkPolicy", "qs-testnet")
    assert strict["spec"]["egress"] == [{"to": [release]}]


def test_monitoring_scrapes_every_node_of_a_packed_pod() -> None:
    objects = render(make_values(nodes=6, nodes_per_pod=3, attackers=1, monitoring=FULL_MONITORING))
    sts = named(objects, "StatefulSet", "qs-honest")
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == ("true", "18445")
    monitor = named(objects, "ServiceMonitor", "qs-honest")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["ctl-0", "ctl-1", "ctl-2"]
    prom = yaml.safe_load(named(objects, "ConfigMap", "qs-prometheus")["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert sorted(jobs) == ["controller", "eclipse-0", "honest-0", "honest-1", "honest-2", "seeder"]
    assert jobs["honest-2"]["dns_sd_configs"] == [
        {"names": ["qs-honest.harness-qs.svc"], "type": "A", "port": 18449, "refresh_interval": "15s"}]
    grafana = named(objects, "Deployment", "qs-grafana")
    dash = {v["name"]: v for v in grafana["spec"]["template"]["spec"]["volumes"]}["dashboards"]
    shipped = sorted(p.stem for p in (CHART / "dashboards").glob("*.json"))
    assert [s["configMap"]["name"] for s in dash["projected"]["sources"]] == [f"qs-dashboard-{n}" for n in shipped]


def test_prometheus_config_is_accepted_by_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required with CI=true")
        pytest.skip("promtool is not installed")
    objects = render(make_values(nodes=4, nodes_per_pod=2, monitoring=FULL_MONITORING, attacks=[spam_attack()]))
    config = tmp_path / "prometheus.yml"
    config.write_text(named(objects, "ConfigMap", "qs-prometheus")["data"]["prometheus.yml"])
    done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_are_shipped_for_the_grafana_sidecar() -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert files, "the chart ships at least one dashboard"
    objects = render(make_values())
    boards = [cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"].startswith("qs-dashboard-")]
    assert len(boards) == len(files)
    for cm, path in zip(sorted(boards, key=lambda c: c["metadata"]["name"]), files):
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())
    assert [cm for cm in by_kind(render(make_values(monitoring={"dashboards": {"enabled": False}})), "ConfigMap")
            if cm["metadata"]["name"].startswith("qs-dashboard-")] == []


def test_pods_run_unprivileged_with_requests_and_limits() -> None:
    objects = render(make_values(attackers=1, monitoring=FULL_MONITORING))
    for obj in by_kind(objects, "StatefulSet") + by_kind(objects, "Deployment"):
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{obj['metadata']['name']}/{c['name']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, where
            assert set(c["resources"]) == {"requests", "limits"}, where


def test_one_release_holds_a_100_node_testnet() -> None:
    """Helm's engine installs it as one release (client dry run: no cluster here)."""
    helm = need("helm_python")
    values = make_values(nodes=90, nodes_per_pod=1, attackers=10)
    with helm.Config(namespace="harness-big", storage_driver="memory") as cfg:
        release = cfg.install(str(CHART), "big", values, dry_run="client")
        assert release["name"] == "big"
    objects = render(values, release="big", namespace="harness-big")
    assert {o["metadata"]["labels"]["app.kubernetes.io/instance"] for o in objects} == {"big"}
    assert sum(o["spec"]["replicas"] for o in by_kind(objects, "StatefulSet")) == 100
    node_names = [n["name"] for sts in ("big-honest", "big-eclipse") for f in pod_files(objects, sts).values() for n in f["nodes"]]
    assert sorted(node_names) == sorted(f"node-{i}" for i in range(100))


def test_a_1000_node_testnet_renders_within_the_configmap_limit() -> None:
    objects = render(make_values(nodes=1000, nodes_per_pod=10))
    assert named(objects, "StatefulSet", "qs-honest")["spec"]["replicas"] == 100
    for cm in by_kind(objects, "ConfigMap"):  # the API server's limit counts keys and values
        assert sum(len(k) + len(v.encode()) for k, v in cm["data"].items()) <= 900_000, cm["metadata"]["name"]
    assert sum(len(f["nodes"]) for f in pod_files(objects, "qs-honest").values()) == 1000



def test_a_changed_config_rolls_the_pods_and_an_unchanged_one_does_not() -> None:
    def digest(values: dict[str, Any]) -> str:
        sts = named(render(values), "StatefulSet", "qs-honest")
        return sts["spec"]["template"]["metadata"]["annotations"]["harness.io/config-digest"]

    changed = make_values(nodes=4)
    changed["groups"][0]["members"][3]["config"]["time_scale"] = 0.1
    assert digest(make_values(nodes=4)) == digest(make_values(nodes=4))
    assert digest(changed) != digest(make_values(nodes=4))


def test_packed_pods_are_ready_when_their_last_node_answers() -> None:
    sts = named(render(make_values(nodes=6, nodes_per_pod=3)), "StatefulSet", "qs-honest")
    probe = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"] == {"path": "/status", "port": "ctl-2"}


def test_the_longest_names_allowed_are_valid_kubernetes_names() -> None:
    """kubernetes-validate does not check names; the API server does: Services are DNS-1035 labels,
    StatefulSets leave room for the controller's "-<hash>" pod label, the rest are DNS subdomains."""
    values = make_values(nodes=3, nodes_per_pod=2, attackers=1)
    values["groups"][0]["name"] = "g" * 20
    label = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    subdomain = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    for obj in render(values, release="r" * 31):
        name = obj["metadata"]["name"]
        if obj["kind"] == "Service":
            assert label.match(name) and len(name) <= 63, name
        elif obj["kind"] == "StatefulSet":
            assert label.match(name) and len(name) <= 52, name
        else:
            assert subdomain.match(name) and len(name) <= 253, name
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63, (name, value)


def test_top_level_nodes_per_pod_applies_to_groups_that_do_not_say() -> None:
    values = make_values(nodes=9, attackers=2, nodesPerPod=3)
    del values["groups"][0]["nodesPerPod"], values["attackers"][0]["nodesPerPod"]
    for m in values["groups"][0]["members"]:  # slot k of each pod: ports 18444+2k / 18445+2k
        slot = int(m["name"].split("-")[1]) % 3
        m["port"], m["controlPort"] = 18444 + 2 * slot, 18445 + 2 * slot
    values["attackers"][0]["members"][1].update(port=18446, controlPort=18447)
    objects = render(values)
    assert named(objects, "StatefulSet", "qs-honest")["spec"]["replicas"] == 3
    assert named(objects, "StatefulSet", "qs-eclipse")["spec"]["replicas"] == 1


def test_values_yaml_shows_every_field_the_schema_knows() -> None:
    """values.yaml is the documentation of the data model: each schema property has a default
    there (lists of groups and attackers show their shape in comments), and nothing else."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["definitions"][ref.rsplit("/", 1)[1]] if ref else node

    def walk(node: dict[str, Any], value: Any, where: str) -> list[str]:
        node = resolve(node)
        if node.get("type") != "object" or "properties" not in node or not isinstance(value, dict):
            return []
        missing = [f"{where}.{k}" for k in node["properties"] if k not in value and k != "global"]
        for k, sub in node["properties"].items():
            if k in value and value[k]:
                missing += walk(sub, value[k], f"{where}.{k}")
        return missing

    assert walk(schema, defaults, "values") == []


def test_active_attackers_run_one_identity_per_pod_and_dial_only_their_targets() -> None:
    from harness_node.attack.config import AttackConfig

    objects = render(make_values(nodes=4, attacks=[spam_attack(identities=3)], transport={"endpoints": {}}))
    sts = named(objects, "StatefulSet", "qs-spam")
    assert sts["spec"]["replicas"] == 3 and sts["metadata"]["labels"]["harness.io/attacker-kind"] == "spam"
    pod = sts["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "attack"
    assert pod["metadata"]["labels"]["harness.io/role"] == "attacker"
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["attack", "--config", "/etc/harness-node/pods/$(POD_NAME).json", "--token-file",
                                 "/var/run/harness/token", "--transport", "/etc/harness-node/pods/transport.json"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    sources = [s["configMap"]["name"] for s in {v["name"]: v for v in pod["spec"]["volumes"]}["config"]["projected"]["sources"]]
    assert sources == ["qs-spam-config", "qs-transport"]
    data = named(objects, "ConfigMap", "qs-spam-config")["data"]
    assert sorted(data) == [f"qs-spam-{i}.json" for i in range(3)]
    for i in range(3):
        # the attacker process's own strict loader, with the token the pod reads from the Secret
        config = AttackConfig.from_dict({**json.loads(data[f"qs-spam-{i}.json"]), "control_token": "from-the-secret"})
        (spec,) = config.attackers
        assert (spec.name, spec.address, spec.bind, spec.control_bind, spec.control_port) == \
            (f"spam-{i}", f"10.{100 + i}.0.1", "0.0.0.0", "0.0.0.0", 18445)
        assert config.magic == "fabfb5da" and config.time_scale == 0.2
    assert named(objects, "Service", "qs-spam")["spec"]["clusterIP"] == "None"
    policy = named(objects, "NetworkPolicy", "qs-spam-targets")["spec"]
    assert policy["podSelector"]["matchLabels"]["harness.io/member"] == "spam"
    targets = policy["egress"][0]["to"][0]["podSelector"]
    assert targets["matchExpressions"] == [{"key": "statefulset.kubernetes.io/pod-name", "operator": "In",
                                            "values": ["qs-honest-0"]}]
    assert len(policy["egress"]) == 2 and policy["egress"][1]["ports"][0]["port"] == 53  # targets and DNS only
    # scraped like nodes: a ServiceMonitor and a job of the bundled Prometheus per attacker entry
    monitored = render(make_values(nodes=4, attacks=[spam_attack()], monitoring=FULL_MONITORING))
    assert named(monitored, "ServiceMonitor", "qs-spam")["spec"]["endpoints"][0]["port"] == "ctl-0"
    prom = yaml.safe_load(named(monitored, "ConfigMap", "qs-prometheus")["data"]["prometheus.yml"])
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "spam-attack")
    assert job["dns_sd_configs"][0]["names"] == ["qs-spam.harness-qs.svc"] and job["dns_sd_configs"][0]["port"] == 18445


def test_a_listening_attack_exposes_its_p2p_port_to_the_testnet() -> None:
    """Identities that victims dial (bootstrap; eclipse and spy with listen): the pod and its
    headless Service name the P2P port (the transport table sends planned addresses to
    <pod>.<service>), and the entry's policy admits the release's pods, not only its targets."""
    listening = {**spam_attack(), "name": "poison", "kind": "bootstrap", "listen": True, "port": 18444}
    objects = render(make_values(nodes=4, attacks=[listening], transport={"endpoints": {}}))
    (container,) = named(objects, "StatefulSet", "qs-poison")["spec"]["template"]["spec"]["containers"]
    assert {"name": "p2p-0", "containerPort": 18444, "protocol": "TCP"} in container["ports"]
    service = named(objects, "Service", "qs-poison")["spec"]
    assert service["clusterIP"] == "None"
    assert {"name": "p2p-0", "port": 18444, "targetPort": "p2p-0", "protocol": "TCP"} in service["ports"]
    policy = named(objects, "NetworkPolicy", "qs-poison-targets")["spec"]
    assert {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "qs"}}}]} in policy["ingress"]
    dialling = render(make_values(nodes=4, attacks=[spam_attack()], transport={"endpoints": {}}))
    (container,) = named(dialling, "StatefulSet", "qs-spam")["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["ctl-0"]  # an attack that only dials exposes no P2P port
