"""`python -m harness.run.detached --run-dir DIR`: the controller of a deployed run, as a backend
places it (`Backend.start_controller`): it lives until `harness down`.

Locally it serves on 127.0.0.1 and takes the token from state.json. In a pod (the chart's
controller Deployment) it serves on every interface (`--host 0.0.0.0`, for the Service and
Prometheus) and reads the nodes' token from the Secret's file (`--token-file`): the state.json
shipped in a ConfigMap has none."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from harness.errors import HarnessError
from harness.run.rundir import RunDir, RunDirError

LOCALHOST = "127.0.0.1"

MODULE = "harness.run.detached"  # not __name__: under `python -m` that is "__main__"


def argv(run: RunDir, port: int = 0) -> list[str]:
    """This module's command line after the interpreter: what `start_controller` is handed."""
    return ["-m", MODULE, "--run-dir", str(run.path), *(["--port", str(port)] if port else [])]


def adopt_token(run: RunDir, token_file: str) -> None:
    """Put the token of ``token_file`` into the run's state (saved mode 0600, like every state)."""
    from harness_node.tokenfile import read_token_file  # the node's reader: one rule for Secret files

    try:
        token = read_token_file(token_file)
    except ValueError as e:
        raise RunDirError(str(e)) from None
    with run.locked():
        state = run.load_state()
        state.control_token = token
        run.save_state(state)


async def _main(run: RunDir, port: int, host: str) -> None:
    from harness.controller.service import Controller  # aiohttp and the controller: only when running

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    try:
        await Controller(run).run_scenario(serve=True, port=port, linger=True, host=host)
    except asyncio.CancelledError:
        # `harness down`: a normal end. The server and clients are closed by now; leave at once
        # rather than through asyncio.run, which waits for executor threads, and the backend's
        # wait_ready (a thread until the nodes answer) would hold `down` for its whole grace
        # period, then be killed (bench/bench_docker.py measured 10 s of a 12 s down).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main(args_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--port", type=int, default=0, help="metrics and /results port (0: any free)")
    parser.add_argument("--host", default=LOCALHOST, help="address to serve on (0.0.0.0 in a pod)")
    parser.add_argument("--token-file", help="the nodes' control token, e.g. a mounted Secret (instead of state.json's)")
    args = parser.parse_args(args_)
    try:
        run = RunDir(args.run_dir)
        if args.token_file:
            adopt_token(run, args.token_file)
        asyncio.run(_main(run, args.port, args.host))
    except HarnessError as e:
        print(f"controller: {e}", file=sys.stderr)  # the process's own entry point: its log is stderr
        return int(e.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
