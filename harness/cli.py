"""The `harness` command: a thin client of the library.

Commands are a few lines each; domain errors (HarnessError) are raised deep, caught once in
`_boundary`, printed with rich to stderr, and turned into the exit code the error carries.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from harness import render
from harness.errors import BackendUnavailable, ExitCode, HarnessError, NotImplementedYet
from harness.plan_model import Plan
from harness.planner import plan as make_plan
from harness.scenario import load_scenario

app = typer.Typer(
    name="harness",
    help="A chaos testbed for Bitcoin-style P2P networks: validate, plan and run scenario files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


class Backend(str, enum.Enum):
    local = "local"
    docker = "docker"
    k8s = "k8s"


ScenarioFile = Annotated[Path, typer.Argument(help="Scenario file (YAML).", show_default=False)]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="Override the scenario's seed (same file + seed = same plan).", envvar="HARNESS_SEED")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
BackendOption = Annotated[Backend, typer.Option(
    "--backend", help="Where to run: local processes, docker or k8s.", envvar="HARNESS_BACKEND")]
OutOption = Annotated[Path, typer.Option(
    "--out", help="Run directory: plan, logs, metrics and reports.", envvar="HARNESS_OUT")]
WaitOption = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until every node is up.")]


@contextmanager
def _boundary() -> Iterator[None]:
    """The one place errors become messages and exit codes (no tracebacks for user errors)."""
    try:
        yield
    except HarnessError as error:
        render.print_error(error)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        render.print_error(HarnessError("interrupted"))
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _plan_file(file: Path, seed: int | None = None) -> Plan:
    """Load, validate and plan: planning resolves every selector, so this is the full validation."""
    return make_plan(load_scenario(file), seed=seed)


def _require_backend(backend: Backend) -> None:
    if backend is not Backend.local:
        raise BackendUnavailable(f"the {backend.value} backend is not available yet (arrives in a later release); "
                                 f"use --backend local")


def _not_yet(command: str) -> NotImplementedYet:
    return NotImplementedYet(f"'harness {command}' is not implemented yet; "
                             f"'harness validate' and 'harness plan' work today")


@app.command()
def validate(file: ScenarioFile) -> None:
    """Check a scenario file; print a one-line summary, or the first problem with file:line:col."""
    with _boundary():
        typer.echo(render.summary(_plan_file(file)))


@app.command()
def plan(file: ScenarioFile, seed: SeedOption = None, json: JsonOption = False) -> None:
    """Show what a scenario would run: every node, its address and settings, the timeline, the checks."""
    with _boundary():
        resolved = _plan_file(file, seed)
        if json:
            typer.echo(resolved.to_json(), nl=False)
        else:
            render.print_plan(resolved)


@app.command()
def deploy(file: ScenarioFile, backend: BackendOption = Backend.local, seed: SeedOption = None,
           out: OutOption = Path("runs"), wait: WaitOption = True) -> None:
    """Start a scenario's network and leave it running (stop it with `harness down`)."""
    with _boundary():
        _require_backend(backend)
        _plan_file(file, seed)
        raise _not_yet("deploy")


@app.command()
def run(file: ScenarioFile, backend: BackendOption = Backend.local, seed: SeedOption = None,
        out: OutOption = Path("runs"), json: JsonOption = False) -> None:
    """Deploy, play the timeline, check the expectations, tear down; exit 1 if a check fails."""
    with _boundary():
        _require_backend(backend)
        _plan_file(file, seed)
        raise _not_yet("run")


@app.command()
def status(backend: BackendOption = Backend.local, out: OutOption = Path("runs"), json: JsonOption = False) -> None:
    """Show the running network: nodes up, peers, bans."""
    with _boundary():
        _require_backend(backend)
        raise _not_yet("status")


@app.command()
def inject(
    action: Annotated[str, typer.Argument(help="Action name, e.g. stop_node, inject_tx (see harness.actions).")],
    target: Annotated[str, typer.Argument(help="Node name or pattern, e.g. node-3 or node-[0-4].")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Action parameter KEY=VALUE.")] = None,
    backend: BackendOption = Backend.local,
    out: OutOption = Path("runs"),
) -> None:
    """Apply one timeline action to a running network, now."""
    with _boundary():
        _require_backend(backend)
        raise _not_yet("inject")


@app.command()
def report(out: OutOption = Path("runs"), json: JsonOption = False) -> None:
    """Summarise a finished run: checks, propagation, bans; JUnit and JSON files for CI."""
    with _boundary():
        raise _not_yet("report")


@app.command()
def down(backend: BackendOption = Backend.local, out: OutOption = Path("runs")) -> None:
    """Stop and remove everything a deploy started (idempotent)."""
    with _boundary():
        _require_backend(backend)
        raise _not_yet("down")


def main() -> None:
    """Console-script entry point (`harness = "harness.cli:main"`)."""
    app()
