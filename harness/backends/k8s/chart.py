"""The harness chart through Helm's own engine (helm-python-sdk: Helm's Go SDK inside the wheel; no
`helm` binary): render it offline, and install, upgrade and uninstall the one release of a run."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import yaml

from harness.errors import HarnessError


class ChartError(HarnessError):
    """Helm refused the values (schema or template) or could not reach the cluster."""


def chart_dir() -> pathlib.Path:
    """helm/harness of the source checkout harness is installed from (`pip install -e .`)."""
    path = pathlib.Path(__file__).resolve().parents[3] / "helm" / "harness"
    if not (path / "Chart.yaml").is_file():
        raise ChartError(f"no chart at {path}: the k8s backend needs a source checkout installed with `pip install -e .`")
    return path


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as e:
        raise ChartError(f"the k8s backend needs helm-python-sdk: pip install -e '.[k8s]' ({e})") from None
    return helm_python


def render(values: dict[str, Any], release: str, namespace: str) -> dict[str, str]:
    """template file -> its rendered YAML, for an install (Helm's `template`, no cluster)."""
    helm = _helm()
    try:
        with helm.Chart.load(str(chart_dir())) as chart:
            return dict(chart.render(values, name=release, namespace=namespace, is_install=True))
    except helm.HelmError as e:
        raise ChartError(f"the chart refused the values: {e}") from None


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every object of a render, in template order."""
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


@dataclass
class Release:
    """The one Helm release of a run, in its namespace on the cluster of ``kube_context``
    (None: the kubeconfig's current context)."""

    name: str
    namespace: str
    kube_context: str | None = None
    kubeconfig: str | None = None

    def _config(self) -> Any:
        return _helm().Config(kubeconfig_path=self.kubeconfig, kube_context=self.kube_context, namespace=self.namespace)

    def install(self, values: dict[str, Any], *, dry_run: str | None = None) -> dict[str, Any]:
        """Install, or upgrade when the release exists (a re-deploy of the same run). ``dry_run``:
        Helm's "client" or "server"."""
        helm = _helm()
        try:
            with self._config() as config, helm.Chart.load(str(chart_dir())) as chart:
                try:
                    config.status(self.name)
                except helm.HelmNotFoundError:
                    release = config.install(chart, self.name, values, namespace=self.namespace, dry_run=dry_run)
                else:
                    release = config.upgrade(chart, self.name, values, namespace=self.namespace, dry_run=dry_run)
        except helm.HelmError as e:
            raise ChartError(f"helm install {self.name} in {self.namespace}: {e}") from None
        return dict(release)

    def uninstall(self) -> bool:
        """Remove the release (every object it made); False when there was none."""
        helm = _helm()
        try:
            with self._config() as config:
                config.uninstall(self.name, ignore_not_found=True, wait="watcher", timeout=120)
        except helm.HelmNotFoundError:
            return False
        except helm.HelmError as e:
            raise ChartError(f"helm uninstall {self.name} in {self.namespace}: {e}") from None
        return True
