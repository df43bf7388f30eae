"""The in-cluster controller's start, as the kubelet would run it, without a cluster: the rendered
init container's shell command really joins plan.json and copies state.json from the ConfigMaps'
files, and the rendered controller command line is accepted by the real entry point, which takes
the token from the Secret's file into a state saved mode 0600."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from harness.backends.k8s.layout import namespace_for, release_name
from harness.backends.k8s.values import ValuesOptions, chart_values, run_state
from harness.plan.planner import plan_file
from harness.run import detached
from harness.run.rundir import RunDir
from tests.k8s.chart import by_kind, named, render

import pytest

pytestmark = pytest.mark.k8s_render
ROOT = Path(__file__).resolve().parents[2]
RUN = "0badc0de"


def test_init_container_and_entry_point_build_the_run_directory(tmp_path: Path) -> None:
    plan = plan_file(ROOT / "scenarios" / "quickstart.yaml")
    options = ValuesOptions(nodes_per_pod=2)
    state = run_state(plan, RUN, options)
    state.control_token = "must-not-be-shipped"
    values = chart_values(plan, RUN, options, token="s" * 32, controller_state=state) | {"configMapMaxBytes": 8192}
    objects = render(values, release=release_name(RUN), namespace=namespace_for(RUN))
    name = f"{release_name(RUN)}-controller"
    # the projected volume /plan: every key of the plan parts and of the state ConfigMap
    projected = tmp_path / "plan"
    projected.mkdir()
    sources = named(objects, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
    plan_volume = next(v for v in sources if v["name"] == "plan")["projected"]["sources"]
    for source in plan_volume:
        cm = next(c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == source["configMap"]["name"])
        for key, text in cm["data"].items():
            (projected / key).write_text(text)
    assert len([p for p in projected.iterdir() if p.name.startswith("plan.json.")]) > 1  # really split
    assert "must-not-be-shipped" not in (projected / "state.json").read_text()
    spec = named(objects, "Deployment", name)["spec"]["template"]["spec"]
    script = spec["initContainers"][0]["command"][2].replace("/plan/", f"{projected}/").replace("/run-dir/", f"{tmp_path}/run/")
    (tmp_path / "run").mkdir()
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    run = RunDir(tmp_path / "run")
    assert run.plan_file.read_text() == plan.to_json(indent=None)
    loaded = run.load_state()
    assert loaded.backend == "k8s" and loaded.run_id == RUN and loaded.control_token is None
    assert loaded.endpoints == state.endpoints and loaded.backend_state["namespace"] == namespace_for(RUN)
    # the container's args, through the entry point's own parser up to the token step
    args = spec["containers"][0]["args"]
    token = tmp_path / "token"
    token.write_text("secret-token-0123456789\n")
    detached.adopt_token(run, str(token))
    assert run.load_state().control_token == "secret-token-0123456789"
    state_file = next(p for p in (tmp_path / "run").iterdir() if p.name == "state.json")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert args[args.index("--token-file") + 1] == "/var/run/harness/token" and args[args.index("--host") + 1] == "0.0.0.0"
    json.loads(values["controller"]["state"])  # one JSON document


def test_an_empty_token_file_is_refused_naming_it(tmp_path: Path) -> None:
    from harness.run.rundir import RunDirError

    run = RunDir(tmp_path / "run")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(RunDirError, match="empty"):
        detached.adopt_token(run, str(tmp_path / "empty"))
