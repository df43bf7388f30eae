"""The library behind `harness deploy / status / inject / report / down / run`.

Every function takes a run directory (harness.run.rundir) and works from any shell: the state needed
to find the processes, the plan and the control token are all in it. Nothing here prints or
exits; errors are HarnessError subclasses, and `run` returns the process exit code, decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.analysis.checks import evaluate
from harness.run.capture import failed_check_captures
from harness.analysis.figures.bans import bans_by_reason, honest_nodes_banned
from harness.analysis.figures.propagation import item_propagation, kind_propagation
from harness.analysis.model import ITEM_KINDS, CheckResult, CheckVerdict, Observations, Report
from harness.backends.base import Backend, BackendError
from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.registry import make_backend
from harness.analysis.figures.timing import smallest_delay
from harness.controller import timeline
from harness.controller.collector import Collector
from harness.controller.service import Controller, Results
from harness.errors import ExitCode
from harness.plan.model import Plan
from harness.run import detached, progress
from harness.run.progress import ProgressCallback, RunWatcher, emit
from harness.run.rundir import STOPPED, RunDir, RunState, default_run_dir
from harness.scenario.actions import ACTIONS
from harness.scenario.attackers import refuse_unrunnable

REPORT_SUBDIR = "report"  # default report directory: <run dir>/report
LOG_TAIL_LINES = 15
CONTROLLER_START_TIMEOUT_SECONDS = 20.0  # interpreter start + imports (~1 s here) with a wide margin
CONTROLLER_POLL_SECONDS = 0.05
# Actions `inject` accepts: the scenario's actions, plus the undo handlers a person needs to end a
# stop_node or pause_node injected without a duration.
INJECT_UNDO_ACTIONS = ("resume_node", "start_node")


def _open(run_dir: str | Path) -> tuple[RunDir, RunState, Plan, Backend]:
    run = RunDir(run_dir)
    state = run.load_state()
    be = make_backend(state.backend, run)
    return run, state, be.plan, be


def deploy(scenario_path: str | Path, backend: str = "local", run_dir: str | Path | None = None,
           wait: bool = False, seed: int | None = None, on_event: ProgressCallback | None = None,
           options: dict[str, Any] | None = None, monitor: dict[str, Any] | None = None) -> RunState:
    """Start the network detached, with a detached controller running its timeline; returns once
    the processes exist and the controller serves its URL (``wait``: once every node answers).
    `down` stops it. ``on_event``: progress (harness.run.progress). ``options``: the backend's own
    (its OPTIONS, e.g. k8s's kube_context and nodes_per_pod); others are ignored. ``monitor``: not
    None: the backend also starts a Prometheus scraping the run (state.monitor_url; docker: and
    Grafana), once the controller serves; the dict holds Backend.start_monitor's keyword arguments
    (prometheus_image, grafana_image)."""
    emit(on_event, progress.PLANNING, scenario=str(scenario_path))
    plan = runnable_plan(scenario_path, seed)
    run = RunDir(run_dir or default_run_dir(plan.name))
    be = make_backend(backend, run, **(options or {}))
    if monitor is not None:
        be.check_monitor(**monitor)  # MonitorUnavailable (exit 2) before anything starts
    total = len(plan.peers())
    with RunWatcher(run, on_event, total, plan.duration, follow_timeline=False):
        emit(on_event, progress.STARTING_NODES, total=total)
        be.up(plan)
        try:
            emit(on_event, progress.STARTING_CONTROLLER)
            be.start_controller(detached.argv(run))
            if wait:
                emit(on_event, progress.WAITING_FOR_NODES, total=total)
                be.wait_ready()
                emit(on_event, progress.NODES_READY, ready=total, total=total)
            _wait_for_controller(run, be)
            if monitor is not None:  # the controller's URL is known: its first targets are complete
                _start_monitor(be, monitor, on_event)
        except BaseException:
            be.down()
            raise
    return run.load_state()


def _start_monitor(be: Backend, monitor: dict[str, Any], on_event: ProgressCallback | None) -> dict[str, str]:
    emit(on_event, progress.STARTING_MONITOR)
    urls = be.start_monitor(**monitor)
    emit(on_event, progress.MONITOR_STARTED, url=urls["prometheus"], urls=urls)
    return urls


def logs(run_dir: str | Path, member: str) -> str:
    """The log of one member of a run (a name `harness status` lists), from its backend."""
    return _open(run_dir)[3].logs(member)


def runnable_plan(scenario_path: str | Path, seed: int | None = None) -> Plan:
    """The scenario's plan, or ScenarioError (exit 2) if it is invalid or has attackers of a kind
    with no implementation yet (harness.scenario.attackers decides which): nothing has started."""
    from harness.plan.planner import plan as make_plan
    from harness.scenario import load_scenario

    scenario = load_scenario(Path(scenario_path))
    refuse_unrunnable(scenario.attackers, file=str(scenario_path))
    return make_plan(scenario, seed)


def _wait_for_controller(run: RunDir, be: Backend, timeout: float = CONTROLLER_START_TIMEOUT_SECONDS) -> None:
    """Until the placed controller has bound its port and recorded its URL in the state."""
    deadline = time.monotonic() + timeout
    while True:
        if run.load_state().controller_url:
            return
        if not any(m.alive for m in be.members() if m.kind == "controller"):
            tail = "\n".join(be.logs("controller").splitlines()[-LOG_TAIL_LINES:])
            raise BackendError(f"the controller exited during start-up; last lines of its log:\n{tail}")
        if time.monotonic() > deadline:
            raise BackendError(f"the controller did not serve its URL within {timeout:.0f} s; see `harness status`")
        time.sleep(CONTROLLER_POLL_SECONDS)


def status(run_dir: str | Path) -> dict[str, Any]:
    """Processes, every node's reachability and peer counts, and the controller's phase."""
    run, state, plan, be = _open(run_dir)
    running = be.is_running()
    nodes: dict[str, dict[str, Any]] = {}
    if running:
        endpoints = [ep for n, ep in be.node_endpoints().items() if n not in state.stopped_nodes]

        async def poll() -> dict[str, Any]:
            async with ControlClient(state.control_token, timeout=3.0, retries=0) as client:
                client.place(be.host_groups())
                return await client.statuses(endpoints)  # one request per host process where it can

        for name, s in asyncio.run(poll()).items():
            if isinstance(s, ControlAPIError):
                nodes[name] = {"reachable": False, "error": s.reason}
            else:
                counts = s.get("peer_counts") or {d: sum(1 for p in s.get("peers", []) if p.get("direction") == d)
                                                  for d in ("inbound", "outbound")}
                nodes[name] = {"reachable": True, "height": s.get("height"), "peers": counts["inbound"] + counts["outbound"],
                               "outbound": counts["outbound"], "inbound": counts["inbound"], "mempool": s.get("mempool")}
    results = run.read_json(run.results_file) if run.results_file.exists() else {}
    return {
        "run_dir": str(run.path), "scenario": state.scenario, "backend": state.backend, "plan_digest": state.plan_digest,
        "status": state.status if running or state.status == STOPPED else "crashed", "running": running,
        "run_id": state.run_id, "members": [m.to_dict() for m in be.members()], "nodes": nodes,
        "stopped_nodes": list(state.stopped_nodes),
        "summary": {"nodes": len(plan.peers()), "reachable": sum(1 for n in nodes.values() if n["reachable"]),
                    "connected": sum(1 for n in nodes.values() if n.get("peers"))},
        "controller": {"url": state.controller_url, "phase": results.get("phase"), "error": results.get("error")},
        "monitor_url": state.monitor_url,
        **_observed_so_far(results.get("observations")),
    }


def members(run_dir: str | Path) -> list[dict[str, Any]]:
    """What the run's backend runs (processes, containers, pods), alive or not."""
    return [m.to_dict() for m in _open(run_dir)[3].members()]


def _observed_so_far(observations: dict[str, Any] | None) -> dict[str, Any]:
    """Propagation and bans from the controller's latest observation (results.json, the same data
    as its GET /results; at most one collect interval old)."""
    if not observations:
        return {"observed_at": None, "propagation": {}, "bans": {"total": 0, "by_reason": {}, "honest_banned": 0}}
    obs = Observations.from_dict(observations)
    items = [item_propagation(i) for i in obs.items]
    propagation = {}
    for kind in ITEM_KINDS:
        summary = kind_propagation(kind, items)
        propagation[kind] = {"items": summary.items, "p50": summary.p50.median, "p90": summary.p90.median,
                             "p100": summary.p100.median, "never_reached_90": summary.never_reached_90}
    return {"observed_at": obs.ended_at, "propagation": propagation,
            "bans": {"total": len(obs.bans), "by_reason": bans_by_reason(obs.bans),
                     "honest_banned": len(honest_nodes_banned(obs.bans))}}


def inject(run_dir: str | Path, action: str, target: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one timeline action now (e.g. inject_tx on node-3); journaled like a timeline event.
    The action and its params are checked before anything is sent (TimelineError, exit 2)."""
    params = check_action(action, params)
    run, state, plan, be = _open(run_dir)
    if not be.is_running():
        raise BackendError(f"nothing is running in {run.path}; deploy first")
    if target is not None and target not in be.node_endpoints():
        raise timeline.TimelineError(f"no node named {target!r} in this run (nodes: {_names_span(plan.names())})")

    async def act() -> timeline.EventRecord:
        async with ControlClient(state.control_token) as client:
            ctx = timeline.TimelineContext(plan, be, client, run, be.node_endpoints(), be.seeder_endpoint())
            return await timeline.run_action(ctx, 0.0, action, target, dict(params or {}))

    record = asyncio.run(act())
    if not record.ok:
        raise BackendError(f"{action} on {target}: {record.error}")
    return dataclasses.asdict(record)


def injectable_actions() -> list[str]:
    return sorted({*ACTIONS.names(), *INJECT_UNDO_ACTIONS})


def check_action(action: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The params of ``action`` validated by its model (harness.scenario.actions); TimelineError naming
    the problem and the choices otherwise."""
    params = dict(params or {})
    if action not in injectable_actions():
        raise timeline.TimelineError(f"unknown action {action!r}; actions: {', '.join(injectable_actions())}")
    if action not in ACTIONS:
        if params:
            raise timeline.TimelineError(f"{action} takes no parameters (got {', '.join(sorted(params))})")
        return params
    model = ACTIONS.get(action).params
    try:
        model.model_validate(params)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "params"
            if err["type"] == "extra_forbidden":
                known = ", ".join(model.model_fields) or "none"
                hint = "; inject runs an action once, now (end it with another inject)" if where == "duration" else ""
                problems.append(f"unknown parameter {where!r} (parameters: {known}){hint}")
            else:
                problems.append(f"parameter {where}: {err['msg'][:1].lower()}{err['msg'][1:]}, got {err.get('input')!r}")
        raise timeline.TimelineError(f"{action}: " + "; ".join(problems)) from None
    return params


def _names_span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, … {names[-1]}"


def _collect_now(run: RunDir, state: RunState, plan: Plan, be: Backend) -> Results:
    """Observe a running network now (no controller results yet): items, bans, graph, checks."""

    async def observe() -> Results:
        async with ControlClient(state.control_token) as client:
            started = state.ready_at or state.created_at
            obs = await Collector(plan, client, be.node_endpoints(), started).observe(run.read_journal("item"), state.stopped_nodes)
        return Results(phase="done", started_at=started, observations=obs, checks=evaluate(plan.checks, obs, plan))

    return asyncio.run(observe())


def build_report(plan: Plan, backend: str, results: Results, run: RunDir | None = None) -> Report:
    """The report of ``results``; with the run directory, failed checks link their victims' message
    captures (docs/capture.md)."""
    obs = results.observations
    checks = list(results.checks)
    failed = [e for e in results.events if not e.ok]
    if failed:  # a fault that did not happen makes the run's verdict meaningless
        checks.append(CheckResult("timeline", "Every timeline action was executed.", len(failed), "== 0", CheckVerdict.ERROR,
                                  "actions", "; ".join(f"{e.action} {e.target}: {e.error}" for e in failed[:5])))
    return Report(
        scenario=plan.name, seed=plan.seed, plan_digest=plan.digest, backend=backend, node_count=len(plan.peers()),
        started_at=obs.started_at, ended_at=obs.ended_at, checks=checks, items=obs.items, bans=obs.bans,
        attackers=obs.attackers, victims=obs.victims, graph=obs.graph, spam=obs.spam, load=obs.load,
        privacy=obs.privacy,
        loop_lag=obs.loop_lag,
        smallest_delay=smallest_delay([n.config for n in plan.peers() if n.role in ("honest", "attacker")]),
        captures=failed_check_captures(run, plan, checks) if run is not None else {},
    )


def report(run_dir: str | Path, out_dir: str | Path | None = None,
           on_event: ProgressCallback | None = None) -> tuple[Report, list[Path]]:
    """Write the run's report (JSON, JUnit, plots; default <run dir>/report) from the controller's
    results, or from the running network if the controller has not finished. Returns the report
    and the files."""
    from harness.report.writer import write_report

    run, state, plan, be = _open(run_dir)
    results = Results.from_dict(run.read_json(run.results_file)) if run.results_file.exists() else None
    if results is None or results.phase != "done":
        if not be.is_running():
            raise BackendError(f"the run in {run.path} has no results and is not running: nothing to report")
        emit(on_event, progress.COLLECTING)
        events = results.events if results else []
        results = dataclasses.replace(_collect_now(run, state, plan, be), events=events)
    rep = build_report(plan, state.backend, results, run)
    out = Path(out_dir or run.path / REPORT_SUBDIR)
    files = write_report(out, rep)
    emit(on_event, progress.REPORT_WRITTEN, out_dir=str(out), files=[str(f) for f in files])
    return rep, files


def down(run_dir: str | Path) -> dict[str, Any]:
    """Stop everything of the run; idempotent (no run, or nothing running, is fine)."""
    run = RunDir(run_dir)
    if not run.exists():
        return {"already_down": True, "clean": True, "run_dir": str(run.path), "scenario": None, "stopped": [], "left": {}}
    state = run.load_state()
    be = make_backend(state.backend, run)
    alive = [m.name for m in be.members() if m.alive]  # what this call is about to stop
    return {**be.down().to_dict(), "run_dir": str(run.path), "scenario": state.scenario, "stopped": alive}


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Teardown must finish: a second Ctrl-C during it would leave processes behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(scenario_path: str | Path, backend: str = "local", out_dir: str | Path | None = None,
        run_dir: str | Path | None = None, seed: int | None = None, on_event: ProgressCallback | None = None,
        monitor: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> int:
    """deploy -> timeline -> checks -> report -> down, in this process. Returns the exit code:
    0 all checks passed, 1 a check failed or errored, 130 interrupted. Teardown always runs, and
    the node processes die with this one even if it is killed (local backend: PDEATHSIG).
    The report goes to ``out_dir`` (default <run dir>/report); ``on_event``: harness.run.progress.
    ``monitor``: as for `deploy`, but Prometheus starts before the in-process controller, which
    has the backend add itself to the targets when it serves (Backend.update_monitor)."""
    emit(on_event, progress.PLANNING, scenario=str(scenario_path))
    plan = runnable_plan(scenario_path, seed)  # a bad or not yet runnable scenario fails here, before anything starts
    run_ = RunDir(run_dir or default_run_dir(plan.name))
    # watch_parent where the backend can: members die with this process
    be = make_backend(backend, run_, **{**(options or {}), "watch_parent": True})
    if monitor is not None:
        be.check_monitor(**monitor)  # MonitorUnavailable (exit 2) before anything starts
    total = len(plan.peers())
    try:
        with RunWatcher(run_, on_event, total, plan.duration):
            emit(on_event, progress.STARTING_NODES, total=total)
            be.up(plan)
            if monitor is not None:
                _start_monitor(be, monitor, on_event)
            emit(on_event, progress.WAITING_FOR_NODES, total=total)
            results = asyncio.run(Controller(run_, be).run_scenario(serve=True))
        rep = build_report(plan, backend, results, run_)
        from harness.report.writer import write_report

        out = Path(out_dir or run_.path / REPORT_SUBDIR)
        files = write_report(out, rep)
        emit(on_event, progress.REPORT_WRITTEN, out_dir=str(out), files=[str(f) for f in files])
        return ExitCode.OK if rep.verdict is CheckVerdict.PASS else ExitCode.CHECKS_FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        with _sigint_deferred():
            emit(on_event, progress.TEARING_DOWN)
            summary = be.down()
            emit(on_event, progress.TORN_DOWN, **summary.to_dict())
