"""The attacker process: builds every identity of its config from the kind registry, serves their
control sites, runs each identity's `run()` as a task, and lives until SIGTERM/SIGINT (a finished
attack stays queryable: the harness reads its status and metrics until `down`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..procutil import new_event_loop, raise_fd_limit, stop_on_signals, tune_gc
from .base import ATTACKS, Attacker
from .config import AttackConfig
from .control import ControlServer


class AttackRuntime:
    def __init__(self, config: AttackConfig) -> None:
        self.config = config
        self.token = config.control_token
        # Building every identity first refuses a bad kind or params before anything listens or dials.
        self.attackers: dict[str, Attacker] = {s.name: ATTACKS.build(s, config) for s in config.attackers}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.control: ControlServer | None = None

    async def start(self) -> None:
        """Control sites first (the harness waits for them), then every identity's attack."""
        try:
            for spec in self.config.attackers:
                if spec.control_port is not None:
                    self.control = self.control or ControlServer(self)
                    await self.control.add(self.attackers[spec.name], spec.control_host, spec.control_port)
            loop = asyncio.get_running_loop()
            for name, attacker in self.attackers.items():
                self.tasks[name] = loop.create_task(attacker.main(), name=f"attack-{name}")
        except BaseException:
            await self.stop()
            raise

    async def stop_attacker(self, name: str) -> None:
        task = self.tasks.get(name)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.attackers[name].close_all()

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_attacker(n) for n in self.attackers), return_exceptions=True)
        if self.control is not None:
            await self.control.stop()
            self.control = None

    async def wait_finished(self) -> None:
        """Until every identity's run() returned (tests; the process itself waits for a signal)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()))


async def serve(config: AttackConfig, ready: Callable[[AttackRuntime], None] | None = None) -> None:
    """Run the identities until SIGTERM/SIGINT, then close every link and control site."""
    async with stop_on_signals() as stop:
        runtime = AttackRuntime(config)
        await runtime.start()
        try:
            if ready is not None:
                ready(runtime)
            await stop.wait()
        finally:
            await runtime.stop()


def run_attackers(config: AttackConfig) -> None:
    """Blocking entry point of `harness-node attack`: run until a signal arrives."""
    raise_fd_limit()
    tune_gc()
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(config))
    finally:
        loop.close()
