"""The k8s backend against the kubernetes client, with no cluster: a small real HTTP server in the
test stands in for the API server (no cluster can run here) and serves a recorded pod list and
WATCH event stream, so the real client parses and follows them. Teardown order and the Chaos Mesh
objects are checked structurally (Chaos Mesh's CRD schemas are not available offline here)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.backends.base import RunState
from harness.backends.k8s import faults
from harness.backends.k8s.backend import K8sBackend
from harness.backends.k8s.cluster import Cluster
from harness.errors import BackendError
from harness.plan.planner import plan_file
from harness.run.rundir import RunDir
from tests.k8s.httpstub import Quiet, serving

pytest.importorskip("kubernetes")
HOST = "127.213.15.1"  # this file's own loopback address
NS, RUN = "harness-0123abcd", "0123abcd"
ROOT = Path(__file__).resolve().parents[2]


def pod(name: str, ready: bool, rv: int, waiting: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending",
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"name": "node", "ready": False, "restartCount": 3, "image": "x", "imageID": "",
                                        "state": {"waiting": {"reason": waiting, "message": "back-off"}}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv),
                                                            "labels": {"harness.io/run": RUN}}, "status": status}


class FakeAPI(Quiet):
    """Serves GET pods (list) and GET pods?watch=true (the recorded events, one JSON per line)."""

    listing: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        assert urllib.parse.unquote(self.path).count(f"labelSelector=harness.io/run={RUN}") == 1, self.path
        if "watch=true" in self.path:
            body = "".join(json.dumps({"type": t, "object": o}) + "\n" for t, o in
                           ((e["type"], e["object"]) for e in self.events)).encode()
        else:
            body = json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
                               "items": self.listing}).encode()
        self.reply(body)


@pytest.fixture()
def api() -> Iterator[Any]:
    from kubernetes import client

    FakeAPI.requests = []
    with serving(HOST, FakeAPI) as (host, port):
        conf = client.Configuration()
        conf.host = f"http://{host}:{port}"
        yield client.ApiClient(conf)


def test_readiness_follows_the_watch_stream(api: Any) -> None:
    FakeAPI.listing = [pod("a-0", True, 5), pod("a-1", False, 6)]
    FakeAPI.events = [{"type": "MODIFIED", "object": pod("a-1", True, 11)},
                      {"type": "ADDED", "object": pod("a-2", False, 12)},
                      {"type": "MODIFIED", "object": pod("a-2", True, 13)}]
    ready = Cluster(NS, RUN, api).wait_pods_ready(3, timeout=20)
    assert ready == ["a-0", "a-1", "a-2"]
    assert any("watch=true" in r and "resourceVersion=10" in r for r in FakeAPI.requests)  # watched from the list


def test_a_crash_looping_pod_fails_fast_naming_it(api: Any) -> None:
    FakeAPI.listing = [pod("a-0", True, 5)]
    FakeAPI.events = [{"type": "MODIFIED", "object": pod("a-1", False, 11, waiting="CrashLoopBackOff")}]
    with pytest.raises(BackendError, match="pod a-1 cannot start: node: CrashLoopBackOff"):
        Cluster(NS, RUN, api).wait_pods_ready(2, timeout=20)


def test_too_few_ready_pods_time_out(api: Any) -> None:
    FakeAPI.listing, FakeAPI.events = [pod("a-0", False, 5)], []
    with pytest.raises(BackendError, match="1 of 1 pods not ready"):
        Cluster(NS, RUN, api).wait_pods_ready(1, timeout=1)


class Recorder:
    """Stands in for the cluster and the Helm release (no cluster here): records the calls in order."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kw: Any) -> Any:
            self.calls.append(f"{name}:{args[1] if name == 'delete_chaos' else args[0] if name == 'logs' else ''}".rstrip(":"))
            if name == "pods":
                return [{"metadata": {"name": "harness-0123abcd-honest-0"}}]
            return f"log of {args[0]}" if name == "logs" else True
        return record


def test_teardown_saves_logs_then_removes_chaos_objects_then_the_release_then_the_namespace(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
    run.plan_file.write_text(plan.to_json())
    calls: list[str] = []
    backend = K8sBackend(run, cluster=Recorder(calls), release=Recorder(calls))  # type: ignore[arg-type]
    state = RunState(scenario=plan.name, backend="k8s", plan_digest=plan.digest, run_id=RUN, status="running",
                     backend_state={"release": f"harness-{RUN}", "namespace": NS, "nodes_per_pod": 1, "pods": [],
                                    "chaos": [{"kind": "PodChaos", "name": "p1"}, {"kind": "NetworkChaos", "name": "n1"}]})
    run.save_state(state)
    summary = backend.down()
    assert calls == ["pods", "logs:harness-0123abcd-honest-0", "delete_chaos:p1", "delete_chaos:n1", "uninstall",
                     "delete_namespace"]  # logs saved while the pods exist; chaos objects before the pods they select
    assert (run.logs_dir / "harness-0123abcd-honest-0.log").read_text() == "log of harness-0123abcd-honest-0"
    assert summary.removed == {"PodChaos": 1, "NetworkChaos": 1, "release": 1, "namespace": 1} and summary.clean
    before = list(calls)
    assert backend.down().already_down  # idempotent: a second down touches nothing
    assert calls == before


def test_chaos_mesh_objects_select_only_the_run_pods() -> None:
    labels = {"harness.io/run": RUN}
    part = faults.network_chaos(RUN, NS, labels, "partition", ["p-0", "p-1"], other=["p-2"])
    assert part["apiVersion"] == "chaos-mesh.org/v1alpha1" and part["kind"] == "NetworkChaos"
    assert part["spec"]["selector"] == {"pods": {NS: ["p-0", "p-1"]}}
    assert part["spec"]["target"] == {"mode": "all", "selector": {"pods": {NS: ["p-2"]}}}
    assert part["spec"]["direction"] == "both" and part["metadata"]["labels"] == labels
    delay = faults.network_chaos(RUN, NS, labels, "delay", ["p-0"], delay_ms=150, jitter_ms=10)
    assert delay["spec"]["delay"] == {"latency": "150ms", "jitter": "10ms", "correlation": "0"}
    loss = faults.network_chaos(RUN, NS, labels, "loss", ["p-0"], loss=0.25)
    assert loss["spec"]["loss"] == {"loss": "25", "correlation": "0"}
    pause = faults.pod_pause(RUN, NS, labels, ["p-0"])
    assert pause["kind"] == "PodChaos" and pause["spec"]["action"] == "pod-failure"
    # begin and end of one fault name the same object; names are DNS-1123 and <= 63 characters
    assert pause["metadata"]["name"] == faults.chaos_name(RUN, "pause", ["p-0"])
    assert all(len(o["metadata"]["name"]) <= 63 and o["metadata"]["name"].islower() for o in (part, delay, loss, pause))
    with pytest.raises(ValueError, match="partition needs pods"):
        faults.network_chaos(RUN, NS, labels, "partition", ["p-0"])
    with pytest.raises(ValueError, match="not a fraction"):
        faults.network_chaos(RUN, NS, labels, "loss", ["p-0"], loss=2)


def test_up_records_the_run_before_creating_anything_and_the_controller_joins_by_upgrade(tmp_path: Path) -> None:
    """Stand-ins record what the backend asks of the cluster and of Helm (no cluster here)."""
    run = RunDir(tmp_path / "run")
    plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
    calls: list[tuple[str, Any]] = []

    class Cluster_:
        def create_namespace(self) -> bool:
            calls.append(("namespace", run.load_state().run_id))  # the state is on disk already
            return True

    class Release_:
        def install(self, values: dict[str, Any]) -> dict[str, Any]:
            calls.append(("install", values))
            return {}

    backend = K8sBackend(run, nodes_per_pod=2, cluster=Cluster_(), release=Release_())  # type: ignore[arg-type]
    state = backend.up(plan)
    assert [c[0] for c in calls] == ["namespace", "install"] and calls[0][1] == state.run_id
    first = calls[1][1]
    assert first["controller"]["enabled"] is False  # `harness run` plays the timeline itself
    assert first["controlToken"] == {"value": state.control_token} and first["nodesPerPod"] == 2
    assert state.endpoints["node-0"]["control_url"] == f"http://harness-{state.run_id}-honest-0.harness-{state.run_id}-honest.harness-{state.run_id}.svc:18445"
    assert state.endpoints["node-1"]["p2p"].endswith(".svc:18446")  # slot 1 of the same pod
    backend.start_controller([])
    second = calls[2][1]
    shipped = json.loads(second["controller"]["state"])
    assert second["controller"]["enabled"] is True and shipped["control_token"] is None
    assert shipped["run_id"] == state.run_id and shipped["backend_state"]["controller"] is True
    assert run.load_state().controller_url == f"http://harness-{state.run_id}-controller.harness-{state.run_id}.svc:9100"


def test_restart_node_restarts_the_real_node_in_its_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """restart_node, stop_node and start_node through the real control client against a real
    `harness-node host` process on loopback, standing for a pod (in-cluster mode: the recorded
    control URL is used as is)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    ip, token = "127.213.17.1", "t0ken-0123456789abcdef"
    datadir = tmp_path / "data" / "node-0"
    config = tmp_path / "pod.json"
    config.write_text(json.dumps({"nodes": [{"name": "node-0", "bind": ip, "port": 18444, "control_port": 18445,
                                             "datadir": str(datadir), "control_token": token}]}))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness-node"), "host", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def status() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://{ip}:18445/status", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 30
        while status() is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)  # the process's start-up, polled
        run = RunDir(tmp_path / "run")
        run.create()
        plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
        run.plan_file.write_text(plan.to_json())
        run.save_state(RunState(scenario=plan.name, backend="k8s", plan_digest=plan.digest, run_id=RUN, status="running",
                                control_token=token, endpoints={"node-0": {"p2p": f"{ip}:18444", "control_url": f"http://{ip}:18445"}},
                                backend_state={"release": f"harness-{RUN}", "namespace": NS, "nodes_per_pod": 1, "pods": [], "chaos": []}))
        backend = K8sBackend(run)
        datadir.mkdir(parents=True, exist_ok=True)
        (datadir / "marker").write_text("before")
        backend.restart_node("node-0", wipe_datadir=True)
        deadline = time.monotonic() + 30
        while (datadir / "marker").exists() or status() is None:
            assert time.monotonic() < deadline, "node-0 did not come back wiped"
            time.sleep(0.1)
        assert proc.poll() is None  # the host process (the pod) kept running
        # stop_node, then start_node (the end of a stop with a duration): the node's control site
        # stays for POST /start, its data directory is kept, the host (the pod) keeps running.
        (datadir / "marker").write_text("kept")
        backend.stop_node("node-0")
        assert run.load_state().stopped_nodes == ["node-0"]
        with pytest.raises(urllib.error.HTTPError) as stopped:
            urllib.request.urlopen(f"http://{ip}:18445/status", timeout=5)
        assert stopped.value.code == 503
        with pytest.raises(OSError):  # its P2P listener is closed: peers see it gone
            socket.create_connection((ip, 18444), timeout=5).close()
        backend.restart_node("node-0")  # what the timeline's start_node calls; returns once /status answers
        assert status() is not None and (datadir / "marker").read_text() == "kept"
        assert run.load_state().stopped_nodes == [] and proc.poll() is None
        socket.create_connection((ip, 18444), timeout=5).close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


class SeederAPI(Quiet):
    """Stands in for the API server (no cluster here) during replace_seeder: serves the seeder's
    ConfigMap as Helm's engine rendered it, takes the patch and, as the kubelet would start the new
    pod reading it, starts a real `harness-node seeder` with the patched file (on the test's own
    loopback address instead of the pod's 0.0.0.0). Its pod list and WATCH stream are recorded:
    the old pod going, a new one becoming ready."""

    configmap: dict[str, Any] = {}
    calls: list[str] = []
    patched: dict[str, Any] = {}
    start: Any = None

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urllib.parse.unquote(self.path)
        type(self).calls.append(f"GET {path.split('?')[0].rsplit('/', 1)[-1]}{' watch' if 'watch=true' in path else ''}")
        if "/configmaps/" in path:
            return self.reply(json.dumps(self.configmap).encode())
        assert f"labelSelector=harness.io/run={RUN},harness.io/member=seeder" in path, path
        old, new = pod("harness-0123abcd-seeder-old", True, 5), pod("harness-0123abcd-seeder-new", False, 12)
        if "watch=true" not in path:
            return self.reply(json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
                                          "items": [old]}).encode())
        going = {**old, "metadata": {**old["metadata"], "resourceVersion": "11", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
        events = [("MODIFIED", going), ("ADDED", new), ("MODIFIED", pod("harness-0123abcd-seeder-new", True, 13))]
        self.reply("".join(json.dumps({"type": t, "object": o}) + "\n" for t, o in events).encode())

    def do_PATCH(self) -> None:  # noqa: N802
        type(self).calls.append("PATCH configmap")
        type(self).patched = self._body()
        self.reply(json.dumps(self.configmap).encode())

    def do_DELETE(self) -> None:  # noqa: N802
        type(self).calls.append(f"DELETE {self.path.split('?')[0].rsplit('/', 1)[-1]}")
        type(self).start(json.loads(type(self).patched["data"]["seeder.json"]))  # the new pod, reading the new file
        going = pod("harness-0123abcd-seeder-old", True, 11)  # the API server answers with the pod, going
        self.reply(json.dumps({**going, "metadata": {**going["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}).encode())


def test_replace_seeder_rewrites_its_config_and_replaces_its_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from kubernetes import client

    from harness.backends.k8s.values import ValuesOptions, chart_values
    from harness_node.seeder.config import SeederConfig
    from tests.k8s.chart import render

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # in-cluster: the recorded control URL as is
    ip, token = "127.213.19.1", "t0ken-0123456789abcdef"
    plan = plan_file(ROOT / "scenarios" / "malicious-seeder.yaml")
    assert plan.seeder is not None
    rendered = render(chart_values(plan, RUN, ValuesOptions(), token=token), release=f"harness-{RUN}", namespace=NS)
    SeederAPI.configmap = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"harness-{RUN}-seeder")
    SeederAPI.calls, procs = [], []
    (tmp_path / "token").write_text(token)

    def start(config: dict[str, Any]) -> None:
        path = tmp_path / f"seeder-{len(procs)}.json"
        path.write_text(json.dumps({**config, "dns_host": ip, "control_host": ip}))
        procs.append(subprocess.Popen([str(Path(sys.executable).parent / "harness-node"), "seeder", "--config", str(path),
                                       "--token-file", str(tmp_path / "token")], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))

    SeederAPI.start = staticmethod(start)
    run = RunDir(tmp_path / "run")
    run.create()
    run.plan_file.write_text(plan.to_json())
    run.save_state(RunState(scenario=plan.name, backend="k8s", plan_digest=plan.digest, run_id=RUN, status="running",
                            control_token=token,
                            endpoints={plan.seeder.name: {"p2p": "10.96.0.53:53", "control_url": f"http://{ip}:8053"}},
                            backend_state={"release": f"harness-{RUN}", "namespace": NS, "nodes_per_pod": 1, "pods": [], "chaos": []}))
    rogue = ["10.100.0.1", "10.101.0.1"]
    try:
        with serving(HOST, SeederAPI) as (host, port):
            conf = client.Configuration()
            conf.host = f"http://{host}:{port}"
            backend = K8sBackend(run, cluster=Cluster(NS, RUN, client.ApiClient(conf)))
            backend.replace_seeder(rogue)  # returns once the new seeder's control API answers
        assert SeederAPI.calls == [f"GET harness-{RUN}-seeder", "PATCH configmap", "GET pods",
                                   "DELETE harness-0123abcd-seeder-old", "GET pods watch"]
        written = json.loads(SeederAPI.patched["data"]["seeder.json"])
        before = json.loads(SeederAPI.configmap["data"]["seeder.json"])
        assert {k: written[k] for k in ("dns_host", "dns_port", "control_host", "control_port")} == \
               {k: before[k] for k in ("dns_host", "dns_port", "control_host", "control_port")}  # the chart's, kept
        config = SeederConfig.from_dict({**written, "control_token": token})  # the seeder's own strict loader
        assert config.mode == "poison" and not config.crawl and sorted(config.static_nodes) == rogue
        assert "control_token" not in written  # the token stays in the Secret
        with urllib.request.urlopen(f"http://{ip}:8053/status", timeout=10) as r:
            assert json.loads(r.read())["mode"] == "poison"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def test_members_name_attacker_pods_as_attacker_processes(tmp_path: Path) -> None:
    """`harness status`: an active attacker's pod (component attack) is an attacker process, as the
    local backend's `harness-node attack`; node pods are workers hosting their planned nodes."""
    run = RunDir(tmp_path / "run")
    run.create()
    plan = plan_file(ROOT / "scenarios" / "spam-ban.yaml")
    run.plan_file.write_text(plan.to_json())
    run.save_state(RunState(scenario=plan.name, backend="k8s", plan_digest=plan.digest, run_id=RUN, status="running",
                            backend_state={"release": f"harness-{RUN}", "namespace": NS, "nodes_per_pod": 3, "pods": [],
                                           "chaos": []}))

    class Pods:
        def pods(self) -> list[dict[str, Any]]:
            def of(name: str, component: str, role: str) -> dict[str, Any]:
                p = pod(name, True, 1)
                p["metadata"]["labels"].update({"app.kubernetes.io/component": component, "harness.io/role": role})
                return p
            return [of(f"harness-{RUN}-banning-0", "node", "honest"), of(f"harness-{RUN}-spam-ban-7", "attack", "attacker")]

    members = {m.name: m for m in K8sBackend(run, cluster=Pods()).members()}  # type: ignore[arg-type]
    assert (members[f"harness-{RUN}-banning-0"].kind, members[f"harness-{RUN}-banning-0"].nodes) == ("worker", 3)
    assert (members[f"harness-{RUN}-spam-ban-7"].kind, members[f"harness-{RUN}-spam-ban-7"].nodes) == ("attacker", 1)
