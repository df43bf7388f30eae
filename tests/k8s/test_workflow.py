"""The kind workflow is a valid GitHub Actions workflow (check-jsonschema's vendored schema,
offline), pins every action by a full commit SHA, and runs files that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.chart import ROOT

pytestmark = pytest.mark.k8s_render

WORKFLOW = ROOT / ".github" / "workflows" / "kind.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def check_jsonschema() -> str:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("check-jsonschema is required with CI=true: pip install -e '.[k8s]'")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[k8s]')")
    return exe


def steps() -> list[dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def test_workflow_matches_the_github_actions_schema() -> None:
    done = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_refuses_a_broken_workflow(tmp_path: Path) -> None:
    """The validator really rejects a workflow GitHub would reject (a job without runs-on)."""
    text = WORKFLOW.read_text()
    assert "    runs-on: ubuntu-24.04\n" in text
    path = tmp_path / "broken.yml"  # edited as text: a YAML round trip would turn `on:` into `true:`
    path.write_text(text.replace("    runs-on: ubuntu-24.04\n", ""))
    done = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0


def test_every_action_is_pinned_by_commit() -> None:
    uses = [s["uses"] for s in steps() if "uses" in s]
    assert {u.split("@")[0] for u in uses} == {"actions/checkout", "actions/setup-python", "helm/kind-action",
                                              "actions/upload-artifact"}
    assert [u for u in uses if not PINNED.match(u)] == []
    # Each pin names its release in a comment, so an update is a reviewable diff.
    for line in WORKFLOW.read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"# v\d+\.\d+\.\d+$", line), line


def test_workflow_runs_scenarios_that_exist_and_uploads_reports() -> None:
    runs = "\n".join(s.get("run", "") for s in steps())
    scenarios = re.findall(r"harness run (\S+) --backend k8s", runs)
    assert "scenarios/quickstart.yaml" in scenarios and len(scenarios) >= 2
    assert all((ROOT / s).is_file() for s in scenarios), scenarios
    upload = next(s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "report" in upload["with"]["path"]
