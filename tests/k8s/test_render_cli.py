"""`harness render SCENARIO --backend k8s --out DIR` through the real CLI and Helm's engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.chart import need

pytestmark = pytest.mark.k8s_render
ROOT = Path(__file__).resolve().parents[2]


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "harness"), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_render_writes_values_and_manifests_deterministically(tmp_path: Path) -> None:
    need("helm_python")
    outs = []
    for k in range(2):
        done = harness("render", "scenarios/quickstart.yaml", "--backend", "k8s", "--nodes-per-pod", "4",
                       "--out", str(tmp_path / f"r{k}"), "--json")
        assert done.returncode == 0, done.stderr
        outs.append(json.loads(done.stdout))
    values = yaml.safe_load((tmp_path / "r0" / "values.yaml").read_text())
    docs = [d for d in yaml.safe_load_all((tmp_path / "r0" / "manifests.yaml").read_text()) if d]
    assert len(docs) == outs[0]["objects"] and values["nodesPerPod"] == 4
    assert next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["replicas"] == 3  # 12 nodes / 4
    assert not any(d["kind"] == "Secret" for d in docs)  # no token rendered: the installer makes the Secret
    for name in ("values.yaml", "manifests.yaml"):
        assert (tmp_path / "r0" / name).read_bytes() == (tmp_path / "r1" / name).read_bytes()


def test_render_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    need("helm_python")
    # two groups the scenario allows but whose names collide once cut to the chart's 20-character label
    (tmp_path / "collide.yaml").write_text("name: collide\nduration: 30s\nnetwork:\n  groups:\n"
                                           "    - {name: a-very-long-group-name-one, count: 2}\n"
                                           "    - {name: a-very-long-group-name-two, count: 2}\n")
    done = harness("render", str(tmp_path / "collide.yaml"), "--backend", "k8s", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "both become the Kubernetes name 'a-very-long-group-na'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
    done = harness("render", "scenarios/quickstart.yaml", "--nodes-per-pod", "0", "--out", str(tmp_path / "y"))
    assert done.returncode == 2 and "--nodes-per-pod: 0" in done.stderr and not (tmp_path / "y").exists()


def test_deploy_without_a_cluster_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run([str(Path(sys.executable).parent / "harness"), "deploy", "scenarios/quickstart.yaml",
                           "--backend", "k8s", "--kube-context", "nowhere", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 2, done.stderr
    assert "no Kubernetes cluster configured (context nowhere)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_render_refuses_capture_of_bitcoind_members(tmp_path: Path) -> None:
    """A bitcoind member is captured from the outside, off the local backend's loopback; in a pod
    nothing could, so `network.capture: true` with bitcoind members is refused naming the field."""
    need("helm_python")
    scenario = yaml.safe_load((ROOT / "scenarios" / "mixed-bitcoind.yaml").read_text())
    scenario["network"]["capture"] = True
    (tmp_path / "capture.yaml").write_text(yaml.safe_dump(scenario))
    done = harness("render", str(tmp_path / "capture.yaml"), "--backend", "k8s", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "network.capture" in done.stderr and "local backend" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x").exists()
