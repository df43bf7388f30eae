"""`harness sweep`: one scenario over a grid of `--set PATH=V1,V2,...` values and N seeds, run one
after the other through the runner (harness.run.runner.run), compared in one table.

Every cell is validated by the scenario schema before the first run starts, so a bad path or value
is one error (exit 2) with nothing started. Each cell's scenario is written next to its
runs (`cells/<k>/scenario.yaml`): a cell is re-run alone with `harness run` on that file.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ExitCode, ScenarioError, SweepError
from harness.report.sweep import SweepRun, write_sweep
from harness.plan.planner import plan as make_plan
from harness.run import runner
from harness.run.progress import ProgressCallback
from harness.scenario.attackers import refuse_unrunnable
from harness.scenario.loader import load_scenario, read_yaml, validate_scenario

MAX_CELLS = 64  # grid cells: a sweep runs sequentially, 64 cells of a 3-minute scenario are already hours
MAX_SEEDS = 20


@dataclass(frozen=True)
class Setting:
    path: tuple[str | int, ...]
    text: str  # the PATH as written
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Sweep:
    file: Path
    name: str
    settings: tuple[Setting, ...]
    seeds: tuple[int, ...]
    cells: tuple[tuple[tuple[str, Any], ...], ...]  # (PATH text, value) per setting, grid order
    data: tuple[dict[str, Any], ...]  # each cell's scenario as plain data, validated


def parse_setting(text: str) -> Setting:
    """'network.countermeasures=legacy,current' -> Setting; each value is read as YAML (true, 3, 1m)."""
    path_text, eq, values_text = text.partition("=")
    if not eq or not path_text.strip() or not values_text.strip():
        raise SweepError(f"--set {text!r}: write PATH=V1,V2,... (a dotted path into the scenario, "
                            f"e.g. network.countermeasures=legacy,current)")
    path: list[str | int] = []
    for part in path_text.strip().split("."):
        if not part:
            raise SweepError(f"--set {text!r}: empty segment in the path {path_text!r}")
        path.append(int(part) if part.isdigit() else part)
    values = []
    for v in values_text.split(","):
        try:
            values.append(yaml.safe_load(v.strip()))
        except yaml.YAMLError:
            raise SweepError(f"--set {text!r}: value {v.strip()!r} is not a YAML scalar") from None
    return Setting(tuple(path), path_text.strip(), tuple(values))


def _put(data: dict[str, Any], setting: Setting, value: Any) -> None:
    """Set `value` at the setting's path, creating missing mappings (the schema judges the keys)."""
    node: Any = data
    for depth, part in enumerate(setting.path[:-1]):
        nxt = setting.path[depth + 1]
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and not isinstance(part, int):
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        else:
            raise SweepError(f"--set {setting.text}: no {part!r} under "
                                f"{'.'.join(map(str, setting.path[:depth])) or 'the scenario'}")
    last = setting.path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, dict) and not isinstance(last, int):
        node[last] = value
    else:
        raise SweepError(f"--set {setting.text}: cannot set {last!r} under "
                            f"{'.'.join(map(str, setting.path[:-1])) or 'the scenario'}")


def prepare(file: str | Path, sets: Sequence[str], seeds: int) -> Sweep:
    """Parse the settings, build and validate every cell; SweepError or ScenarioError (exit 2)
    before any run."""
    path = Path(file)
    scenario = load_scenario(path)  # the file itself, with located errors
    if not sets:
        raise SweepError("give at least one --set PATH=V1,V2,...")
    if not 1 <= seeds <= MAX_SEEDS:
        raise SweepError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    settings = tuple(parse_setting(s) for s in sets)
    if len({s.path for s in settings}) != len(settings):
        raise SweepError("each --set PATH may be given once")
    grid = list(itertools.product(*(s.values for s in settings)))
    if len(grid) > MAX_CELLS:
        raise SweepError(f"the grid has {len(grid)} cells; at most {MAX_CELLS}")
    base, _ = read_yaml(path.read_text(encoding="utf-8"), str(path))
    cells, datas = [], []
    for values in grid:
        data = copy.deepcopy(base)
        for setting, value in zip(settings, values):
            _put(data, setting, value)
        label = ", ".join(f"{s.text}={v}" for s, v in zip(settings, values))
        try:
            cell_scenario = validate_scenario(data)
            refuse_unrunnable(cell_scenario.attackers, file=str(path))
            make_plan(cell_scenario, scenario.seed)  # resolves every selector: the full validation
        except ScenarioError as e:
            raise ScenarioError(f"{e.problem} (with --set {label})", file=str(path), path=e.path) from None
        cells.append(tuple((s.text, v) for s, v in zip(settings, values)))
        datas.append(data)
    first = scenario.seed if scenario.seed is not None else 0
    return Sweep(path, scenario.name, settings, tuple(range(first, first + seeds)), tuple(cells), tuple(datas))


def run_sweep(sweep: Sweep, out_dir: str | Path, backend: str = "local",
              on_event: ProgressCallback | None = None) -> tuple[int, list[Path]]:
    """Every cell x seed through runner.run, one after the other; then the comparison files.
    Returns (exit code, files): 0 when every run completed (its checks may fail: that is what is
    compared), 1 when a run could not complete (no report.json), 130 when interrupted."""
    out = Path(out_dir)
    runs: list[SweepRun] = []
    code = ExitCode.OK
    for k, (cell, data) in enumerate(zip(sweep.cells, sweep.data)):
        cell_dir = out / "cells" / f"{k:02d}"
        cell_dir.mkdir(parents=True, exist_ok=True)
        scenario_file = cell_dir / "scenario.yaml"
        scenario_file.write_text(f"# {sweep.file} with " + ", ".join(f"{p}={v}" for p, v in cell) + "\n"
                                 + yaml.safe_dump(data, sort_keys=False))
        for seed in sweep.seeds:
            run_dir = cell_dir / f"seed-{seed}"
            exit_code = runner.run(scenario_file, backend, run_dir / "report", run_dir / "run", seed, on_event=on_event)
            if exit_code == ExitCode.INTERRUPTED:
                return ExitCode.INTERRUPTED, []
            checks = _checks(run_dir / "report" / "report.json")
            if checks is None:
                code = ExitCode.CHECKS_FAILED
                checks = {}
            runs.append(SweepRun(cell=cell, seed=seed, exit_code=exit_code, checks=checks))
    files = write_sweep(out, sweep.name, [s.text for s in sweep.settings], runs)
    return code, files


def _checks(report_json: Path) -> dict[str, tuple[Any, str]] | None:
    try:
        report = json.loads(report_json.read_text())
    except (OSError, ValueError):
        return None
    return {c["name"]: (c.get("value"), c.get("verdict", "")) for c in report.get("checks", [])}
