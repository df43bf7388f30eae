"""The run directory: everything another shell needs to find, inspect and tear down a deployed run.

One directory per run (default ``./runs/<scenario-name>``) holds:

- ``.harness-run`` a marker, written first: the directory is the harness' own, so a new run may
                   delete it (`--run-dir` never deletes a directory without it, see RunDir.reset).
- ``state.json``   the RunState (harness.backends.base): backend, run id, plan digest, status,
                   control token, endpoints, and the backend's own record. Written atomically,
                   mode 0600 (it holds the control token).
- ``plan.json``    the Plan the run was deployed from (harness.plan.model), so status, inject,
                   report and the controller process never re-plan.
- ``workers/``     one node-host config file per worker process.
- ``logs/``        one log file per process.
- ``data/<node>/`` node data directories.
- ``journal.jsonl`` one line per executed timeline action and per injected tx/block, appended by
                   whoever acted (the controller, or `harness inject` from another shell).
- ``results.json`` what the controller observed (timeline records, observations), when it ran.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from harness.backends.base import DEPLOYING, RUNNING, STOPPED, RunState
from harness.errors import ExitCode, HarnessError
from harness_node.atomicfile import write_bytes_atomic, write_json_atomic

MARKER_FILE = ".harness-run"
STATE_FILE = "state.json"
PLAN_FILE = "plan.json"
RESULTS_FILE = "results.json"
JOURNAL_FILE = "journal.jsonl"
DEFAULT_RUNS_ROOT = Path("runs")
# What a run directory may hold: a directory from before the marker existed is recognised as a run
# only if its state.json reads as a RunState and it holds nothing else (the report and the
# temp files of _write_atomic included).
RUN_ENTRIES = frozenset({MARKER_FILE, STATE_FILE, PLAN_FILE, RESULTS_FILE, JOURNAL_FILE, ".lock",
                         "workers", "logs", "data", "report"})

__all__ = ["DEPLOYING", "RUNNING", "STOPPED", "RunDir", "RunDirError", "RunState", "default_run_dir"]


class RunDirError(HarnessError):
    """The run directory is missing, unreadable or belongs to something else."""

    exit_code = ExitCode.INVALID_INPUT


def default_run_dir(scenario_name: str) -> Path:
    return DEFAULT_RUNS_ROOT / scenario_name


class RunDir:
    """Paths and state I/O of one run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- layout ---------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def plan_file(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def results_file(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def workers_dir(self) -> Path:
        return self.path / "workers"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def datadir(self, node: str) -> Path:
        return self.path / "data" / node

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / MARKER_FILE
        if not marker.exists():
            marker.write_text("This directory holds a harness run; `harness run/deploy` may replace it.\n")
        for d in (self.workers_dir, self.logs_dir, self.path / "data"):
            d.mkdir(parents=True, exist_ok=True)

    def holds_run(self) -> bool:
        """Is this directory the harness' own (its marker, or a state file and nothing foreign)?"""
        if (self.path / MARKER_FILE).is_file():
            return True
        try:
            entries = {entry.name for entry in self.path.iterdir()}
        except OSError:  # unreadable: not provably ours
            return False
        if not all(name in RUN_ENTRIES or name.startswith(f".{STATE_FILE}.") for name in entries):
            return False
        try:
            self.load_state()
        except (RunDirError, OSError):
            return False
        return True

    def refuse_foreign(self) -> None:
        """RunDirError unless the directory is missing, empty, or holds a harness run: what may be replaced."""
        if self.path.is_symlink():
            raise RunDirError(f"run directory {self.path} is a symbolic link; give the directory itself")
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} is not a directory")
        try:
            empty = not any(self.path.iterdir())
        except OSError as e:
            raise RunDirError(f"cannot read run directory {self.path}: {e.strerror or e}") from None
        if not empty and not self.holds_run():
            raise RunDirError(f"run directory {self.path} is not empty and is not a harness run (no {MARKER_FILE}); "
                              f"refusing to delete it: give a new or empty directory with --run-dir")

    def reset(self) -> None:
        """Start a fresh run here: delete an earlier run's directory, never anything else (refuse_foreign)."""
        self.refuse_foreign()
        try:
            if self.path.exists():
                shutil.rmtree(self.path)
            self.create()
        except OSError as e:
            raise RunDirError(f"cannot prepare run directory {self.path}: {e.strerror or e}") from None

    # --- state ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        """A run's state is here (in a directory the harness owns: `down` never writes into another)."""
        return self.state_file.is_file() and self.holds_run()

    def load_state(self) -> RunState:
        try:
            return RunState.from_dict(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            raise RunDirError(f"no run in {self.path} (no {STATE_FILE}); deploy one first or pass --run-dir") from None
        except (ValueError, TypeError) as e:
            raise RunDirError(f"{self.state_file} is not a harness run state: {e}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of state.json between the CLI and the controller process."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save_state(self, state: RunState) -> None:
        write_bytes_atomic(self.state_file, state.to_json().encode(), mode=0o600)

    def write_json(self, path: Path, data: Any, mode: int = 0o644) -> None:
        write_json_atomic(path, data, mode=mode, indent=2)

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{path} is missing") from None
        except ValueError as e:
            raise RunDirError(f"{path} is not valid JSON: {e}") from None

    # --- journal --------------------------------------------------------------------------------
    @property
    def journal_file(self) -> Path:
        return self.path / JOURNAL_FILE

    def append_journal(self, entry: dict[str, Any]) -> None:
        """One JSON line, appended under an exclusive lock (several writers may act at once)."""
        line = json.dumps(entry, default=str) + "\n"
        with open(self.journal_file, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line)

    def read_journal(self, type_: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.journal_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if type_ is None or e.get("type") == type_]
