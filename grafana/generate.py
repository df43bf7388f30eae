"""Write every generated observability file: grafana/dashboards/*.json, the provisioning files and
docs/metrics.md. `python -m grafana.generate` writes them; `--check` only compares (exit 1 and the
stale paths when they differ), which is what the test and CI run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana import docs, provisioning
from grafana.boards import BOARDS
from grafana.build import render

ROOT = Path(__file__).resolve().parent.parent


def outputs() -> dict[Path, str]:
    """Repository-relative path -> the content it must have."""
    files = {Path("grafana/dashboards") / f"{b.uid.removeprefix('harness-')}.json": render(b) for b in BOARDS}
    files[Path("grafana/provisioning/datasources/prometheus.yaml")] = provisioning.datasource()
    files[Path("grafana/provisioning/dashboards/harness.yaml")] = provisioning.dashboards()
    files[Path("docs/metrics.md")] = docs.render()
    return files


def stale(root: Path = ROOT) -> list[Path]:
    """Generated files whose committed content differs from a fresh generation (or that are missing)."""
    return [p for p, text in outputs().items() if not (root / p).is_file() or (root / p).read_text() != text]


def write(root: Path = ROOT) -> list[Path]:
    written = []
    for path, text in outputs().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale()
        for p in paths:
            print(f"stale: {p} (run `python -m grafana.generate`)")
        return 1 if paths else 0
    for p in write():
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
