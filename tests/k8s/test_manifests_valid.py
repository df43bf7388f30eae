"""Every rendered manifest validates against Kubernetes' own OpenAPI schemas, strictly (an unknown
field is an error), for three minor versions, offline (kubernetes-validate ships the schemas)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.chart import CRD_KINDS, make_values, need, render, spam_attack

pytestmark = pytest.mark.k8s_render

VERSIONS = ("1.29.0", "1.31.0", "1.33.0")
FULL_MONITORING = {"serviceMonitor": {"enabled": True}, "prometheus": {"enabled": True}, "grafana": {"enabled": True}}
VALUE_SETS = {
    "minimal": make_values(),
    "packed-attackers-monitoring": make_values(nodes=10, nodes_per_pod=4, attackers=3, monitoring=FULL_MONITORING,
                                               networkPolicy={"metricsFrom": [{"kubernetes.io/metadata.name": "monitoring"}]}),
    "existing-secret-no-policies-no-seeder": make_values(controlToken={"existingSecret": "my-token"},
                                                         networkPolicy={"enabled": False}, seeder={"enabled": False}),
    "no-controller": make_values(controller={"enabled": False}),
    "active-attackers-monitoring": make_values(nodes=4, attacks=[spam_attack(identities=3)], monitoring=FULL_MONITORING,
                                               transport={"endpoints": {}, "inbound_hosts": {}}),
    "longest-names": make_values(nodes=3, nodes_per_pod=2, attackers=1) | {"groups": [
        {**make_values(nodes=3, nodes_per_pod=2)["groups"][0], "name": "g" * 20}]},
}
LONGEST_RELEASE = "r" * 31  # the chart's limit (StatefulSet names)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values, release=LONGEST_RELEASE if name == "longest-names" else "qs")
            for name, values in VALUE_SETS.items()}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_manifests_validate_strictly(rendered: dict[str, list[dict[str, Any]]], case: str, version: str) -> None:
    kv = need("kubernetes_validate")
    checked = 0
    for obj in rendered[case]:
        if obj["kind"] in CRD_KINDS:
            continue  # not a Kubernetes kind: kubernetes-validate has no schema for it
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{case} on {version}: {obj['kind']}/{obj['metadata']['name']}: {e.path}: {e.message}")
        checked += 1
    assert checked == len([o for o in rendered[case] if o["kind"] not in CRD_KINDS]) > 0


def test_validator_rejects_a_wrong_manifest() -> None:
    """The validator in strict mode really refuses what the chart must never emit."""
    kv = need("kubernetes_validate")
    obj = next(o for o in render(make_values()) if o["kind"] == "StatefulSet")
    obj["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    with pytest.raises(kv.ValidationError):
        kv.validate(obj, VERSIONS[0], strict=True)


def test_the_cli_validates_the_rendered_files(tmp_path: Path) -> None:
    """The same check through `kubernetes-validate --strict`, as a user would run it on `harness render` output."""
    need("kubernetes_validate")
    docs = [o for o in render(make_values(nodes=4, nodes_per_pod=2)) if o["kind"] not in CRD_KINDS]
    out = tmp_path / "manifests.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe is not None
    for version in VERSIONS:
        done = subprocess.run([exe, "--strict", "--quiet", "-k", version, str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
