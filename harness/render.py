"""Rendering for the CLI: errors, validation summaries and plans, with rich. Only the CLI calls this."""

from __future__ import annotations

import json
from collections import Counter
from itertools import groupby

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError
from harness.plan_model import NodePlan, Plan
from harness.scenario.durations import format_duration

TIMELINE_ROWS = 40  # beyond this the table shows the head and a count; --json has everything


def stderr_console() -> Console:
    # Made per call so CliRunner's captured stderr is used; soft_wrap keeps one error on one line.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_error(error: HarnessError, console: Console | None = None) -> None:
    console = console or stderr_console()
    console.print(Text.assemble(("error: ", "bold red"), str(error)))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
        off = [name for name, on in config["countermeasures"].items() if not on]
        return f"{config['relay_policy']}, {config['misbehaviour_policy']}" + (f", off: {', '.join(off)}" if off else "")
    if node.role == "attacker":
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
