"""The library behind `harness deploy / status / inject / report / down / run`.

Every function takes a run directory (harness.rundir) and works from any shell: the state needed
to find the processes, the plan and the control token are all in it. Nothing here prints or
exits; errors are HarnessError subclasses, and `run` returns the process exit code, decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import plan_view
from harness.backends import Backend, make_backend
from harness.backends.base import BackendError
from harness.controller import timeline
from harness.controller.client import ControlAPIError, ControlClient
from harness.controller.collector import Collector
from harness.controller.service import Controller, Results, start_detached
from harness.checks import evaluate
from harness.errors import ExitCode
from harness.plan_view import PlanView
from harness.report.model import CheckResult, CheckVerdict, Report
from harness.rundir import STOPPED, RunDir, RunState, default_run_dir

DEFAULT_REPORTS_ROOT = Path("reports")


def _open(run_dir: str | Path) -> tuple[RunDir, RunState, PlanView, Backend]:
    run = RunDir(run_dir)
    state = run.load_state()
    return run, state, PlanView.from_dict(run.read_json(run.plan_file)), make_backend(state.backend, run)


def deploy(scenario_path: str | Path, backend: str = "local", run_dir: str | Path | None = None,
           wait: bool = False, seed: int | None = None) -> RunState:
    """Start the network detached, with a detached controller running its timeline; returns once
    the processes exist (``wait``: once every node answers). `down` stops it."""
    plan = plan_view.load(scenario_path, seed)
    run = RunDir(run_dir or default_run_dir(plan.scenario))
    be = make_backend(backend, run)
    be.up(plan, watch_parent=False)
    try:
        start_detached(run)
        if wait:
            be.wait_ready()
    except BaseException:
        be.down()
        raise
    return run.load_state()


def status(run_dir: str | Path) -> dict[str, Any]:
    """Processes, every node's reachability and peer counts, and the controller's phase."""
    run, state, plan, be = _open(run_dir)
    running = be.is_running()
    nodes: dict[str, dict[str, Any]] = {}
    if running:
        endpoints = [ep for n, ep in be.node_endpoints().items() if n not in state.stopped_nodes]

        async def poll() -> dict[str, Any]:
            async with ControlClient(state.control_token, timeout=3.0, retries=0) as client:
                return await client.gather(endpoints, client.status)

        for name, s in asyncio.run(poll()).items():
            if isinstance(s, ControlAPIError):
                nodes[name] = {"reachable": False, "error": s.reason}
            else:
                peers = s.get("peers", [])
                nodes[name] = {"reachable": True, "height": s.get("height"), "peers": len(peers),
                               "outbound": sum(1 for p in peers if p.get("direction") == "outbound"),
                               "inbound": sum(1 for p in peers if p.get("direction") == "inbound")}
    results = run.read_json(run.results_file) if run.results_file.exists() else {}
    return {
        "run_dir": str(run.path), "scenario": state.scenario, "backend": state.backend, "plan_digest": state.plan_digest,
        "status": state.status if running or state.status == STOPPED else "crashed", "running": running,
        "processes": be.process_status(), "nodes": nodes, "stopped_nodes": list(state.stopped_nodes),
        "summary": {"nodes": len(plan.nodes), "reachable": sum(1 for n in nodes.values() if n["reachable"]),
                    "connected": sum(1 for n in nodes.values() if n.get("peers"))},
        "controller": {"url": state.controller_url, "phase": results.get("phase"), "error": results.get("error")},
    }


def inject(run_dir: str | Path, action: str, target: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one timeline action now (e.g. inject_tx on node-3); journaled like a timeline event."""
    run, state, plan, be = _open(run_dir)
    if not be.is_running():
        raise BackendError(f"nothing is running in {run.path}; deploy first")
    if target is not None and target not in be.node_endpoints():
        raise BackendError(f"no node named {target!r} in this run")

    async def act() -> timeline.EventRecord:
        async with ControlClient(state.control_token) as client:
            ctx = timeline.TimelineContext(plan, be, client, run, be.node_endpoints(), be.seeder_endpoint())
            return await timeline.run_action(ctx, 0.0, action, target, dict(params or {}))

    record = asyncio.run(act())
    if not record.ok:
        raise BackendError(f"{action} on {target}: {record.error}")
    return dataclasses.asdict(record)


def _collect_now(run: RunDir, state: RunState, plan: PlanView, be: Backend) -> Results:
    """Observe a running network now (no controller results yet): items, bans, graph, checks."""

    async def observe() -> Results:
        async with ControlClient(state.control_token) as client:
            started = state.ready_at or state.created_at
            obs = await Collector(plan, client, be.node_endpoints(), started).observe(run.read_journal("item"), state.stopped_nodes)
        return Results(phase="done", started_at=started, observations=obs, checks=evaluate(plan.expect, obs, plan))

    return asyncio.run(observe())


def build_report(plan: PlanView, backend: str, results: Results) -> Report:
    obs = results.observations
    checks = list(results.checks)
    failed = [e for e in results.events if not e.ok]
    if failed:  # a fault that did not happen makes the run's verdict meaningless
        checks.append(CheckResult("timeline", "Every timeline action was executed.", len(failed), "== 0", CheckVerdict.ERROR,
                                  "actions", "; ".join(f"{e.action} {e.target}: {e.error}" for e in failed[:5])))
    return Report(
        scenario=plan.scenario, seed=plan.seed, plan_digest=plan.digest, backend=backend, node_count=len(plan.nodes),
        started_at=obs.started_at, ended_at=obs.ended_at, checks=checks, items=obs.items, bans=obs.bans,
        attackers=obs.attackers, victims=obs.victims, graph=obs.graph,
    )


def report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Report, list[Path]]:
    """Write the run's report (JSON, JUnit, plots) from the controller's results, or from the
    running network if the controller has not finished. Returns the report and the files."""
    from harness.report.writer import write_report

    run, state, plan, be = _open(run_dir)
    results = Results.from_dict(run.read_json(run.results_file)) if run.results_file.exists() else None
    if results is None or results.phase != "done":
        if not be.is_running():
            raise BackendError(f"the run in {run.path} has no results and is not running: nothing to report")
        events = results.events if results else []
        results = dataclasses.replace(_collect_now(run, state, plan, be), events=events)
    rep = build_report(plan, state.backend, results)
    return rep, write_report(Path(out_dir or DEFAULT_REPORTS_ROOT / plan.scenario), rep)


def down(run_dir: str | Path) -> dict[str, Any]:
    """Stop everything of the run; idempotent (no run, or nothing running, is fine)."""
    run = RunDir(run_dir)
    if not run.exists():
        return {"already_down": True, "clean": True, "run_dir": str(run.path)}
    state = run.load_state()
    return {**make_backend(state.backend, run).down().to_dict(), "run_dir": str(run.path)}


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
        run_dir: str | Path | None = None, seed: int | None = None) -> int:
    """deploy -> timeline -> checks -> report -> down, in this process. Returns the exit code:
    0 all checks passed, 1 a check failed or errored, 130 interrupted. Teardown always runs, and
    the node processes die with this one even if it is killed (local backend: PDEATHSIG)."""
    plan = plan_view.load(scenario_path, seed)  # a bad scenario fails here, before anything starts
    run_ = RunDir(run_dir or default_run_dir(plan.scenario))
    be = make_backend(backend, run_)
    try:
        be.up(plan, watch_parent=True)
        results = asyncio.run(Controller(run_, be).run_scenario(serve=True))
        rep = build_report(plan, backend, results)
        from harness.report.writer import write_report

        write_report(Path(out_dir or DEFAULT_REPORTS_ROOT / plan.scenario), rep)
        return ExitCode.OK if rep.verdict is CheckVerdict.PASS else ExitCode.CHECKS_FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        with _sigint_deferred():
            be.down()
