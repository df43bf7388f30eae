"""CPU seconds of one `harness validate` process, as a user (or CI) runs it.

    python bench/bench_validate.py [--runs 5] [--harness PATH]

Files: the quickstart, mainnet-scale.yaml (10,000 nodes planned), and a dense megabyte (`1,` per value
up to the size cap: the costliest file the value budget must stop). Each is validated `--runs` times
in a fresh process; the number is user + system CPU of that process (import, read, parse, plan),
which a loaded machine does not inflate the way it does wall time. Prints min and median per file.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_BYTES = 1024 * 1024


def dense_megabyte(directory: Path) -> Path:
    path = directory / "dense-megabyte.yaml"
    head = "name: dense\nduration: 30s\nnetwork: {nodes: 3}\ndescription: ["
    path.write_text(head + "1," * ((MAX_FILE_BYTES - len(head) - 4) // 2) + "1]\n")
    return path


def cpu_seconds(harness: str, path: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([harness, "validate", str(path)], capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--harness", default=str(Path(sys.executable).with_name("harness")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [ROOT / "scenarios" / "quickstart.yaml", ROOT / "scenarios" / "mainnet-scale.yaml",
                 dense_megabyte(Path(tmp))]
        for path in files:
            runs = [cpu_seconds(args.harness, path) for _ in range(args.runs)]
            print(f"{path.name:24} CPU s: min {min(runs):.2f}  median {statistics.median(runs):.2f}  "
                  f"({args.runs} runs)")


if __name__ == "__main__":
    main()
