"""`python -m harness.controller --run-dir DIR`: the detached controller of a deployed run."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from harness.errors import HarnessError
from harness.run.rundir import RunDir


async def _main(run: RunDir, port: int) -> None:
    from harness.controller.service import Controller

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    try:
        await Controller(run).run_scenario(serve=True, port=port, linger=True)
    except asyncio.CancelledError:
        pass  # `harness down`: a normal end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.controller")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--port", type=int, default=0, help="metrics and /results port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(RunDir(args.run_dir), args.port))
    except HarnessError as e:
        print(f"controller: {e}", file=sys.stderr)
        return int(e.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
