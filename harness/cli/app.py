"""The `harness` command: a thin client of the library (harness.run.runner).

Commands are a few lines each; domain errors (HarnessError) are raised deep, caught once in
`options.boundary`, printed with rich to stderr, and turned into the exit code the error carries.
Output: tables and live progress at a terminal; otherwise one plain line per command, or the
JSON with --json (harness.cli.render).
"""

from __future__ import annotations

import contextlib
import enum
import json as jsonlib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Optional

import typer
import yaml

from harness.cli import render
from harness.cli.image import image_app
from harness.cli.options import (
    Backend,
    BackendOption,
    BitcoindOption,
    GrafanaImageOption,
    JsonOption,
    KubeContextOption,
    MonitorOption,
    NodesPerPodOption,
    OutOption,
    PrometheusImageOption,
    RunDirOption,
    ScenarioFile,
    SeedOption,
    WaitOption,
    boundary,
    ctrl_c_sets_flag,
)
from harness.errors import BackendError, BackendUnavailable, ExitCode, HarnessError
from harness.plan.model import Plan
from harness.plan.planner import plan_file
from harness.run.rundir import DEFAULT_RUNS_ROOT, RunDir, RunDirError, default_run_dir

FOLLOW_INTERVAL_SECONDS = 1.0  # refresh period of `deploy --wait`'s live status

app = typer.Typer(
    name="harness",
    help="A chaos testbed for Bitcoin-style P2P networks: validate, plan and run scenario files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _plan_file(file: Path, seed: int | None = None) -> Plan:
    """Load, validate and plan: planning resolves every selector, so this is the full validation."""
    return plan_file(file, seed)


def _runner() -> ModuleType:
    """harness.run.runner, imported when a command needs it (aiohttp, the controller, ~0.7 s): keeps
    `harness --help` and `validate` fast."""
    from harness.run import runner

    return runner


def _latest_run_dir() -> Path | None:
    """The most recently deployed run under ./runs (by its recorded creation time), or None."""
    runs = []
    for state_file in DEFAULT_RUNS_ROOT.glob("*/state.json"):
        try:
            runs.append((RunDir(state_file.parent).load_state().created_at, state_file.parent))
        except RunDirError:
            continue  # not a run directory of ours: skip rather than fail every command
    return max(runs)[1] if runs else None


def _resolve_run_dir(run_dir: Path | None) -> Path:
    if run_dir is not None:
        return run_dir
    latest = _latest_run_dir()
    if latest is None:
        raise RunDirError(f"no run under ./{DEFAULT_RUNS_ROOT}; deploy one with `harness deploy FILE` "
                          f"or pass --run-dir DIR")
    render.stderr_console().print(f"using {latest} (the most recently deployed run)")
    return latest


def _parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """-p KEY=VALUE, the value read as a YAML scalar: 3 -> int, true -> bool, 10s -> "10s"."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HarnessError(f"-p {pair!r}: expected KEY=VALUE, e.g. -p count=3")
        if key in params:
            raise HarnessError(f"-p {key}: given twice")
        try:
            params[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as e:
            raise HarnessError(f"-p {key}: cannot read {text!r} as a value: {getattr(e, 'problem', e)}") from None
    return params


def _rich(json: bool) -> bool:
    return render.is_terminal() and not json


def _outcome(run_dir: Path, out: Path, exit_code: int) -> dict[str, Any]:
    """What `run` and `report` show, read back from the report.json just written (the one source
    CI reads too)."""
    from harness.report.writer import JUNIT_XML, PLOT_FILES, REPORT_JSON, SUMMARY_MD

    document = RunDir(run_dir).read_json(out / REPORT_JSON)
    return {
        "verdict": document["verdict"], "exit_code": exit_code, "scenario": document["scenario"],
        "run_dir": str(run_dir.absolute()), "report_dir": str(out.absolute()), "counts": document["counts"],
        "checks": document["checks"],
        "files": [str(out.absolute() / name) for name in (REPORT_JSON, JUNIT_XML, SUMMARY_MD, *PLOT_FILES.values())],
    }


def _show(info: dict[str, Any], json: bool, pretty: Callable[[dict[str, Any]], None],
          line: Callable[[dict[str, Any]], str]) -> None:
    """One result three ways: JSON on request, a rich view on a terminal, else one plain line."""
    if json:
        render.echo_json(info)
    elif render.is_terminal():
        pretty(info)
    else:
        typer.echo(line(info))


def _show_outcome(outcome: dict[str, Any], json: bool) -> None:
    _show(outcome, json, render.print_outcome, render.outcome_line)


@app.command()
def validate(file: ScenarioFile) -> None:
    """Check a scenario file; print a one-line summary, or the first problem with file:line:col."""
    with boundary():
        typer.echo(render.summary(_plan_file(file)))


@app.command()
def plan(file: ScenarioFile, seed: SeedOption = None, json: JsonOption = False) -> None:
    """Show what a scenario would run: every node, its address and settings, the timeline, the checks."""
    with boundary():
        resolved = _plan_file(file, seed)
        if json:
            typer.echo(resolved.to_json(), nl=False)
        else:
            render.print_plan(resolved)


def _backend_options(kube_context: str | None, nodes_per_pod: int | None,
                     bitcoind: Path | None = None) -> dict[str, Any]:
    """Backend options given on the command line (a backend takes only its own OPTIONS and checks them)."""
    given = {"kube_context": kube_context, "nodes_per_pod": nodes_per_pod,
             "bitcoind_path": str(bitcoind) if bitcoind else None}
    return {k: v for k, v in given.items() if v is not None}


@app.command("render")
def render_release(file: ScenarioFile, out: Annotated[Path, typer.Option("--out", help="Directory to write into.")],
                   backend: BackendOption = Backend("k8s"), seed: SeedOption = None,
                   nodes_per_pod: NodesPerPodOption = None,
                   image: Annotated[Optional[str], typer.Option("--image", help="Node and controller image.")] = None,
                   json: JsonOption = False) -> None:
    """Write a scenario as files another tool deploys, without deploying: --backend k8s writes the
    release's values.yaml and manifests.yaml; --backend docker writes DIR/compose.yaml and DIR/config/
    (`docker compose -f DIR/compose.yaml up -d`)."""
    with boundary():
        if backend.value == "docker":
            from harness.backends.docker import compose

            written = [str(p) for p in compose.write(_plan_file(file, seed), image or "harness-node:latest", out)]
            typer.echo(jsonlib.dumps({"out": str(out), "files": written}) if json else "\n".join(written))
            return
        if backend.value != "k8s":
            raise BackendUnavailable(f"--backend {backend.value}: only k8s and docker render files")
        from harness.backends.k8s.output import render_release as write
        from harness.backends.k8s.values import ValuesOptions

        resolved = _plan_file(file, seed)
        options = ValuesOptions.given(nodes_per_pod, image)
        done = write(resolved, out, options)
        info = {"out": str(done.out), "release": done.release, "namespace": done.namespace, "objects": done.objects,
                "files": list(done.files)}
        typer.echo(jsonlib.dumps(info) if json else f"rendered {done.objects} objects of release {done.release} "
                                                    f"(namespace {done.namespace}) into {done.out}")


def _monitor_options(monitor: bool, prometheus_image: str, grafana_image: str) -> dict[str, Any] | None:
    """The runner's ``monitor``: None without --monitor, else Backend.start_monitor's arguments."""
    return {"prometheus_image": prometheus_image, "grafana_image": grafana_image or None} if monitor else None


def _monitoring_urls(state: Any) -> dict[str, str]:
    """The run's monitoring URLs by name: its Prometheus, and what else the backend started (Grafana)."""
    if state.monitor_url is None:
        return {}
    return {"prometheus": state.monitor_url, **state.backend_state.get("monitoring", {})}


@app.command()
def deploy(file: ScenarioFile, backend: BackendOption = Backend("local"), seed: SeedOption = None,
           run_dir: RunDirOption = None, wait: WaitOption = False, json: JsonOption = False,
           kube_context: KubeContextOption = None, nodes_per_pod: NodesPerPodOption = None,
           monitor: MonitorOption = False, prometheus_image: PrometheusImageOption = "prom/prometheus:latest",
           grafana_image: GrafanaImageOption = "grafana/grafana:latest", bitcoind: BitcoindOption = None) -> None:
    """Start a scenario's network and leave it running; stop it with `harness down`.

    Returns once every node answers and the controller (which plays the timeline) serves its URL;
    prints the run directory, the controller URL (and with --monitor the Prometheus and Grafana
    URLs) and the next commands.
    """
    with boundary():
        path = run_dir or default_run_dir(_plan_file(file, seed).name)
        with render.progress_display(_rich(json)) as on_event:
            state = _runner().deploy(file, backend.value, path, wait=True, seed=seed, on_event=on_event,
                                     options=_backend_options(kube_context, nodes_per_pod, bitcoind),
                                     monitor=_monitor_options(monitor, prometheus_image, grafana_image))
        members = _runner().members(path)
        info = {"scenario": state.scenario, "backend": state.backend, "run_id": state.run_id,
                "run_dir": str(path.absolute()), "controller_url": state.controller_url,
                "monitor_url": state.monitor_url,
                "nodes": len(state.started_nodes), "status": state.status,
                "members": dict(Counter(m["kind"] for m in members)), "member_list": members,
                "monitoring": _monitoring_urls(state)}
        flag = f" --run-dir {path}" if run_dir else ""
        if not wait:
            _show_deployed(info, state.started_nodes[0], flag, json)
            return
        with ctrl_c_sets_flag() as pressed:  # from before the line the user (or a test) waits for
            _show_deployed(info, state.started_nodes[0], flag, json)
            finished = _follow(path, pressed)
        if not finished:
            render.stderr_console().print(f"stopped following; the network keeps running: stop it with "
                                          f"`harness down --run-dir {path}`")


def _show_deployed(info: dict[str, Any], a_node: str, flag: str, json: bool) -> None:
    next_steps = [f"harness status{flag}", f"harness inject inject_tx {a_node}{flag}",
                  f"harness report{flag}", f"harness down{flag}"]
    _show(info, json, lambda i: render.print_deployed(i, next_steps), render.deployed_line)


def _follow(path: Path, pressed: threading.Event) -> bool:
    """`deploy --wait`: show the status until the run stops (e.g. `harness down` from another
    shell), True, or until Ctrl-C sets `pressed`, False (the caller says the network keeps running)."""
    runner = _runner()
    view = render.live_status() if render.is_terminal() else contextlib.nullcontext(lambda _status: None)
    with view as show:
        while not pressed.is_set() and (status := runner.status(path))["running"]:
            show(status)
            pressed.wait(FOLLOW_INTERVAL_SECONDS)  # the refresh period of the view; Ctrl-C ends it at once
        if pressed.is_set():
            return False
        show(status)
    if status["status"] == "crashed":
        raise BackendError(f"the network's processes exited; logs in {Path(status['run_dir']) / 'logs'}, "
                           f"clean up with `harness down --run-dir {path}`")
    return True


@app.command()
def run(file: ScenarioFile, backend: BackendOption = Backend("local"), seed: SeedOption = None,
        out: OutOption = None, run_dir: RunDirOption = None, monitor: MonitorOption = False,
        json: JsonOption = False, kube_context: KubeContextOption = None,
        nodes_per_pod: NodesPerPodOption = None, prometheus_image: PrometheusImageOption = "prom/prometheus:latest",
        grafana_image: GrafanaImageOption = "grafana/grafana:latest", bitcoind: BitcoindOption = None) -> None:
    """Deploy, play the timeline, check the expectations, write the report, tear down.

    Exit 0 if every check passed, 1 if one failed, 2 for invalid input, 130 on Ctrl-C (after
    tearing everything down).
    """
    with boundary():
        path = run_dir or default_run_dir(_plan_file(file, seed).name)
        out = out or path / "report"
        with render.progress_display(_rich(json), "planning") as on_event:
            code = _runner().run(file, backend.value, out, path, seed, on_event=on_event or render.monitor_url_to_stderr,
                                 monitor=_monitor_options(monitor, prometheus_image, grafana_image),
                                 options=_backend_options(kube_context, nodes_per_pod, bitcoind))
        if code == ExitCode.INTERRUPTED:
            render.print_error(HarnessError(f"interrupted; everything the run started was torn down ({path})"))
            raise typer.Exit(code)
        _show_outcome(_outcome(path, out, code), json)
        raise typer.Exit(code)


@app.command()
def sweep(
    file: ScenarioFile,
    set_: Annotated[list[str], typer.Option(
        "--set", help="PATH=V1,V2,...: a dotted path into the scenario and the values to try, read as YAML "
                      "(e.g. network.countermeasures=legacy,current). Repeat for a grid.", show_default=False)],
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per cell: the scenario's seed, +1, +2, ...")] = 3,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Where the runs and sweep.md / sweep.csv / sweep.png go. Default: runs/sweep-<scenario name>.",
        show_default=False)] = None,
    json: JsonOption = False,
) -> None:
    """Run a scenario over a grid of values and seeds, one run after the other on the local backend,
    and compare each check's median and spread per cell.

    Every cell is validated before the first run (exit 2 on a bad path or value, nothing started).
    Exit 0 once the table is written (checks may fail: that is what is compared), 1 if a run could
    not complete, 130 on Ctrl-C.
    """
    from harness.run import sweep as sweeping

    with boundary():
        planned = sweeping.prepare(file, set_, seeds)
        out = out or DEFAULT_RUNS_ROOT / f"sweep-{planned.name}"
        code, files = sweeping.run_sweep(planned, out)
        info = {"scenario": planned.name, "cells": len(planned.cells), "seeds": list(planned.seeds),
                "out_dir": str(out), "files": [str(f) for f in files], "exit_code": int(code)}
        if json:
            render.echo_json(info)
        else:
            typer.echo(f"sweep of {planned.name}: {len(planned.cells)} cells x {len(planned.seeds)} seeds; "
                       f"table in {out / 'sweep.md'}" if files else "sweep interrupted")
        raise typer.Exit(code)


@app.command()
def status(run_dir: RunDirOption = None, json: JsonOption = False) -> None:
    """Show a deployed network: nodes up/down, peers in/out, height, mempool, bans, propagation so far."""
    with boundary():
        info = _runner().status(_resolve_run_dir(run_dir))
        _show(info, json, render.print_status, render.status_line)


@app.command()
def dashboard(run_dir: RunDirOption = None) -> None:
    """A live terminal view of a deployed run: nodes and peers, propagation so far, bans, eclipse
    shares, the timeline's last actions (from the nodes, the controller's /results and /metrics).
    `q` or Ctrl-C leaves; the run keeps going. Not a terminal: prints one snapshot."""
    with boundary():
        from harness.cli import dashboard as view  # rich's live view: only for this command
        from harness.run import dashboard as data

        path = _resolve_run_dir(run_dir)
        first = data.snapshot(path)  # a missing run fails here (exit 2), before the screen is taken
        if render.is_terminal():
            snaps = iter([first])
            view.run_dashboard(lambda: next(snaps, None) or data.snapshot(path), render.stdout_console())
        else:
            view.render_once(first, render.stdout_console())


@app.command()
def inject(
    action: Annotated[str, typer.Argument(help="Action, e.g. inject_tx, inject_block, stop_node, pause_node, "
                                               "resume_node, restart_node, disconnect_peer, seeder_mode.",
                                          show_default=False)],
    target: Annotated[Optional[str], typer.Argument(help="Node name, e.g. node-3 (none for seeder_mode).",
                                                    show_default=False)] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Action parameter KEY=VALUE, the value read as YAML: -p count=3, -p wipe_datadir=true.")] = None,
    run_dir: RunDirOption = None,
    json: JsonOption = False,
) -> None:
    """Apply one timeline action to a running network, now (journaled like a timeline event)."""
    with boundary():
        runner = _runner()
        params = runner.check_action(action, _parse_params(param))  # a bad action fails before any lookup
        record = runner.inject(_resolve_run_dir(run_dir), action, target, params)
        if json:
            render.echo_json(record)
        else:
            result = ", ".join(f"{k} {jsonlib.dumps(v)}" for k, v in record["result"].items())
            typer.echo(f"ok: {action}{' on ' + target if target else ''}" + (f" ({result})" if result else ""))


class CaptureSwitch(str, enum.Enum):
    start = "start"
    stop = "stop"


@app.command()
def capture(
    switch: Annotated[CaptureSwitch, typer.Argument(help="start or stop.", show_default=False)],
    member: Annotated[str, typer.Argument(help="Node name, e.g. node-3.", show_default=False)],
    run_dir: RunDirOption = None,
    json: JsonOption = False,
) -> None:
    """Start or stop recording every message a running node sends and receives (docs/capture.md)."""
    with boundary():
        from harness.run import capture as capture_lib

        info = capture_lib.set_capture(_resolve_run_dir(run_dir), member, switch is CaptureSwitch.start)
        if json:
            render.echo_json(info)
        else:
            typer.echo(f"capture {'on' if info.get('on') else 'off'}: {member}"
                       + (f" ({info['records']} records, {info['bytes']} bytes in {info['dir']})" if info.get("on") else ""))


@app.command()
def messages(
    member: Annotated[str, typer.Argument(help="Node name, e.g. node-3.", show_default=False)],
    peer: Annotated[Optional[str], typer.Option("--peer", help="Only this peer (ip or ip:port).")] = None,
    command: Annotated[Optional[str], typer.Option("--command", help="Only this command, e.g. inv.")] = None,
    run_dir: RunDirOption = None,
    json: JsonOption = False,
) -> None:
    """Print a node's captured messages, decoded, in time order (running or finished run)."""
    with boundary():
        from harness.run import capture as capture_lib

        found = capture_lib.messages(_resolve_run_dir(run_dir), member, peer, command)
        if json:
            render.echo_json(found)
        else:
            for m in found:
                arrow = "<-" if m["direction"] == "recv" else "->"
                typer.echo(f"{m['time']} {arrow} {m['peer']} {m['command']} {m['size']} B "
                           f"{m['decoded'] or m['error']}")


@app.command()
def report(run_dir: RunDirOption = None, out: OutOption = None, json: JsonOption = False) -> None:
    """Write a run's report (report.json, junit.xml, summary.md, PNGs) and show the verdict.

    Works on a finished run, or on a running one (observed now). Exit 0 if every check passed, 1 otherwise.
    """
    with boundary():
        path = _resolve_run_dir(run_dir)
        out = out or path / "report"
        with render.progress_display(_rich(json), "writing the report") as on_event:
            rep, _ = _runner().report(path, out, on_event=on_event)
        code = ExitCode.OK if rep.verdict.value == "pass" else ExitCode.CHECKS_FAILED
        _show_outcome(_outcome(path, out, code), json)
        raise typer.Exit(code)


@app.command()
def logs(member: Annotated[str, typer.Argument(help="A member `harness status` lists: a node's container, "
                                                  "worker-0, seeder, controller ...", show_default=False)],
         run_dir: RunDirOption = None) -> None:
    """Print the log of one member of a run (any backend)."""
    with boundary():
        typer.echo(_runner().logs(_resolve_run_dir(run_dir), member), nl=False)


app.add_typer(image_app, name="image")


@app.command()
def down(run_dir: RunDirOption = None, json: JsonOption = False) -> None:
    """Stop everything a deploy started. Idempotent: exit 0 when nothing runs."""
    with boundary():
        path = run_dir or _latest_run_dir()
        if path is None:
            summary: dict[str, Any] = {"already_down": True, "clean": True, "run_dir": None, "stopped": [], "left": {}}
            line = f"nothing to stop: no runs under ./{DEFAULT_RUNS_ROOT}"
        else:
            if run_dir is None:
                render.stderr_console().print(f"using {path} (the most recently deployed run)")
            summary = _runner().down(path)
            line = render.down_line(summary)
        if json:
            render.echo_json(summary)
        else:
            typer.echo(line)
        left = {kind: ids for kind, ids in summary["left"].items() if ids}
        if left:  # ours, still there after force: a real failure
            raise BackendError(f"teardown of {path} left members behind: {left}")
        if summary.get("bound_ports"):  # maybe another run on the same loopback addresses: a warning only
            render.stderr_console().print(f"warning: ports of this run are still bound (by another run on the same "
                                          f"addresses?): {', '.join(summary['bound_ports'])}")


def main() -> None:
    """Console-script entry point (`harness = "harness.cli:main"`, through the package)."""
    app()
