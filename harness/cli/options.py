"""The options the `harness` commands share (their types carry the help text and environment
variable), and `boundary`, the one place a domain error becomes a message and an exit code."""

from __future__ import annotations

import enum
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from harness.backends import registry
from harness.cli import render
from harness.errors import ExitCode, HarnessError

# The --backend choices: every name the registry knows (one that is not built yet says so, exit 2).
Backend = enum.Enum("Backend", {name: name for name in registry.names()}, type=str)  # type: ignore[misc]


LoadTarget = enum.Enum("LoadTarget", {"kind": "kind", "minikube": "minikube"}, type=str)  # type: ignore[misc]

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario file (YAML).", show_default=False)]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="Override the scenario's seed (same file + seed = same plan).", envvar="HARNESS_SEED")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
BackendOption = Annotated[Backend, typer.Option(
    "--backend", help=f"Where to run: {', '.join(registry.names())}.", envvar="HARNESS_BACKEND")]
RunDirOption = Annotated[Optional[Path], typer.Option(
    "--run-dir", help="The run's directory (state, plan, logs, results). deploy/run: default runs/<scenario name>; "
                      "other commands: default the most recently deployed run under ./runs.",
    envvar="HARNESS_RUN_DIR", show_default=False)]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", help="Report directory (report.json, junit.xml, summary.md, PNGs). Default: <run dir>/report.",
    envvar="HARNESS_OUT", show_default=False)]
MonitorOption = Annotated[bool, typer.Option(
    "--monitor", help="Also start a Prometheus scraping every node, the seeder and the controller (local "
                      "backend: needs prometheus and promtool installed; docker: and Grafana with the "
                      "dashboards); prints the URLs. `harness down` stops them.")]
PrometheusImageOption = Annotated[str, typer.Option(
    "--prom-image", help="docker: Prometheus image for --monitor (`harness image build --prometheus` builds one).")]
GrafanaImageOption = Annotated[str, typer.Option(
    "--graf-image", help="docker: Grafana image for --monitor; empty: none.")]
KubeContextOption = Annotated[Optional[str], typer.Option(
    "--kube-context", help="k8s: the kubeconfig context of the cluster (default: the current one).",
    envvar="HARNESS_KUBE_CONTEXT", show_default=False, rich_help_panel="Kubernetes (--backend k8s)")]
NodesPerPodOption = Annotated[Optional[int], typer.Option(
    "--nodes-per-pod", help="k8s: nodes packed into one pod (each keeps its name and planned address); "
                            "default: the scenario's deploy.nodes_per_container, else 1.", show_default=False,
    envvar="HARNESS_NODES_PER_POD", rich_help_panel="Kubernetes (--backend k8s)")]
BitcoindOption = Annotated[Optional[Path], typer.Option(
    "--bitcoind", help="local, docker: the bitcoind binary for the scenario's bitcoind members (default: the one "
                       "scripts/fetch-bitcoind.sh fetches).", envvar="HARNESS_BITCOIND", show_default=False)]
WaitOption = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="Then follow the network in a live status table; Ctrl-C stops following "
                             "only: the network keeps running until `harness down`.")]


@contextmanager
def boundary() -> Iterator[None]:
    """The one place errors become messages and exit codes (no tracebacks for user errors)."""
    try:
        yield
    except HarnessError as error:
        render.print_error(error)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        render.print_error(HarnessError("interrupted"))
        raise typer.Exit(ExitCode.INTERRUPTED) from None


@contextmanager
def ctrl_c_sets_flag() -> Iterator[threading.Event]:
    """Within: Ctrl-C sets the event it yields instead of raising KeyboardInterrupt. For a loop that
    must stop on Ctrl-C every time: Python raises KeyboardInterrupt wherever the main thread happens
    to be, and when that is a finalizer (a weakref callback run by the garbage collector) it is printed
    as "Exception ignored" and lost, so the loop would go on (seen in CI under `deploy --wait`)."""
    pressed = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)
