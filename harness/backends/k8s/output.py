"""`harness render SCENARIO --backend k8s --out DIR`: the values and the manifests of a plan's
release, without a cluster (for review, diffing and GitOps).

DIR/values.yaml (the chart's values), DIR/manifests.yaml (every object, in template order) and
DIR/README.txt (how to install them). The run id is the plan digest's first 8 hex digits, so the
same scenario and seed always render the same bytes. No token is rendered: the values name a
Secret `<release>-token` with key `token` that the installer creates.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import yaml

from harness.backends.k8s.chart import render
from harness.backends.k8s.layout import namespace_for, release_name
from harness.backends.k8s.values import ValuesOptions, chart_values, run_state
from harness.plan.model import Plan


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's when PyYAML has it


@dataclass(frozen=True)
class Rendered:
    out: pathlib.Path
    release: str
    namespace: str
    objects: int
    files: tuple[str, ...]


def render_run_id(plan: Plan) -> str:
    return plan.digest[:8]


def render_release(plan: Plan, out: pathlib.Path, options: ValuesOptions | None = None) -> Rendered:
    run_id = render_run_id(plan)
    options = (options or ValuesOptions()).for_plan(plan)
    release, namespace = release_name(run_id), namespace_for(run_id)
    # the controller in the cluster too, with the run's state (no token; created_at 0: same bytes each time)
    values = chart_values(plan, run_id, options, controller_state=run_state(plan, run_id, options))
    manifests = render(values, release, namespace)  # ChartError before anything is written
    # Helm's own text, as `helm template` prints it (re-dumping through PyYAML costs seconds at 1,000 nodes)
    text = "".join(f"---\n# Source: {name}\n{body.strip()}\n" for name, body in manifests.items() if body.strip())
    docs = sum(1 for name, body in manifests.items() for line in body.splitlines() if line.startswith("kind:"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "values.yaml").write_text(yaml.dump(values, Dumper=_DUMPER, sort_keys=False, width=120))
    (out / "manifests.yaml").write_text(text)
    (out / "README.txt").write_text(
        f"Release {release} of helm/harness for plan {plan.name} ({plan.digest[:16]}).\n"
        f"kubectl create namespace {namespace}\n"
        f"kubectl -n {namespace} create secret generic {release}-token --from-literal=token=$(openssl rand -hex 16)\n"
        f"kubectl -n {namespace} apply -f manifests.yaml      # or: helm install {release} helm/harness -n {namespace} -f values.yaml\n")
    return Rendered(out, release, namespace, docs, ("values.yaml", "manifests.yaml", "README.txt"))
