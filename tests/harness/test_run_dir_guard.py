"""`--run-dir DIR` deletes DIR only when it holds a harness run (issue 9, item 5).

Real directories with real files: the CLI (`harness run` / `harness deploy`, as subprocesses) must
refuse a non-empty directory that is not a run, exit 2, name the directory, start nothing and
delete nothing. A directory the harness made for an earlier run is still replaced, as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.rundir import MARKER_FILE, STATE_FILE, RunDir, RunDirError, RunState

HARNESS = Path(sys.executable).with_name("harness")  # the installed console script: the real CLI
SCENARIO = "name: guard\nduration: 5s\nnetwork: {nodes: 2}\nseeder: {enabled: false}\n"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its content (None for directories): what 'nothing deleted' compares."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def harness(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(HARNESS), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                            env={**os.environ, **(env or {})})
    if result.returncode != 2:  # it deployed (the hole): stop what it started before failing
        subprocess.run([str(HARNESS), "down", "--run-dir", args[args.index("--run-dir") + 1]], cwd=cwd,
                       capture_output=True, timeout=60)
    return result


def assert_refused(result: subprocess.CompletedProcess[str], shown: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert shown in lines[0] and "not a harness run" in lines[0], lines[0]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario" / "guard.yaml"
    path.parent.mkdir()
    path.write_text(SCENARIO)
    return path


@pytest.mark.parametrize("command", ["run", "deploy"])
def test_a_directory_with_one_unrelated_file_is_refused_and_kept(command: str, scenario: Path, tmp_path: Path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("three years of work\n")
    before = snapshot(target)

    result = harness(command, str(scenario), "--run-dir", str(target), cwd=tmp_path)

    assert_refused(result, str(target))
    assert snapshot(target) == before


@pytest.mark.parametrize("command", ["run", "deploy"])
def test_run_dir_dot_in_a_directory_with_files_is_refused(command: str, scenario: Path, tmp_path: Path):
    work = tmp_path / "project"
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('hello')\n")
    (work / "README").write_text("mine\n")
    before = snapshot(work)

    result = harness(command, str(scenario), "--run-dir", ".", cwd=work)

    assert_refused(result, str(work))
    assert snapshot(work) == before


def test_a_home_like_directory_is_refused(scenario: Path, tmp_path: Path):
    home = tmp_path / "home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("not really a key\n")
    (home / ".bashrc").write_text("export PS1='$ '\n")
    (home / "runs").mkdir()  # even one holding the harness' default runs root
    before = snapshot(home)

    result = harness("deploy", str(scenario), "--run-dir", str(home), cwd=home, env={"HOME": str(home)})

    assert_refused(result, str(home))
    assert snapshot(home) == before


def test_a_foreign_state_file_does_not_make_a_run(scenario: Path, tmp_path: Path):
    """A state.json the harness did not write (another tool's) next to other files: refused."""
    target = tmp_path / "other-tool"
    target.mkdir()
    (target / STATE_FILE).write_text(json.dumps({"version": 3, "items": []}))
    (target / "data.db").write_bytes(b"\x00" * 64)
    before = snapshot(target)

    result = harness("run", str(scenario), "--run-dir", str(target), cwd=tmp_path)

    assert_refused(result, str(target))
    assert snapshot(target) == before  # not even a lock file written into it


# ------------------------------------------------------------ RunDir itself, with real directories


def test_a_directory_the_harness_made_is_replaced(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.reset()
    assert (run.path / MARKER_FILE).is_file()
    run.save_state(RunState(scenario="s", backend="local", plan_digest="d", status="stopped"))
    (run.logs_dir / "worker-0.log").write_text("old log\n")

    run.reset()

    assert not (run.logs_dir / "worker-0.log").exists() and not run.state_file.exists()
    assert (run.path / MARKER_FILE).is_file() and run.workers_dir.is_dir()


def test_a_run_from_before_the_marker_is_recognised_by_its_state_and_layout(tmp_path: Path):
    run = RunDir(tmp_path / "legacy")
    for d in (run.workers_dir, run.logs_dir, run.path / "data" / "node-0"):
        d.mkdir(parents=True)
    run.save_state(RunState(scenario="s", backend="local", plan_digest="d", status="stopped"))
    (run.path / "plan.json").write_text("{}")

    run.reset()

    assert not run.state_file.exists() and (run.path / MARKER_FILE).is_file()


def test_a_valid_state_file_among_foreign_files_is_not_a_run(tmp_path: Path):
    run = RunDir(tmp_path / "mixed")
    run.path.mkdir()
    run.save_state(RunState(scenario="s", backend="local", plan_digest="d", status="stopped"))
    (run.path / "notes.txt").write_text("mine\n")
    before = snapshot(run.path)

    with pytest.raises(RunDirError, match="not a harness run"):
        run.reset()
    assert snapshot(run.path) == before


def test_an_empty_or_missing_directory_is_used(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    for name in ("empty", "missing"):
        run = RunDir(tmp_path / name)
        run.reset()
        assert (run.path / MARKER_FILE).is_file()


def test_a_file_or_a_symlink_is_refused(tmp_path: Path):
    (tmp_path / "file").write_text("mine\n")
    real = RunDir(tmp_path / "real")
    real.reset()
    (tmp_path / "link").symlink_to(real.path)

    with pytest.raises(RunDirError, match="not a directory"):
        RunDir(tmp_path / "file").reset()
    with pytest.raises(RunDirError, match="symbolic link"):
        RunDir(tmp_path / "link").reset()
    assert (tmp_path / "file").read_text() == "mine\n" and (real.path / MARKER_FILE).is_file()
