"""The run's namespace through the kubernetes client: create and delete it, wait for pods by WATCH
(never by sleeping), read logs, delete and replace pods, read and rewrite a ConfigMap's file,
create and delete Chaos Mesh objects.

Every call selects by the run's label (``harness.io/run``), so nothing of another run is touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from harness.errors import BackendError, ExitCode

RUN_LABEL = "harness.io/run"
CHAOS_GROUP, CHAOS_VERSION = "chaos-mesh.org", "v1alpha1"
CHAOS_PLURALS = {"NetworkChaos": "networkchaos", "PodChaos": "podchaos"}
NAMESPACE_GONE_TIMEOUT_SECONDS = 300


def api_client(kube_context: str | None = None, kubeconfig: str | None = None) -> Any:
    """A kubernetes ApiClient: in-cluster when running in a pod, else the kubeconfig's context."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        pass
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=kube_context)
    except (config.ConfigException, FileNotFoundError, TypeError) as e:
        raise ClusterUnreachable(f"no Kubernetes cluster configured (context {kube_context or 'current'}): {e}") from None


class ClusterUnreachable(BackendError):
    """No cluster answers at the configured context: nothing was created (exit 2, like bad input)."""

    exit_code = ExitCode.INVALID_INPUT


def check_reachable(api: Any, where: str) -> None:
    """Ask the API server its version: the cheapest call every cluster answers."""
    from kubernetes import client

    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as e:  # noqa: BLE001 - urllib3, TLS and API errors alike mean "not reachable"
        raise ClusterUnreachable(f"no Kubernetes cluster answers at {where}: {e.__class__.__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}") from None


def pod_ready(pod: dict[str, Any]) -> bool:
    """A pod is ready when its Ready condition is True (the chart's readiness probe: the pod's
    last slot answers /status)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_failed(pod: dict[str, Any]) -> str | None:
    """Why a pod cannot become ready on its own (a crash loop, an image that cannot be pulled)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return f"phase Failed: {status.get('reason') or ''}"
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                     "CreateContainerConfigError"):
            return f"{c.get('name')}: {waiting['reason']}: {waiting.get('message', '')}".strip()
    return None


@dataclass
class Cluster:
    """One run's namespace on one cluster."""

    namespace: str
    run_id: str
    api: Any = None  # kubernetes.client.ApiClient
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def selector(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    # --- the namespace --------------------------------------------------------------------------
    def create_namespace(self) -> bool:
        """Create the run's namespace (labelled with the run); False when it exists already."""
        from kubernetes.client import ApiException

        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace, "labels": self.labels}}
        try:
            self._core().create_namespace(body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise BackendError(f"cannot create namespace {self.namespace}: {e.status} {e.reason}") from None
        return True

    def delete_namespace(self, timeout: float = NAMESPACE_GONE_TIMEOUT_SECONDS) -> bool:
        """Delete the namespace and watch until it is gone; False when there was none."""
        from kubernetes import watch
        from kubernetes.client import ApiException

        core = self._core()
        try:
            core.delete_namespace(self.namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise BackendError(f"cannot delete namespace {self.namespace}: {e.status} {e.reason}") from None
        w = watch.Watch()
        for event in w.stream(core.list_namespace, field_selector=f"metadata.name={self.namespace}",
                              timeout_seconds=int(timeout), _preload_content=True):
            if event["type"] == "DELETED":
                w.stop()
        return True

    # --- pods -----------------------------------------------------------------------------------
    def wait_pods_ready(self, expected: int, timeout: float) -> list[str]:
        """Watch the run's pods until ``expected`` of them are ready; the names of the ready ones.
        Raises BackendError naming the first pod that fails (crash loop, image) or on timeout."""
        from kubernetes import watch

        core, ready, deadline = self._core(), set(), time.monotonic() + timeout
        listed = core.list_namespaced_pod(self.namespace, label_selector=self.selector, _preload_content=False)
        listing = json.loads(listed.data)
        for pod in listing.get("items", []):
            self._observe(pod, ready)
        version = listing.get("metadata", {}).get("resourceVersion")
        w = watch.Watch()
        while len(ready) < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"{expected - len(ready)} of {expected} pods not ready after {timeout:.0f} s "
                                   f"in namespace {self.namespace}; see `harness status` and the pods' logs")
            for event in w.stream(core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                                  resource_version=version, timeout_seconds=max(1, int(left))):
                pod = event["raw_object"]
                version = pod.get("metadata", {}).get("resourceVersion", version)
                if event["type"] == "DELETED":
                    ready.discard(pod["metadata"]["name"])
                else:
                    self._observe(pod, ready)
                if len(ready) >= expected:
                    w.stop()
                    break
        return sorted(ready)

    @staticmethod
    def _observe(pod: dict[str, Any], ready: set[str]) -> None:
        name = pod["metadata"]["name"]
        failed = pod_failed(pod)
        if failed:
            raise BackendError(f"pod {name} cannot start: {failed}")
        (ready.add if pod_ready(pod) else ready.discard)(name)

    def pods(self) -> list[dict[str, Any]]:
        listed = self._core().list_namespaced_pod(self.namespace, label_selector=self.selector, _preload_content=False)
        return json.loads(listed.data).get("items", [])

    def logs(self, pod: str, container: str | None = None) -> str:
        from kubernetes.client import ApiException

        try:
            return str(self._core().read_namespaced_pod_log(pod, self.namespace, container=container))
        except ApiException as e:
            raise BackendError(f"no log of pod {pod}: {e.status} {e.reason}") from None

    def delete_pod(self, pod: str, grace_seconds: int = 0) -> None:
        from kubernetes.client import ApiException

        try:
            self._core().delete_namespaced_pod(pod, self.namespace, grace_period_seconds=grace_seconds)
        except ApiException as e:
            if e.status != 404:
                raise BackendError(f"cannot delete pod {pod}: {e.status} {e.reason}") from None

    def replace_member_pods(self, member: str, timeout: float) -> str:
        """Delete the pods of ``member`` (label harness.io/member) and watch until a new one, made
        by its Deployment or StatefulSet, is ready; its name. A pod that is going is never taken
        for the new one (its name is among the old ones)."""
        from kubernetes import watch

        selector = f"{self.selector},harness.io/member={member}"
        core = self._core()
        listing = json.loads(core.list_namespaced_pod(self.namespace, label_selector=selector, _preload_content=False).data)
        old = {p["metadata"]["name"] for p in listing.get("items", [])}
        for pod in sorted(old):
            self.delete_pod(pod)
        version, deadline, w = listing.get("metadata", {}).get("resourceVersion"), time.monotonic() + timeout, watch.Watch()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"no new {member} pod ready after {timeout:.0f} s in namespace {self.namespace}")
            for event in w.stream(core.list_namespaced_pod, self.namespace, label_selector=selector,
                                  resource_version=version, timeout_seconds=max(1, int(left))):
                pod = event["raw_object"]
                version = pod.get("metadata", {}).get("resourceVersion", version)
                name = pod["metadata"]["name"]
                if event["type"] == "DELETED" or name in old:
                    continue
                failed = pod_failed(pod)
                if failed:
                    raise BackendError(f"pod {name} cannot start: {failed}")
                if pod_ready(pod):
                    w.stop()
                    return str(name)

    def config_file(self, configmap: str, key: str) -> dict[str, Any]:
        """The JSON file ``key`` of a ConfigMap of the release."""
        from kubernetes.client import ApiException

        try:
            cm = json.loads(self._core().read_namespaced_config_map(configmap, self.namespace, _preload_content=False).data)
            return dict(json.loads(cm["data"][key]))
        except ApiException as e:
            raise BackendError(f"cannot read ConfigMap {configmap}: {e.status} {e.reason}") from None
        except (KeyError, ValueError) as e:
            raise BackendError(f"ConfigMap {configmap} has no JSON file {key}: {e}") from None

    def write_config_file(self, configmap: str, key: str, data: dict[str, Any]) -> None:
        """Replace the JSON file ``key`` of a ConfigMap (a merge patch: its other keys stay)."""
        from kubernetes.client import ApiException

        try:
            self._core().patch_namespaced_config_map(configmap, self.namespace,
                                                     {"data": {key: json.dumps(data, sort_keys=True)}})
        except ApiException as e:
            raise BackendError(f"cannot update ConfigMap {configmap}: {e.status} {e.reason}") from None

    # --- Chaos Mesh -----------------------------------------------------------------------------
    def chaos_mesh_installed(self) -> bool:
        """Chaos Mesh's API group is served (its CRDs are installed)."""
        from kubernetes import client
        from kubernetes.client import ApiException

        try:
            groups = client.ApisApi(self.api).get_api_versions().groups
        except ApiException:
            return False
        return any(g.name == CHAOS_GROUP for g in groups)

    def create_chaos(self, obj: dict[str, Any]) -> None:
        from kubernetes.client import ApiException

        try:
            self._custom().create_namespaced_custom_object(CHAOS_GROUP, CHAOS_VERSION, self.namespace,
                                                            CHAOS_PLURALS[obj["kind"]], obj)
        except ApiException as e:
            raise BackendError(f"cannot create {obj['kind']} {obj['metadata']['name']}: {e.status} {e.reason}") from None

    def delete_chaos(self, kind: str, name: str) -> None:
        from kubernetes.client import ApiException

        try:
            self._custom().delete_namespaced_custom_object(CHAOS_GROUP, CHAOS_VERSION, self.namespace, CHAOS_PLURALS[kind], name)
        except ApiException as e:
            if e.status != 404:
                raise BackendError(f"cannot delete {kind} {name}: {e.status} {e.reason}") from None
