"""tests/real.py: a missing real component skips locally and fails in CI (issue 9, item 9).

Each case runs pytest in a subprocess on a one-test file, so the verdict checked is pytest's own
(skipped / failed), with the environment variable set or unset for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real import ENV_REQUIRE, require, required

ROOT = Path(__file__).resolve().parents[1]
NO_SUCH = "harness-no-such-component-7f3a"  # certainly not on any PATH
PROBE = f'''
from tests.real import missing, require

def test_needs_a_missing_executable():
    require("{NO_SUCH}")

def test_needs_a_component_found_missing():
    missing("docker", "no Docker engine answers (probe)")
'''


def run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", ENV_REQUIRE)}
    return subprocess.run([sys.executable, "-m", "pytest", "-rfs", "-p", "no:cacheprovider", "-q", str(probe)],
                          capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=120)


def test_locally_a_missing_component_skips_with_how_to_install(tmp_path: Path):
    result = run_probe(tmp_path)
    assert re.fullmatch(r"2 skipped in [\d.]+s", result.stdout.strip().splitlines()[-1]), result.stdout
    assert f"{NO_SUCH} is missing: no `{NO_SUCH}` on PATH" in result.stdout
    assert "docker is missing: no Docker engine answers (probe); to install: install and start a Docker engine" \
        in result.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {ENV_REQUIRE: "1"}], ids=["CI=true", f"{ENV_REQUIRE}=1"])
def test_in_ci_a_missing_component_fails(tmp_path: Path, env: dict[str, str]):
    result = run_probe(tmp_path, **env)
    assert result.returncode == 1, result.stdout
    assert re.fullmatch(r"2 failed in [\d.]+s", result.stdout.strip().splitlines()[-1]), result.stdout  # none skipped
    assert f"{NO_SUCH} is missing" in result.stdout and "real components must be present" in result.stdout


def test_a_present_component_is_returned(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV_REQUIRE, "1")
    assert required()
    assert Path(require("python3")).is_file()  # on PATH wherever these tests run


def test_other_ci_values_do_not_require(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_REQUIRE, raising=False)
    for value, expect in (("false", False), ("", False), ("true", True), ("1", True)):
        monkeypatch.setenv("CI", value)
        assert required() is expect
