"""Progress reporting hooks: the events the runner emits while it deploys and runs a scenario, and
a watcher that turns what a run directory records (state.json, results.json, the journal) into
such events.

The library never prints. It calls an optional ``on_event(name, data)``; the CLI renders the
events as progress bars when stdout is a terminal, and passes no callback otherwise. A callback
may be called from the watcher's thread as well as from the caller's.

Events (name: data keys):

    planning             scenario
    starting nodes       total                       the backend starts its processes
    nodes started        started, total              nodes whose host process has been spawned
    starting monitor                                 `--monitor`: the backend starts Prometheus
    monitor started      url, urls                   where Prometheus answers; every URL started, by name
    starting controller
    waiting for nodes    total                       until every node's control API answers
    nodes ready          ready, total
    timeline started     duration                    seconds the scenario lasts
    timeline progress    elapsed, duration
    timeline event       at, action, target, ok, error   one executed action (from the journal)
    collecting                                       final observations and checks
    report written       out_dir, files
    tearing down
    torn down            DownSummary.to_dict() keys
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.run.rundir import RunDir

ProgressCallback = Callable[[str, dict[str, Any]], None]

PLANNING = "planning"
STARTING_NODES = "starting nodes"
NODES_STARTED = "nodes started"
STARTING_MONITOR = "starting monitor"
MONITOR_STARTED = "monitor started"
STARTING_CONTROLLER = "starting controller"
WAITING_FOR_NODES = "waiting for nodes"
NODES_READY = "nodes ready"
TIMELINE_STARTED = "timeline started"
TIMELINE_PROGRESS = "timeline progress"
TIMELINE_EVENT = "timeline event"
COLLECTING = "collecting"
REPORT_WRITTEN = "report written"
TEARING_DOWN = "tearing down"
TORN_DOWN = "torn down"

# How often the watcher re-reads the run directory: a display refresh rate, cheap (two small
# file reads), and fine-grained enough for a progress bar.
WATCH_INTERVAL_SECONDS = 0.25


def emit(on_event: ProgressCallback | None, name: str, **data: Any) -> None:
    if on_event is not None:
        on_event(name, data)


class RunWatcher:
    """While in its ``with`` block, polls a run directory from a thread and emits what changed.

    It only reads files the backend and the controller write anyway, so it needs no hook in
    either: node start-up from ``state.started_nodes``, and (``follow_timeline``) the controller's
    phase from results.json and each executed action from the journal. With no callback it does
    nothing at all.
    """

    def __init__(self, run: RunDir, on_event: ProgressCallback | None, total_nodes: int, duration: float,
                 *, follow_timeline: bool = True, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self.run, self.on_event = run, on_event
        self.total_nodes, self.duration = total_nodes, duration
        self.follow_timeline, self.interval = follow_timeline, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since: float | None = None  # state.json older than this belongs to an earlier run
        self._started = 0
        self._phase: str | None = None
        self._journal_offset = 0
        self._parsed: dict[Path, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}

    def __enter__(self) -> "RunWatcher":
        if self.on_event is not None:
            self._since = time.time()
            self._thread = threading.Thread(target=self._loop, name="run-watcher", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):  # the refresh period, not a wait for a condition
            self.tick()

    def _emit(self, name: str, **data: Any) -> None:
        emit(self.on_event, name, **data)

    def tick(self) -> None:
        """One look at the run directory (public so tests can drive it without a thread)."""
        state = self._read(self.run.state_file)
        if state is None or (self._since is not None and state.get("created_at", 0) < self._since - 1):
            return  # not written yet, or left from an earlier run that `up` is about to remove
        started = len(state.get("started_nodes", []))
        if started != self._started:
            self._started = started
            self._emit(NODES_STARTED, started=started, total=self.total_nodes)
        if self.follow_timeline:
            self._follow_results()
            self._follow_journal()

    def _follow_results(self) -> None:
        results = self._read(self.run.results_file) or {}
        phase, started_at = results.get("phase"), results.get("started_at")
        if phase != self._phase:
            if phase == "timeline":
                self._emit(NODES_READY, ready=self.total_nodes, total=self.total_nodes)
                self._emit(TIMELINE_STARTED, duration=self.duration)
            elif phase == "finishing":
                self._emit(TIMELINE_PROGRESS, elapsed=self.duration, duration=self.duration)
                self._emit(COLLECTING)
            self._phase = phase
        if phase == "timeline" and started_at is not None:
            elapsed = min(self.duration, max(0.0, time.time() - started_at))
            self._emit(TIMELINE_PROGRESS, elapsed=elapsed, duration=self.duration)

    def _follow_journal(self) -> None:
        """New complete lines of the journal since the last look (a writer may be mid-line)."""
        try:
            with open(self.run.journal_file, "rb") as f:
                f.seek(self._journal_offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._journal_offset += len(complete)
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a journal line is written whole under a lock; skip anything else
            if entry.get("type") == "event":
                self._emit(TIMELINE_EVENT, at=entry.get("at"), action=entry.get("action"), target=entry.get("target"),
                           ok=entry.get("ok"), error=entry.get("error"))

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The file's JSON, parsed again only when the file changed: four times a second, a
        10,000-node run's results.json (23 MB) and state.json (1.8 MB) took the harness process's
        GIL from its controller for a fifth of the time."""
        try:
            st = path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)  # replaced atomically: a new inode each write
            if path in self._parsed and self._parsed[path][0] == key:
                return self._parsed[path][1]
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None  # not there yet (files are replaced atomically, so never half-written)
        parsed = data if isinstance(data, dict) else None
        self._parsed[path] = (key, parsed)
        return parsed
