"""`python -m harness.run.detached --run-dir DIR`: the controller of a deployed run, as the local
backend places it (`Backend.start_controller`): it lives until `harness down`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from harness.errors import HarnessError
from harness.run.rundir import RunDir

MODULE = "harness.run.detached"  # not __name__: under `python -m` that is "__main__"


def argv(run: RunDir, port: int = 0) -> list[str]:
    """This module's command line after the interpreter: what `start_controller` is handed."""
    return ["-m", MODULE, "--run-dir", str(run.path), *(["--port", str(port)] if port else [])]


async def _main(run: RunDir, port: int) -> None:
    from harness.controller.service import Controller  # aiohttp and the controller: only when running

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    try:
        await Controller(run).run_scenario(serve=True, port=port, linger=True)
    except asyncio.CancelledError:
        pass  # `harness down`: a normal end


def main(args_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--port", type=int, default=0, help="metrics and /results port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(args_)
    try:
        asyncio.run(_main(RunDir(args.run_dir), args.port))
    except HarnessError as e:
        print(f"controller: {e}", file=sys.stderr)  # the process's own entry point: its log is stderr
        return int(e.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
