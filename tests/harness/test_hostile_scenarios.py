"""Hostile scenario files (issue 9, item 4) through the real CLI, as a careless or hostile user runs it.

Every file in tests/harness/hostile/ states its expected error on its first line (`# expect: ...`).
Each must end with exactly one located error line on stderr and exit 2, with no traceback, and
`harness run` / `harness deploy` must start nothing (no run directory appears). The 10 MB file is
generated here, not committed.

The wall time of each `harness validate` is measured and held to the issue's bound (2 s) times a
margin for a loaded, shared CI machine: the bound catches the holes (an alias bomb or a
billion-node plan takes tens of seconds and gigabytes); speed itself is measured in bench/.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE = sorted((Path(__file__).parent / "hostile").glob("*.yaml"))
HARNESS = Path(sys.executable).with_name("harness")  # the installed console script: the real CLI
ISSUE_BOUND_S = 2.0  # issue 9: "within 2 s", held as CPU seconds of the `harness validate` process:
# what a hostile file can make the loader burn (an alias bomb, a deep nest) shows there, while the wall
# clock of a loaded 2-core machine also counts other processes' turns (6-7 s seen at load 100)
KILL_AFTER_S = 60  # an unguarded alias bomb would run for minutes and eat gigabytes: stop it


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <text of its error>'"
    return first.removeprefix("# expect: ").strip()


def harness(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI's result and the CPU seconds (user + system) its process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = subprocess.run([str(HARNESS), *args], capture_output=True, text=True, cwd=cwd,
                                timeout=KILL_AFTER_S, errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"`harness {' '.join(args)}` still running after {KILL_AFTER_S} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def assert_one_located_error(result: subprocess.CompletedProcess[str], path: Path, expect: str) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: {path}:"), lines[0]  # located: the file (and line where it applies)
    assert expect in lines[0], lines[0]


@pytest.fixture(scope="module")
def ten_megabytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 MB scenario: valid YAML all the way, so only a size cap stops it early."""
    path = tmp_path_factory.mktemp("big") / "ten-megabytes.yaml"
    with path.open("w") as f:
        f.write("# expect: larger than\nname: big\nduration: 30s\nnetwork: {nodes: 3}\ndescription: >\n")
        line = "  " + "x" * 98 + "\n"
        f.write(line * (10 * 1024 * 1024 // len(line)))
    return path


@pytest.fixture(scope="module")
def dense_megabyte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Just under the size cap and as dense as YAML gets (`1,` per value): the value budget must stop it."""
    path = tmp_path_factory.mktemp("dense") / "dense-megabyte.yaml"
    head = "# expect: more than 20000 values\nname: dense\nduration: 30s\nnetwork: {nodes: 3}\ndescription: ["
    path.write_text(head + "1," * ((1024 * 1024 - len(head) - 4) // 2) + "1]\n")
    assert 1024 * 1024 - 8 < path.stat().st_size <= 1024 * 1024
    return path


def test_the_hostile_corpus_covers_the_issue():
    names = {p.stem for p in HOSTILE}
    for needed in ("alias-bomb", "recursive-alias", "deep-flow", "deep-block", "control-character",
                   "invalid-utf8", "huge-node-count", "huge-attacker-count", "huge-tx-rate", "huge-duration",
                   "long-timeline"):
        assert needed in names
    assert (Path(__file__).parent / "hostile" / "alias-bomb.yaml").stat().st_size <= 320  # "a 300-byte alias bomb"


@pytest.mark.parametrize("name", [p.name for p in HOSTILE] + ["ten-megabytes.yaml", "dense-megabyte.yaml"])
def test_validate_ends_with_one_located_error_within_the_bound(name: str, ten_megabytes: Path, dense_megabyte: Path,
                                                               tmp_path: Path):
    generated = {"ten-megabytes.yaml": ten_megabytes, "dense-megabyte.yaml": dense_megabyte}
    path = generated.get(name, Path(__file__).parent / "hostile" / name)
    result, seconds = harness("validate", str(path), cwd=tmp_path)
    assert_one_located_error(result, path, expected(path))
    print(f"{name}: harness validate used {seconds:.2f} CPU s")
    assert seconds < ISSUE_BOUND_S, f"{name}: {seconds:.2f} CPU s"


@pytest.mark.parametrize("command", ["run", "deploy"])
@pytest.mark.parametrize("name", ["alias-bomb.yaml", "deep-flow.yaml", "control-character.yaml",
                                  "huge-node-count.yaml", "huge-attacker-count.yaml", "tiny-block-interval.yaml"])
def test_run_and_deploy_start_nothing(command: str, name: str, tmp_path: Path):
    path = Path(__file__).parent / "hostile" / name
    run_dir = tmp_path / "run"
    result, _ = harness(command, str(path), "--run-dir", str(run_dir), cwd=tmp_path)
    assert_one_located_error(result, path, expected(path))
    assert not run_dir.exists()  # no state, no workers, no logs: nothing was started
    assert not (tmp_path / "runs").exists()


# Not here: the alias bomb (stopped while aliases are expanded, after composing) and deep-flow.yaml
# (libyaml's scanner refuses 1,000 open brackets before the parser reaches level 64: left to PyYAML).
@pytest.mark.parametrize("name", ["recursive-alias.yaml", "deep-block.yaml", "deep-flow-mapping.yaml",
                                  "dense-megabyte.yaml"])
def test_libyaml_prescan_stops_a_file_where_the_composer_would(name: str, dense_megabyte: Path):
    """The budget is first checked on libyaml's events (C, ~25 ms for a dense megabyte, where PyYAML's
    scanner takes ~1 s): it must stop each file itself, with the composer's message and position."""
    from harness.errors import ScenarioError
    from harness.scenario.loader import _BoundedLoader, _prescan

    path = dense_megabyte if name == "dense-megabyte.yaml" else Path(__file__).parent / "hostile" / name
    text = path.read_text()
    with pytest.raises(ScenarioError) as by_libyaml:
        _prescan(text, str(path))
    loader = _BoundedLoader(text, str(path))
    with pytest.raises(ScenarioError) as by_pyyaml:
        loader.get_single_node()
    loader.dispose()
    assert expected(path) in str(by_libyaml.value)
    assert (str(by_libyaml.value), by_libyaml.value.line, by_libyaml.value.column) == \
        (str(by_pyyaml.value), by_pyyaml.value.line, by_pyyaml.value.column)
