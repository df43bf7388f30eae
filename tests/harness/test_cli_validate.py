"""`harness validate` and friends through Typer's CliRunner: exit codes and the one error message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.plan.planner import plan
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
BROKEN = sorted((ROOT / "tests" / "harness" / "broken").glob("*.yaml"))
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
PYDANTIC_WORDING = ("Input should", "validation error", "errors.pydantic.dev", "Value error,", "Extra inputs")

runner = CliRunner()


def expectation(path: Path) -> tuple[int, str]:
    """The broken file's own statement of its error: the `# <- error` line and the `# expect:` text."""
    lines = path.read_text().splitlines()
    line = next(number for number, text in enumerate(lines, 1) if "# <- error" in text)
    expected = next(text.split("# expect:", 1)[1].strip() for text in lines if text.startswith("# expect:"))
    return line, expected


def test_the_broken_corpus_covers_at_least_twelve_mistakes():
    assert len(BROKEN) >= 12


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_a_broken_scenario_gets_one_located_error_and_exit_2(path: Path):
    line, expected = expectation(path)
    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""  # nothing "ok", nothing started
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message  # exactly one message, on one line
    assert message.startswith(f"error: {path}:{line}:"), message
    assert re.match(rf"error: {re.escape(str(path))}:{line}:\d+: ", message), message
    assert expected in message
    assert not any(words in message for words in PYDANTIC_WORDING), message


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_validates(path: Path):
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    name = load_scenario(path).name
    assert re.fullmatch(rf"ok: {name}, \d+ nodes?( \(.*\))?, \d+ faults?, \d+ checks?\n", result.stdout)


def test_validate_summarises_quickstart():
    result = runner.invoke(app, ["validate", str(ROOT / "scenarios" / "quickstart.yaml")])
    assert result.stdout == "ok: quickstart, 12 nodes, 1 fault, 2 checks\n"


def test_a_missing_file_is_invalid_input_without_traceback(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {missing}: cannot read the scenario: no such file"


def test_plan_json_is_the_plan_and_repeats_byte_for_byte():
    path = str(ROOT / "scenarios" / "quickstart.yaml")
    first = runner.invoke(app, ["plan", path, "--json", "--seed", "5"])
    second = runner.invoke(app, ["plan", path, "--json", "--seed", "5"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == second.stdout
    assert first.stdout == plan(load_scenario(path), seed=5).to_json()
    assert json.loads(first.stdout)["seed"] == 5


def test_plan_table_names_roles_groups_and_timeline():
    result = runner.invoke(app, ["plan", str(ROOT / "scenarios" / "spam-ban.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("honest", "banning", "modern", "spam-modern", "restart_node", "spam_banned", "127.100.0.1"):
        assert text in result.stdout


def test_plan_of_a_broken_file_fails_like_validate():
    result = runner.invoke(app, ["plan", str(ROOT / "tests" / "harness" / "broken" / "bad-magic.yaml")])
    assert result.exit_code == 2 and "network.magic" in result.stderr


def test_an_unknown_backend_is_refused_naming_the_choices():
    result = runner.invoke(app, ["deploy", str(ROOT / "scenarios" / "quickstart.yaml"), "--backend", "nomad"])
    assert result.exit_code == 2
    assert "'nomad' is not one of" in result.stderr and all(f"'{b}'" in result.stderr for b in ("local", "docker", "k8s"))


def test_the_backend_can_come_from_the_environment():
    result = runner.invoke(app, ["run", str(ROOT / "scenarios" / "quickstart.yaml")], env={"HARNESS_BACKEND": "nomad"})
    assert result.exit_code == 2 and "'nomad' is not one of" in result.stderr


def test_run_validates_the_scenario_before_anything_else():
    result = runner.invoke(app, ["run", str(ROOT / "tests" / "harness" / "broken" / "unknown-action.yaml")])
    assert result.exit_code == 2 and "unknown action 'kill_node'" in result.stderr
