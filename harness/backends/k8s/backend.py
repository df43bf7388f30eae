"""The Kubernetes backend: one Helm release of helm/harness per run, in a namespace of its own.

up: plan.json and state.json first (so `down` always finds the run), then the namespace, then the
release (Helm's engine from Python). Readiness: the pods' Ready condition (the chart's probe asks
the last slot's /status), followed by WATCH. Faults: pod deletion, Chaos Mesh objects when its
CRDs are served and the node is alone in its pod, the node's own control API otherwise. down: the
Chaos Mesh objects, then the release, then the namespace (teardown order: an object Chaos Mesh
still acts on must go before the pods it selects; the namespace last catches anything left).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Sequence
from typing import Any

from harness.backends.base import (DEPLOYING, RUNNING, STOPPED, Backend, DownSummary, MemberStatus, RunState,
                                   RunStore, labels_for, new_run_id, ready_timeout)
from harness.backends.client import ControlClient, call_sync
from harness.backends.k8s import faults
from harness.backends.k8s.chart import Release
from harness.backends.k8s.cluster import Cluster, api_client, check_reachable
from harness.backends.k8s.layout import Placement, pod_layout
from harness.backends.endpoint import Endpoint
from harness.backends.k8s.reach import PodForwards, in_cluster
from harness.backends.k8s.values import (SEEDER_CHART_OWNED, SEEDER_CONTROL_PORT, SEEDER_FILE, ValuesOptions, chart_values,
                                         run_state, seeder_values_config)
from harness.errors import BackendError, HarnessError
from harness.plan.model import Plan


class K8sBackend(Backend):
    name = "k8s"
    OPTIONS = frozenset({"kube_context", "kubeconfig", "nodes_per_pod", "image"})

    def __init__(self, run: RunStore, kube_context: str | None = None, kubeconfig: str | None = None,
                 nodes_per_pod: int | None = None, image: str | None = None, cluster: Cluster | None = None,
                 release: Release | None = None) -> None:
        super().__init__(run)
        self.kube_context, self.kubeconfig = kube_context, kubeconfig
        self.options = ValuesOptions.given(nodes_per_pod, image)
        self._cluster, self._release = cluster, release  # injected by tests; else made from the run state
        self._reach: PodForwards | None = None

    # --- where things are -----------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        return self.state().backend_state

    def cluster(self) -> Cluster:
        if self._cluster is None:
            rec, state = self._record(), self.state()
            self._cluster = Cluster(rec["namespace"], state.run_id, api_client(rec.get("kube_context"), rec.get("kubeconfig")),
                                    labels_for(state.run_id, "namespace", "config", state.scenario))
        return self._cluster

    def release(self) -> Release:
        if self._release is None:
            rec = self._record()
            self._release = Release(rec["release"], rec["namespace"], rec.get("kube_context"), rec.get("kubeconfig"))
        return self._release

    def layout(self) -> dict[str, Placement]:
        rec = self._record()
        return pod_layout(self.plan, rec["release"], rec["namespace"], rec["nodes_per_pod"])

    def _forwards(self) -> PodForwards:
        if self._reach is None:
            self._reach = PodForwards(self.cluster().api, self._record()["namespace"])
        return self._reach

    def node_endpoints(self) -> dict[str, Endpoint]:
        """In the cluster: the pods' DNS names. Outside: each node's control port through a
        local port-forward (reach.py); P2P addresses stay the pods' (only nodes dial them)."""
        recorded = super().node_endpoints()
        if in_cluster():
            return recorded
        layout = self.layout()
        return {n: dataclasses.replace(ep, control_url=self._forwards().url(layout[n].pod, layout[n].control_port))
                for n, ep in recorded.items()}

    def seeder_endpoint(self) -> Endpoint | None:
        recorded = super().seeder_endpoint()
        if recorded is None or in_cluster():
            return recorded
        pods = [p["metadata"]["name"] for p in self.cluster().pods()  # not one that is going (replace_seeder)
                if p["metadata"].get("labels", {}).get("harness.io/member") == "seeder"
                and not p["metadata"].get("deletionTimestamp")]
        if not pods:
            raise BackendError("the seeder's pod is not there; see `harness status`")
        return dataclasses.replace(recorded, control_url=self._forwards().url(pods[0], SEEDER_CONTROL_PORT))

    def transport_for(self, plan: Plan) -> dict[str, dict[str, Any]]:
        """Nodes are reachable at stable pod DNS names; layout.py ships the table (one per release)."""
        from harness.backends.k8s.layout import node_transport

        rec = self._record()
        return node_transport(plan, pod_layout(plan, rec["release"], rec["namespace"], rec["nodes_per_pod"]),
                              self.options.seeder_service_ip)

    # --- placing the plan -----------------------------------------------------------------------
    def up(self, plan: Plan) -> RunState:
        if self._cluster is None:  # before anything is written or created: a missing cluster is exit 2
            check_reachable(api_client(self.kube_context, self.kubeconfig), f"context {self.kube_context or '(current)'}")
        self.run.refuse_foreign()  # type: ignore[attr-defined]
        if self.run.exists() and self.is_running():
            raise BackendError(f"a run is already deployed from {self.run.path}; run `harness down --run-dir {self.run.path}` first")
        self.run.reset()  # type: ignore[attr-defined]
        self.run.plan_file.write_text(plan.to_json())
        self._plan = plan
        state = run_state(plan, new_run_id(), self.options, kube_context=self.kube_context, kubeconfig=self.kubeconfig,
                          created_at=time.time())
        state.control_token = secrets.token_hex(16)
        state.controller_url = None  # set by start_controller: `harness run` plays the timeline itself
        self.run.save_state(state)  # before anything is created: `down` must always find the run
        try:
            self.cluster().create_namespace()
            self.release().install(chart_values(plan, state.run_id, self.options, token=state.control_token))  # no controller yet
        except BaseException:
            try:
                self.down()
            except HarnessError:
                pass  # the first error is the one to report; `harness down` can be run again
            raise
        return state

    def start_controller(self, argv: Sequence[str]) -> None:
        """The controller runs in the cluster: the release is upgraded with the controller enabled
        (a Deployment with the plan and this state in ConfigMaps and the token from the Secret's
        file; `python -m harness.run.detached --host 0.0.0.0 --token-file ...`, the same entry
        point as ``argv`` names locally). Records its Service URL."""
        with self.run.locked():
            state = self.state()
            state.backend_state["controller"] = True
            state.controller_url = run_state(self.plan, state.run_id, self.options).controller_url
            self.run.save_state(state)
        self.release().install(chart_values(self.plan, state.run_id, self.options, token=state.control_token,
                                            controller_state=state))

    def wait_ready(self, timeout: float | None = None, names: Sequence[str] | None = None) -> None:
        """Every pod of the run (nodes, seeder, controller) Ready, by WATCH on the run's pods."""
        rec = self._record()
        expected = len(rec["pods"]) + (1 if self.plan.seeder else 0) + (1 if rec.get("controller") else 0)
        self.cluster().wait_pods_ready(expected, timeout if timeout is not None else ready_timeout(len(self.plan.peers())))
        with self.run.locked():
            state = self.state()
            if state.status == DEPLOYING:
                state.status, state.ready_at = RUNNING, time.time()
                self.run.save_state(state)

    # --- what runs where ------------------------------------------------------------------------
    def members(self) -> list[MemberStatus]:
        per_pod: dict[str, int] = {}
        for place in self.layout().values():
            per_pod[place.pod] = per_pod.get(place.pod, 0) + 1
        out = []
        for pod in self.cluster().pods():
            name = pod["metadata"]["name"]
            labels = pod["metadata"].get("labels", {})
            role = labels.get("harness.io/role", "")
            # an active attacker's pod runs `harness-node attack` (the local backend's "attacker" process)
            kind = "attacker" if labels.get("app.kubernetes.io/component") == "attack" else \
                {"honest": "worker", "attacker": "worker"}.get(role, role)
            from harness.backends.k8s.cluster import pod_ready

            out.append(MemberStatus(name, kind, per_pod.get(name, 0), pod_ready(pod), f"pod/{name}"))
        return out

    def logs(self, member: str) -> str:
        return self.cluster().logs(member)

    def is_running(self) -> bool:
        try:
            state = self.state()
        except Exception:
            return False
        return state.status != STOPPED and bool(state.backend_state.get("release"))

    # --- acting on members ----------------------------------------------------------------------
    def _alone(self, name: str) -> Placement | None:
        """The node's placement when it is the only node of its pod (pod-level faults act on it alone)."""
        layout = self.layout()
        place = layout[name]
        return place if sum(1 for p in layout.values() if p.pod == place.pod) == 1 else None

    def _call(self, name: str, fn: Any) -> None:
        ep = self.node_endpoints()[name]
        call_sync(self.state().control_token, lambda c: fn(c, ep))

    def pause_node(self, name: str) -> None:
        place = self._alone(name)
        if place is not None and self.cluster().chaos_mesh_installed():
            rec, state = self._record(), self.state()
            obj = faults.pod_pause(state.run_id, rec["namespace"], labels_for(state.run_id, name, "chaos", state.scenario), [place.pod])
            self.cluster().create_chaos(obj)
            self._remember_chaos(obj)
        else:
            self._call(name, ControlClient.pause)

    def resume_node(self, name: str) -> None:
        place = self._alone(name)
        state = self.state()
        name_ = faults.chaos_name(state.run_id, "pause", [place.pod]) if place else None
        recorded = [c for c in state.backend_state.get("chaos", []) if c["name"] == name_]
        if recorded:
            self.cluster().delete_chaos("PodChaos", name_)  # type: ignore[arg-type]
            self._forget_chaos(name_)  # type: ignore[arg-type]
        else:
            self._call(name, ControlClient.resume)

    def stop_node(self, name: str) -> None:
        """Asked through its control API (a packed pod keeps its other nodes running). Its control
        site stays, answering only POST /start: no process or pod can be started for one node of a
        pod, and deleting the pod would wipe it and stop its neighbours."""
        if name in self.state().stopped_nodes:
            return
        ep = self.node_endpoints()[name]
        call_sync(self.state().control_token, lambda c: c.shutdown(ep, keep_control=True))
        with self.run.locked():
            state = self.state()
            state.stopped_nodes.append(name)
            self.run.save_state(state)

    def restart_node(self, name: str, wipe_datadir: bool = False) -> None:
        """The node restarts inside its pod (the node's POST /restart: same config and ports, its
        data directory kept or wiped), so a packed pod's other nodes keep running. A node stopped
        by `stop_node` (`start_node`) is started by its kept control site (POST /start); returns
        once it answers /status."""
        ep = self.node_endpoints()[name]
        token = self.state().control_token
        if name not in self.state().stopped_nodes:
            call_sync(token, lambda c: c.restart(ep, wipe_datadir))
            return
        call_sync(token, lambda c: c.start(ep, wipe_datadir))
        with self.run.locked():
            state = self.state()
            state.stopped_nodes.remove(name)
            self.run.save_state(state)
        asyncio.run(self._poll_ready(self.state(), [ep], ready_timeout(1)))

    def replace_seeder(self, rogue_addresses: Sequence[str] | None) -> None:
        """The seeder's ConfigMap file rewritten (a rogue seeder serving only ``rogue_addresses``,
        or the planned honest one for None; where it listens kept from the file, which the chart
        owns), then its pod deleted: its Deployment starts a new one reading the new file, behind
        the same Service address. Returns once the new pod is ready and its control API answers.
        (The release's record still holds the planned seeder: a `helm upgrade` would restore it.)"""
        spec = self.plan.seeder
        if spec is None:
            raise BackendError("this run has no DNS seeder to replace")
        name = f"{self._record()['release']}-seeder"
        live = self.cluster().config_file(name, SEEDER_FILE)
        config = {**seeder_values_config(spec, rogue_addresses), **{k: live[k] for k in SEEDER_CHART_OWNED if k in live}}
        self.cluster().write_config_file(name, SEEDER_FILE, config)
        self.cluster().replace_member_pods("seeder", ready_timeout(1))
        seeder = self.seeder_endpoint()
        assert seeder is not None  # the plan has a seeder, so up recorded its endpoint
        asyncio.run(self._poll_ready(self.state(), [seeder], ready_timeout(1)))

    def _remember_chaos(self, obj: dict[str, Any]) -> None:
        with self.run.locked():
            state = self.state()
            state.backend_state.setdefault("chaos", []).append({"kind": obj["kind"], "name": obj["metadata"]["name"]})
            self.run.save_state(state)

    def _forget_chaos(self, name: str) -> None:
        with self.run.locked():
            state = self.state()
            state.backend_state["chaos"] = [c for c in state.backend_state.get("chaos", []) if c["name"] != name]
            self.run.save_state(state)

    # --- teardown -------------------------------------------------------------------------------
    def _save_logs(self) -> None:
        """Every pod's log into the run directory's logs/ before the pods go (reports and the kind
        workflow's artifacts read them there). Best effort: a pod without a log yet is skipped."""
        try:
            pods = [p["metadata"]["name"] for p in self.cluster().pods()]
        except HarnessError:
            return
        self.run.logs_dir.mkdir(parents=True, exist_ok=True)
        for pod in pods:
            try:
                (self.run.logs_dir / f"{pod}.log").write_text(self.cluster().logs(pod))
            except HarnessError:
                continue

    def down(self) -> DownSummary:
        """Chaos objects, then the release, then the namespace. Idempotent."""
        started = time.monotonic()
        try:
            state = self.state()
        except Exception:
            return DownSummary(already_down=True, seconds=0.0)
        rec = state.backend_state
        if state.status == STOPPED or not rec.get("release"):
            return DownSummary(already_down=True, seconds=0.0)
        removed: dict[str, int] = {}
        self._save_logs()
        for chaos in rec.get("chaos", []):
            self.cluster().delete_chaos(chaos["kind"], chaos["name"])
            removed[chaos["kind"]] = removed.get(chaos["kind"], 0) + 1
        if self.release().uninstall():
            removed["release"] = 1
        if self.cluster().delete_namespace():
            removed["namespace"] = 1
        if self._reach is not None:
            self._reach.close()
        with self.run.locked():
            state = self.state()
            state.status, state.stopped_at = STOPPED, time.time()
            state.backend_state["chaos"] = []
            self.run.save_state(state)
        return DownSummary(already_down=False, seconds=time.monotonic() - started, removed=removed)
