"""`harness dashboard`: a live terminal view (rich) of a deployed run for users without Grafana:
nodes and peers, propagation so far, bans, eclipse shares, the timeline's last actions.

The figures come from harness.run.dashboard (one snapshot per refresh); this module only draws
them and reads the keyboard: `q` or Ctrl-C leaves, the run keeps going.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.run.dashboard import Snapshot
from harness.scenario.durations import format_duration

REFRESH_SECONDS = 1.0
KEY_POLL_SECONDS = 0.1  # how soon `q` is noticed
NODE_ROWS = 12
QUIT_KEYS = frozenset("qQ")


def _s(value: float | None) -> str:
    return "-" if value is None else format_duration(round(value, 3))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _header(snap: Snapshot) -> Text:
    st = snap.status
    c = st["controller"]
    text = Text.assemble(("harness dashboard  ", "bold"), (st["scenario"], "bold cyan"),
                         f"  {st['status']}, phase {c['phase'] or 'n/a'}")
    if st.get("monitor_url"):
        text.append(f"  prometheus {st['monitor_url']}", style="dim")
    if c.get("error"):
        text.append(f"\ncontroller error: {c['error']}", style="red")
    if snap.metrics_error:
        text.append(f"\nlive figures unavailable: {snap.metrics_error}", style="yellow")
    return text


def _nodes(snap: Snapshot) -> Table:
    st = snap.status
    nodes = st["nodes"]
    up = [n for n in nodes.values() if n["reachable"]]
    peers = [n["peers"] for n in up]
    table = Table(title=f"nodes {st['summary']['reachable']}/{st['summary']['nodes']} up", title_justify="left")
    for column in ("figure", "value"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row("peers (in / out)", f"{sum(n['inbound'] for n in up)} / {sum(n['outbound'] for n in up)}")
    table.add_row("peers per node (min / max)", f"{min(peers)} / {max(peers)}" if peers else "-")
    table.add_row("height (min / max)", f"{min(n['height'] for n in up)} / {max(n['height'] for n in up)}" if up else "-")
    table.add_row("stopped by the timeline", str(len(st["stopped_nodes"])))
    down = sorted(n for n, v in nodes.items() if not v["reachable"])
    table.add_row("not answering", ", ".join(down[:NODE_ROWS]) or "none")
    return table


def _propagation(snap: Snapshot) -> Table:
    table = Table(title="propagation (latest item / median over items)", title_justify="left")
    for column in ("kind", "items", "coverage", "latest 50/90/100%", "median 50/90/100%"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, p in snap.status["propagation"].items():
        cov = snap.coverage.get(kind, {})
        latest = " / ".join(_s(cov.get(q)) for q in ("0.5", "0.9", "1"))
        median = " / ".join(_s(p[q]) for q in ("p50", "p90", "p100"))
        table.add_row(kind, str(p["items"]), _pct(cov.get("ratio")), latest, median)
    return table


def _bans(snap: Snapshot) -> Table:
    bans = snap.status["bans"]
    table = Table(title=f"bans {bans['total']}, honest banned {bans['honest_banned']}", title_justify="left")
    for column in ("reason", "bans", "time to ban (mean)"):
        table.add_column(column, justify="left" if column == "reason" else "right")
    for reason, count in bans["by_reason"].items():
        timed = snap.time_to_ban.get(reason)
        table.add_row(reason, str(count), _s(timed[1]) if timed else "-")
    return table


def _eclipse(snap: Snapshot) -> Table:
    eclipsed = "-" if snap.eclipsed is None else str(snap.eclipsed)
    table = Table(title=f"eclipse: {len(snap.victims)} victims, {eclipsed} eclipsed", title_justify="left")
    for column in ("victim", "outbound", "new", "tried"):
        table.add_column(column, justify="left" if column == "victim" else "right")
    worst = sorted(snap.victims.items(), key=lambda kv: -kv[1].get("outbound", 0.0))
    for victim, shares in worst[:NODE_ROWS]:
        table.add_row(victim, *(_pct(shares.get(k)) for k in ("outbound", "new", "tried")))
    return table


def _actions(snap: Snapshot) -> Table:
    table = Table(title="timeline: last actions", title_justify="left")
    for column in ("at", "action", "target", "outcome"):
        table.add_column(column)
    for a in snap.actions:
        outcome = Text("ok", style="green") if a["ok"] else Text(f"error: {a['error']}", style="red")
        table.add_row(_s(a["at"]), a["action"], a["target"] or "", outcome)
    return table


def view(snap: Snapshot) -> Group:
    lag = f"controller loop lag (mean) {_s(snap.loop_lag_mean)}" if snap.loop_lag_mean is not None else ""
    return Group(_header(snap), Columns([_nodes(snap), _propagation(snap)]), Columns([_bans(snap), _eclipse(snap)]),
                 _actions(snap), Text(f"{lag}   q or Ctrl-C quits (the run keeps going)", style="dim"))


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str]]:
    """A function that waits up to a timeout for one key press ('' if none). The terminal is in
    cbreak mode meanwhile (keys arrive unbuffered, Ctrl-C still interrupts) and restored after."""
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    if fd is not None:
        tty.setcbreak(fd)

    def read(timeout: float) -> str:
        if fd is None:
            time.sleep(timeout)  # no keyboard: only Ctrl-C ends the view
            return ""
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="replace") if ready else ""
    try:
        yield read
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_dashboard(snapshot: Callable[[], Snapshot], console: Console, refresh: float = REFRESH_SECONDS) -> None:
    """Redraw every ``refresh`` seconds until `q` or Ctrl-C. Snapshots are taken in a thread of
    their own: one can take seconds (a node restarting makes its status call wait for the timeout),
    and the keyboard must answer at once meanwhile."""
    latest: queue.Queue[Snapshot | Exception] = queue.Queue(maxsize=1)

    def produce() -> None:
        while True:
            try:
                snap: Snapshot | Exception = snapshot()
            except Exception as e:  # handed to the view's thread, which raises it (a HarnessError: exit 2)
                latest.put(e)
                return
            latest.put(snap)  # blocks until the view has taken the previous one
            time.sleep(refresh)  # the refresh period

    # A daemon: leaving on `q` must not wait for a snapshot in flight.
    threading.Thread(target=produce, name="dashboard-snapshots", daemon=True).start()
    with _keys() as key, Live(console=console, auto_refresh=False, screen=False) as live:
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                if key(KEY_POLL_SECONDS) in QUIT_KEYS:
                    return
                try:
                    item = latest.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    raise item
                live.update(view(item), refresh=True)


def render_once(snap: Snapshot, console: Console) -> None:
    """Not a terminal: one snapshot, printed (for logs and pipes)."""
    console.print(view(snap))


__all__ = ["render_once", "run_dashboard", "view"]
