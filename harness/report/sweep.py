"""The comparison a sweep writes: each check's value per cell (one combination of `--set` values)
over the seeds, as median and spread (min..max), in `sweep.md`, `sweep.csv` and `sweep.png`.

Pure aggregation plus file writing; the runs themselves are made by harness.run.sweep.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

SWEEP_MD, SWEEP_CSV, SWEEP_PNG, RUNS_CSV = "sweep.md", "sweep.csv", "sweep.png", "runs.csv"


@dataclass(frozen=True)
class SweepRun:
    """One run of the grid: the cell's values (by `--set` path), the seed, and each check's
    (value, verdict) from that run's report.json."""

    cell: tuple[tuple[str, Any], ...]
    seed: int
    exit_code: int
    checks: Mapping[str, tuple[Any, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CellStats:
    cell: tuple[tuple[str, Any], ...]
    check: str
    runs: int  # runs of the cell that reported the check
    numeric: int  # of those, runs whose value is a number (booleans count as 0/1)
    median: float
    low: float
    high: float
    passed: int


def numeric(value: Any) -> float:
    """A check's value as a number: booleans 0/1, numbers as they are, anything else NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def cell_label(cell: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{path}={value}" for path, value in cell)


def aggregate(runs: Sequence[SweepRun]) -> list[CellStats]:
    """Per cell (in grid order) and check (in first-seen order): median and min..max over seeds."""
    cells: list[tuple[tuple[str, Any], ...]] = []
    checks: list[str] = []
    for r in runs:
        if r.cell not in cells:
            cells.append(r.cell)
        checks += [c for c in r.checks if c not in checks]
    out = []
    for cell in cells:
        for check in checks:
            found = [r.checks[check] for r in runs if r.cell == cell and check in r.checks]
            if not found:
                continue
            values = [v for v in (numeric(value) for value, _ in found) if not math.isnan(v)]
            out.append(CellStats(
                cell=cell, check=check, runs=len(found), numeric=len(values),
                median=statistics.median(values) if values else math.nan,
                low=min(values) if values else math.nan, high=max(values) if values else math.nan,
                passed=sum(1 for _, verdict in found if verdict == "pass")))
    return out


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.4g}"


def write_sweep(out_dir: Path, scenario: str, paths: Sequence[str], runs: Sequence[SweepRun]) -> list[Path]:
    """sweep.csv (one row per cell and check), runs.csv (one row per run and check), sweep.md and
    sweep.png; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = aggregate(runs)
    table = out_dir / SWEEP_CSV
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*paths, "check", "runs", "median", "min", "max", "passed"])
        for s in stats:
            w.writerow([*(v for _, v in s.cell), s.check, s.runs, _fmt(s.median), _fmt(s.low), _fmt(s.high), s.passed])
    raw = out_dir / RUNS_CSV
    with raw.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*paths, "seed", "exit_code", "check", "value", "verdict"])
        for r in runs:
            for check, (value, verdict) in r.checks.items():
                w.writerow([*(v for _, v in r.cell), r.seed, r.exit_code, check, value, verdict])
    md = out_dir / SWEEP_MD
    seeds = sorted({r.seed for r in runs})
    lines = [f"# Sweep of {scenario}", "",
             f"{len(runs)} runs: {len({r.cell for r in runs})} cells x seeds {', '.join(map(str, seeds))}. "
             "Each value is the check's median over the seeds, with its range (min..max); "
             "`passed` counts the runs whose check passed.", "",
             "| " + " | ".join([*paths, "check", "median", "min..max", "passed"]) + " |",
             "|" + "---|" * (len(paths) + 4)]
    for s in stats:
        lines.append("| " + " | ".join([*(str(v) for _, v in s.cell), s.check, _fmt(s.median),
                                        f"{_fmt(s.low)}..{_fmt(s.high)}", f"{s.passed}/{s.runs}"]) + " |")
    md.write_text("\n".join(lines) + "\n")
    return [md, table, raw, plot_sweep(out_dir / SWEEP_PNG, stats)]


def plot_sweep(path: Path, stats: Sequence[CellStats]) -> Path:
    """One panel per check: the median per cell as a point, the min..max spread as a bar."""
    checks = list(dict.fromkeys(s.check for s in stats)) or ["no checks"]
    fig = Figure(figsize=(7.0, 2.2 * len(checks) + 0.8))
    for i, check in enumerate(checks):
        ax = fig.add_subplot(len(checks), 1, i + 1)
        rows = [s for s in stats if s.check == check]
        xs = range(len(rows))
        med = [s.median for s in rows]
        err = [[max(0.0, s.median - s.low) if not math.isnan(s.median) else 0.0 for s in rows],
               [max(0.0, s.high - s.median) if not math.isnan(s.median) else 0.0 for s in rows]]
        ax.errorbar(list(xs), med, yerr=err, fmt="o", capsize=4)
        ax.set_xticks(list(xs), [cell_label(s.cell) for s in rows], fontsize=7)
        ax.set_title(check, fontsize=9)
        ax.set_xlim(-0.5, max(len(rows) - 0.5, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
