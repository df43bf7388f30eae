"""`harness sweep`: the grid is validated before anything runs (bad path or value: exit 2, one line),
and a real sweep on the local backend writes the table, the CSVs and the plot with one cell per
combination of values and one run per seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.report.sweep import SweepRun, aggregate
from harness.run.sweep import parse_setting

cli = CliRunner()

TINY = """\
name: tiny-sweep
seed: 5
duration: 6s
network:
  nodes: 4
  time_scale: 0.05
seeder:
  mode: honest
workload:
  tx_rate: 2
  start: 3s
  stop: 4s
expect:
  - check: tx_propagation
    quantile: 90
    below: 3s
  - check: no_honest_banned
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_a_setting_is_a_dotted_path_and_yaml_values():
    s = parse_setting("network.groups.0.count=1, 2,true")
    assert s.path == ("network", "groups", 0, "count") and s.values == (1, 2, True)


def test_median_and_spread_per_cell_and_check():
    a, b = (("p", "x"),), (("p", "y"),)
    runs = [SweepRun(a, 1, 0, {"c": (1.0, "pass")}), SweepRun(a, 2, 0, {"c": (3.0, "fail")}),
            SweepRun(a, 3, 0, {"c": (2.0, "pass")}), SweepRun(b, 1, 0, {"c": (True, "pass")})]
    stats = {s.cell: s for s in aggregate(runs)}
    assert (stats[a].median, stats[a].low, stats[a].high, stats[a].passed, stats[a].runs) == (2.0, 1.0, 3.0, 2, 3)
    assert stats[b].median == 1.0  # a boolean value counts as 0/1


@pytest.mark.parametrize("setting, message", [
    ("network.relay_policy=flood,trickle",
     "network.relay_policy: must be one of: flood, diffusion, dandelion (got 'trickle') (with --set network.relay_policy=trickle)"),
    ("network.relay_polcy=flood", "network.relay_polcy: unknown key; did you mean 'relay_policy'?"),
    ("network.nodes.x=1", "--set network.nodes.x: cannot set 'x' under network.nodes"),
    ("network", "--set 'network': write PATH=V1,V2,..."),
    ("network.countermeasures=legacy,ancient", "network.countermeasures.profile: must be one of: current, legacy (got 'ancient')"),
])
def test_a_bad_path_or_value_is_one_line_and_exit_2_before_anything_runs(tiny, tmp_path, setting, message):
    out = tmp_path / "out"
    result = cli.invoke(app, ["sweep", str(tiny), "--set", setting, "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()  # nothing ran


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sweep_over_two_values_and_three_seeds_writes_the_table_and_plot(tiny, tmp_path):
    out = tmp_path / "out"
    result = cli.invoke(app, ["sweep", str(tiny), "--set", "network.relay_policy=flood,diffusion",
                              "--seeds", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["cells"] == 2 and info["seeds"] == [5, 6, 7]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert sorted((r["network.relay_policy"], r["check"]) for r in rows) == [
        ("diffusion", "no_honest_banned"), ("diffusion", "tx_propagation"),
        ("flood", "no_honest_banned"), ("flood", "tx_propagation")]
    for r in rows:
        assert r["runs"] == "3"
        assert float(r["min"]) <= float(r["median"]) <= float(r["max"])
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert len(runs) == 2 * 3 * 2  # cells x seeds x checks
    assert {r["seed"] for r in runs} == {"5", "6", "7"}
    # each run is a real run with its own report, from the cell's own scenario file
    for cell in ("00", "01"):
        assert (out / "cells" / cell / "scenario.yaml").exists()
        for seed in (5, 6, 7):
            report = json.loads((out / "cells" / cell / f"seed-{seed}" / "report" / "report.json").read_text())
            assert report["seed"] == seed
    md = (out / "sweep.md").read_text()
    assert "| flood | tx_propagation |" in md and "| diffusion | no_honest_banned |" in md
    png = (out / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
