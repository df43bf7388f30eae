"""Rendering for the CLI: errors, validation summaries, plans, run status, check verdicts and
progress, with rich. Only the CLI calls this.

Two audiences: a person at a terminal gets tables, colours and live progress; anything else (CI,
a pipe) gets one plain line per command (the `*_line` functions) and no escape codes.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness.run import progress
from harness.errors import HarnessError
from harness.plan.model import NodePlan, Plan
from harness.run.progress import ProgressCallback
from harness.report.junit import format_value
from harness.scenario.durations import format_duration

TIMELINE_ROWS = 40  # beyond this the table shows the head and a count; --json has everything
NODE_ROWS = 40  # same for the nodes of `status` (unreachable ones first)
EVENT_LINES = 20  # timeline events printed during `run`; the report has all of them
VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}


def is_terminal() -> bool:
    """Rich output (tables, colours, progress) only for a person at a terminal."""
    return sys.stdout.isatty()


def stderr_console() -> Console:
    # Made per call so CliRunner's captured stderr is used; soft_wrap keeps one error on one line.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_error(error: HarnessError, console: Console | None = None) -> None:
    console = console or stderr_console()
    console.print(Text.assemble(("error: ", "bold red"), str(error)))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('s') else 's'}"


def summary(plan: Plan) -> str:
    """'ok: quickstart, 12 nodes, 1 fault, 2 checks' (nodes = the P2P nodes: honest, bitcoind, attackers)."""
    roles = Counter(node.role for node in plan.nodes if node.role in ("honest", "bitcoind", "attacker"))
    nodes = _plural(sum(roles.values()), "node")
    if len(roles) > 1:
        nodes += " (" + ", ".join(f"{count} {role}" for role, count in roles.items()) + ")"
    faults = len(plan.scenario.get("faults", []))
    return f"ok: {plan.name}, {nodes}, {_plural(faults, 'fault')}, {_plural(len(plan.checks), 'check')}"


def _span(items: list[str]) -> str:
    if len(items) <= 3:
        return ", ".join(items)
    return f"{items[0]}, {items[1]}, … {items[-1]} ({len(items)})"


def _settings(node: NodePlan) -> str:
    config = node.config
    if node.role == "honest":
        off = [name for name, on in config["peering"]["countermeasures"].items() if not on]
        return f"{config['relay_policy']}, {config['misbehaviour_policy']}" + (f", off: {', '.join(off)}" if off else "")
    if node.role == "attacker":
        if "extra" in config:  # a passive attacker, configured in the node's own vocabulary
            return f"{config['extra']['kind']} (passive: never dials)"
        return f"{config['kind']} → {_span(config['targets'])}"
    if node.role == "seeder":
        return f"{config['mode']} DNS for {config['zone']} on port {node.p2p_port}"
    if node.role == "bitcoind":
        return f"-connect {_span(config['connect'])}" if config["connect"] else "no peers"
    return f"control on port {node.control_port}"


def print_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or stdout_console()
    console.print(Text.assemble(("plan ", "bold"), (plan.name, "bold cyan"),
                                f"  seed {plan.seed}, {format_duration(plan.duration)}, "
                                f"addresses: {plan.allocator}, digest {plan.digest[:12]}"))
    nodes = Table(title="nodes", title_justify="left")
    for column in ("role", "group", "count", "names", "addresses", "settings"):
        nodes.add_column(column)
    for (role, group), members in groupby(plan.nodes, key=lambda n: (n.role, n.group)):
        members = list(members)
        nodes.add_row(role, group or "-", str(len(members)), _span([m.name for m in members]),
                      _span([m.address for m in members]), _settings(members[0]))
    console.print(nodes)

    events = Table(title=f"timeline ({_plural(len(plan.timeline), 'event')})", title_justify="left")
    for column in ("at", "action", "nodes", "params", "from"):
        events.add_column(column)
    for event in plan.timeline[:TIMELINE_ROWS]:
        action = event.action if event.phase == "once" else f"{event.action} ({event.phase})"
        params = json.dumps(event.params, sort_keys=True) if event.params else ""
        events.add_row(format_duration(event.at), action, _span(event.nodes), params, event.source)
    if len(plan.timeline) > TIMELINE_ROWS:
        events.add_row("…", f"{len(plan.timeline) - TIMELINE_ROWS} more (see --json)", "", "", "")
    console.print(events)

    checks = Table(title="checks", title_justify="left")
    for column in ("check", "params", "from"):
        checks.add_column(column)
    for check in plan.checks:
        checks.add_row(check.check, json.dumps(check.params, sort_keys=True) if check.params else "", check.source)
    console.print(checks)


def echo_json(data: Any) -> None:
    """--json: the data and nothing else on stdout (never through rich: no markup, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else format_duration(round(value, 3))


# --- progress (deploy, run, report) ---------------------------------------------------------------

class ProgressDisplay:
    """Renders harness.run.progress events as one live line (spinner, step, bar); each finished step
    and each timeline event is printed above it, so the terminal keeps a log of what happened.
    Thread-safe: it is the runner's ``on_event`` callback."""

    def __init__(self, console: Console, first_step: str) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                                 TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.task = self.progress.add_task(first_step, total=None, count="")
        self._done_text: str | None = None
        self._current = self._event_name = ""  # the events that began the step shown / are being handled
        self._events = 0
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[..., None]] = {
            progress.PLANNING: lambda scenario: self._step(f"planning {scenario}"),
            progress.STARTING_NODES: lambda total: self._step(f"starting {total} nodes", total, count=f"0/{total}",
                                                              done=f"{total} nodes started"),
            progress.NODES_STARTED: self._nodes_started,
            progress.STARTING_MONITOR: lambda: self._step("starting Prometheus"),
            progress.MONITOR_STARTED: lambda url, urls: self._finished(
                ", ".join(f"{name.capitalize()} at {u}" for name, u in urls.items())),
            progress.STARTING_CONTROLLER: lambda: self._step("starting the controller", done="controller started"),
            progress.WAITING_FOR_NODES: lambda total: self._step(f"waiting for {total} nodes to answer"),
            progress.NODES_READY: lambda ready, total: self._finished(f"{ready}/{total} nodes ready"),
            progress.TIMELINE_STARTED: lambda duration: self._step(
                "timeline", duration, count=f"0s/{_seconds(duration)}", done="timeline played"),
            progress.TIMELINE_PROGRESS: lambda elapsed, duration: self.progress.update(
                self.task, completed=elapsed, count=f"{elapsed:.0f}s/{_seconds(duration)}"),
            progress.TIMELINE_EVENT: self._event,
            progress.COLLECTING: lambda: self._step("collecting observations, evaluating checks"),
            progress.REPORT_WRITTEN: lambda out_dir, files: self._finished(f"report written to {out_dir}"),
            progress.TEARING_DOWN: lambda: self._step("tearing down"),
            progress.TORN_DOWN: lambda **summary: self._finished(
                f"torn down: {_removed(summary['removed'])} removed"),
        }

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        handler = self._handlers.get(name)
        if handler is not None:
            with self._lock:  # events come from the runner's thread and from its run watcher's
                self._event_name = name
                handler(**data)

    def _step(self, description: str, total: float | None = None, count: str = "", done: str | None = None) -> None:
        """A new step replaces the live line; the one it replaces is logged as done (if it says how)."""
        self._finished(None)
        self._current, self._done_text = self._event_name, done
        self.progress.reset(self.task, total=total, completed=0, description=description, count=count)

    def _finished(self, text: str | None) -> None:
        for line in (self._done_text, text):
            if line:
                self.progress.console.print(Text.assemble(("✓ ", "green"), line))
        self._done_text = None

    def _nodes_started(self, started: int, total: int) -> None:
        if self._current == progress.STARTING_NODES:  # the watcher may report after the step has moved on
            self.progress.update(self.task, completed=started, count=f"{started}/{total}")

    def _event(self, at: float | None, action: str, target: str | None, ok: bool, error: str | None) -> None:
        self._events += 1
        if self._events > EVENT_LINES and ok:
            if self._events == EVENT_LINES + 1:
                self.progress.console.print("  … more timeline events (all of them are in the report)")
            return
        outcome = ("ok", "green") if ok else (f"error: {error}", "red")
        self.progress.console.print(Text.assemble(f"  {_seconds(at):>7}  {action} {target or ''}  ", outcome))


@contextmanager
def progress_display(enabled: bool, first_step: str = "starting") -> Iterator[ProgressCallback | None]:
    """The runner's ``on_event`` callback showing progress, or None when ``enabled`` is False."""
    if not enabled:
        yield None
        return
    display = ProgressDisplay(stdout_console(), first_step)
    with display.progress:
        yield display


# --- deploy -----------------------------------------------------------------------------------------

def deployed_line(info: dict[str, Any]) -> str:
    return (f"deployed: {info['scenario']}, {_plural(info['nodes'], 'node')}, run dir {info['run_dir']}, "
            f"controller {info['controller_url']}"
            + "".join(f", {name} {url}" for name, url in (info.get("monitoring") or {}).items()))


def monitor_url_to_stderr(name: str, data: dict[str, Any]) -> None:
    """`run --monitor` without the progress display: the monitoring URLs still reach the user
    (on stderr, so stdout stays the outcome alone), Prometheus first."""
    if name == progress.MONITOR_STARTED:
        for member, url in (data.get("urls") or {"prometheus": data["url"]}).items():
            stderr_console().print(f"{member} {url}")


def print_deployed(info: dict[str, Any], next_commands: list[str], console: Console | None = None) -> None:
    console = console or stdout_console()
    console.print(Text.assemble(("deployed ", "bold"), (info["scenario"], "bold cyan"),
                                f": {_plural(info['nodes'], 'node')} in {_removed(info['members'])}"
                                f" ({info['backend']}), all answering"))
    console.print(f"  run dir     {info['run_dir']}")
    console.print(f"  controller  {info['controller_url']}  (GET /results, /metrics)")
    for name, url in (info.get("monitoring") or {}).items():
        console.print(f"  {name:<11} {url}" + ("  (scraping every node, the seeder, the controller)" if name == "prometheus" else ""))
    console.print("next:")
    for command in next_commands:
        console.print(Text(f"  {command}", style="cyan"))


# --- status ----------------------------------------------------------------------------------------

def _node_state(name: str, node: dict[str, Any] | None, status: dict[str, Any]) -> str:
    if name in status["stopped_nodes"]:
        return "stopped"
    if node is None:
        return "-"
    return "up" if node["reachable"] else "down"


def status_line(status: dict[str, Any]) -> str:
    s, prop, bans = status["summary"], status["propagation"], status["bans"]
    items = ", ".join(f"{_plural(p['items'], kind)} (p90 {_seconds(p['p90'])})" for kind, p in prop.items() if p["items"])
    return (f"{status['status']}: {status['scenario']}, {s['reachable']}/{s['nodes']} nodes up, "
            f"{s['connected']} with peers, phase {status['controller']['phase'] or 'n/a'}"
            + (f", {items}" if items else "") + f", {_plural(bans['total'], 'ban')}")


def status_view(status: dict[str, Any]) -> Group:
    """Everything `harness status` shows, as one renderable (printed once, or refreshed live)."""
    style = {"running": "green", "stopped": "dim", "crashed": "bold red"}.get(status["status"], "yellow")
    controller = status["controller"]
    header = Text.assemble((status["scenario"], "bold cyan"), "  ", (status["status"], style),
                           f"  {status['backend']}, run dir {status['run_dir']}\n",
                           f"controller {controller['url'] or 'n/a'}, phase {controller['phase'] or 'n/a'}",
                           (f", error: {controller['error']}", "red") if controller["error"] else "",
                           f"\nprometheus {status['monitor_url']}" if status.get("monitor_url") else "")
    parts: list[Any] = [header]
    if status["members"]:
        parts.append(Text.assemble("members: ", *(
            Text(f"{m['name']} {'up' if m['alive'] else 'gone'}" + (", " if i < len(status["members"]) - 1 else ""),
                 style="" if m["alive"] else "red") for i, m in enumerate(status["members"][:NODE_ROWS]))))

    nodes = Table(title=f"nodes ({status['summary']['reachable']}/{status['summary']['nodes']} up)", title_justify="left")
    for column in ("node", "state", "out", "in", "height", "mempool"):
        nodes.add_column(column, justify="left" if column in ("node", "state") else "right")
    names = sorted(set(status["nodes"]) | set(status["stopped_nodes"]))
    names.sort(key=lambda n: _node_state(n, status["nodes"].get(n), status) == "up")  # problems first
    for name in names[:NODE_ROWS]:
        node = status["nodes"].get(name) or {}
        state = _node_state(name, status["nodes"].get(name), status)
        nodes.add_row(name, Text(state, style="green" if state == "up" else "red"),
                      *(str(node.get(key, "")) if node.get(key) is not None else "" for key in
                        ("outbound", "inbound", "height", "mempool")))
    if len(names) > NODE_ROWS:
        nodes.add_row("…", f"{len(names) - NODE_ROWS} more (see --json)", "", "", "", "")
    if names:
        parts.append(nodes)

    prop = Table(title="propagation so far (median over items)", title_justify="left")
    for column in ("kind", "items", "p50", "p90", "p100", "never 90%"):
        prop.add_column(column, justify="left" if column == "kind" else "right")
    for kind, p in status["propagation"].items():
        prop.add_row(kind, str(p["items"]), _seconds(p["p50"]), _seconds(p["p90"]), _seconds(p["p100"]),
                     str(p["never_reached_90"]))
    parts.append(prop if status["propagation"] else Text("propagation: nothing observed yet", style="dim"))

    bans = status["bans"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(bans["by_reason"].items()))
    parts.append(Text.assemble(f"bans: {bans['total']}" + (f" ({reasons})" if reasons else ""),
                               (f", honest nodes banned: {bans['honest_banned']}", "bold red") if bans["honest_banned"]
                               else ", no honest node banned"))
    return Group(*parts)


def print_status(status: dict[str, Any], console: Console | None = None) -> None:
    (console or stdout_console()).print(status_view(status))


@contextmanager
def live_status(console: Console | None = None) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A status view refreshed in place: yields a function that shows a new status."""
    with Live(console=console or stdout_console(), auto_refresh=False) as live:
        yield lambda status: live.update(Group(status_view(status), Text("Ctrl-C stops following; "
                                                                        "the network keeps running until `harness down`",
                                                                        style="dim")), refresh=True)


# --- checks: report and run ------------------------------------------------------------------------

def outcome_line(outcome: dict[str, Any]) -> str:
    checks = outcome["checks"]
    bad = [c["name"] for c in checks if c["verdict"] != "pass"]
    counts = (f"{len(bad)} of {len(checks)} checks did not pass ({', '.join(bad)})" if bad
              else f"{len(checks)} of {len(checks)} checks passed")
    return f"{outcome['verdict']}: {outcome['scenario']}, {counts}; report in {outcome['report_dir']}"


def print_outcome(outcome: dict[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    table = Table(title=f"checks of {outcome['scenario']}", title_justify="left")
    for column in ("check", "verdict", "value", "bound", "details"):
        table.add_column(column)
    for c in outcome["checks"]:
        table.add_row(c["name"], Text(c["verdict"], style=VERDICT_STYLE.get(c["verdict"], "")),
                      format_value(c["value"], c.get("unit", "")), format_value(c["bound"], c.get("unit", "")),
                      c.get("details") or "")
    console.print(table)
    console.print(Text.assemble(("verdict: ", "bold"), (outcome["verdict"].upper(), VERDICT_STYLE.get(outcome["verdict"], "")),
                                f"  report in {outcome['report_dir']} ("
                                + ", ".join(f.rsplit("/", 1)[-1] for f in outcome["files"]) + ")"))


# --- down ------------------------------------------------------------------------------------------

def down_line(summary: dict[str, Any]) -> str:
    if summary["already_down"] or not summary.get("stopped"):
        return f"nothing running in {summary['run_dir']} (already down)"
    where = summary.get("scenario") or summary["run_dir"]
    forced = sum(summary["forced"].values())
    text = (f"stopped {where}: {', '.join(summary['stopped'])} in {summary['seconds']:.1f} s"
            + (f" ({forced} needed force)" if forced else ""))
    left = {kind: ids for kind, ids in summary["left"].items() if ids}
    if left:
        text += "; still there after force: " + "; ".join(f"{kind} {', '.join(ids)}" for kind, ids in left.items())
    return text


def _removed(by_kind: dict[str, int]) -> str:
    """{"process": 3} -> "3 processes"; {"container": 2, "network": 1} -> "2 containers, 1 network"."""
    return ", ".join(_plural(n, kind) for kind, n in by_kind.items()) or "nothing"
