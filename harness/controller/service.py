"""The controller: waits for the network, runs the timeline, polls the nodes, evaluates the checks,
and serves its own Prometheus metrics and GET /results on 127.0.0.1.

Runs in-process for `harness run`, or placed by the backend for `harness deploy` (locally a
detached `python -m harness.run.detached --run-dir DIR`), so that dashboards keep filling with no
CLI alive.
Either way it writes results.json in the run directory, which `harness report` reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from harness.backends.base import Backend, RunStore
from harness.backends.registry import make_backend
from harness.analysis.checks import evaluate
from harness.controller import timeline
from harness.backends.client import ControlClient
from harness.analysis.model import Observations
from harness.controller.collector import Collector
from harness.analysis.model import CheckResult
from harness.controller.metrics import Metrics
from harness_node.net.looplag import watch_loop_lag  # the probe the node's workers use, for comparable figures

COLLECT_INTERVAL_SECONDS = 2.0  # resolution of the eclipse time series and of ban times
# Item queries per poll (items x honest nodes): during the run only the newest items that fit are
# measured (at 1,000 nodes the latest 5), so the live figures follow the latest probes at any size;
# every item is measured once at the end.
ITEM_QUERIES_PER_POLL = 5_000
# The spy's precision and recall are re-scored this often during the run (Collector.live_privacy),
# over the transactions injected at least SPY_SETTLE_SECONDS before (younger ones may not have
# reached the spy: a stem waits for its embargo, ~6 s + Exp(2 s) wall in scenarios/spy.yaml).
SPY_SCORE_INTERVAL_SECONDS = 10.0
SPY_SETTLE_SECONDS = 10.0
LOCALHOST = "127.0.0.1"


@dataclass
class Results:
    phase: str
    started_at: float | None = None
    observations: Observations | None = None
    checks: list[CheckResult] = field(default_factory=list)
    events: list[timeline.EventRecord] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "started_at": self.started_at, "error": self.error,
            "observations": self.observations.to_dict() if self.observations else None,
            "checks": [dataclasses.asdict(c) | {"verdict": c.verdict.value} for c in self.checks],
            "events": [dataclasses.asdict(e) for e in self.events],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Results":
        return cls(
            phase=d["phase"], started_at=d.get("started_at"), error=d.get("error"),
            observations=Observations.from_dict(d["observations"]) if d.get("observations") else None,
            checks=[CheckResult(**c) for c in d.get("checks", [])],
            events=[timeline.EventRecord(**e) for e in d.get("events", [])],
        )


class Controller:
    def __init__(self, run: RunStore, backend: Backend | None = None) -> None:
        self.run = run
        self.state = run.load_state()
        self.backend = backend or make_backend(self.state.backend, run)
        self.plan = self.backend.plan
        self.metrics = Metrics(self.plan)
        self.results = Results(phase="waiting")
        self.records: list[timeline.EventRecord] = []  # the running timeline's, for the fault gauges

    def _publish(self, **changes: Any) -> None:
        self.results = dataclasses.replace(self.results, **changes)
        self.metrics.set_phase(self.results.phase)
        if "observations" in changes and self.results.observations is not None:
            self.metrics.observe(self.results.observations)
        if "checks" in changes:
            self.metrics.checks_done(self.results.checks)
        self.metrics.publish_faults(self.records, len(self._stopped()))
        self.run.write_json(self.run.results_file, self.results.to_dict())

    async def _serve(self, port: int, host: str = LOCALHOST) -> web.AppRunner:
        app = web.Application()

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def results(request: web.Request) -> web.Response:
            return web.json_response(self.results.to_dict(), dumps=lambda d: json.dumps(d, default=str))

        app.add_routes([web.get("/metrics", metrics), web.get("/results", results)])
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with self.run.locked():
            state = self.run.load_state()
            # on every interface (in a pod): the backend recorded how to reach it (its Service)
            state.controller_url = state.controller_url if host in ("0.0.0.0", "::") else f"http://{host}:{bound}"
            self.run.save_state(state)
        await asyncio.to_thread(self.backend.update_monitor)  # a monitored run scrapes the controller too
        return runner

    def _stopped(self) -> list[str]:
        return self.run.load_state().stopped_nodes

    async def _poll_forever(self, collector: Collector) -> None:
        scored_at = time.monotonic()
        while True:
            await collector.poll(self._stopped(), peer_lists=False)  # the final observation has them
            items = self.run.read_journal("item")
            self.metrics.injected(items)
            if time.monotonic() - scored_at >= SPY_SCORE_INTERVAL_SECONDS:
                scored_at = time.monotonic()
                await collector.live_privacy(items, time.time() - SPY_SETTLE_SECONDS, self._stopped())
            window = max(1, ITEM_QUERIES_PER_POLL // max(1, len(self.plan.names("honest"))))
            obs = await collector.observe(items[-window:], self._stopped(), poll=False)
            self._publish(observations=obs)
            await asyncio.sleep(COLLECT_INTERVAL_SECONDS)  # the sampling period, not a wait for a condition

    async def run_scenario(self, *, serve: bool = True, port: int = 0, linger: bool = False,
                           host: str = LOCALHOST) -> Results:
        """Wait for readiness, run the timeline until the plan's duration, collect, check.
        ``linger``: keep serving metrics and results afterwards until cancelled (detached mode)."""
        runner = await self._serve(port, host) if serve else None
        lag = asyncio.create_task(watch_loop_lag(self.metrics.loop_lag.observe))
        try:
            # two clients, two pools of connections: at 10,000 nodes the collector's polls fill its
            # 64 request slots, and a timeline action queued behind them started tens of seconds late
            async with ControlClient(self.state.control_token) as client, \
                    ControlClient(self.state.control_token) as actions:
                client.place(self.backend.host_groups())
                try:
                    await asyncio.to_thread(self.backend.wait_ready)
                except Exception as e:
                    self._publish(phase="error", error=str(e))
                    raise
                start_wall, start = time.time(), time.monotonic()
                self._publish(phase="timeline", started_at=start_wall)
                collector = Collector(self.plan, client, self.backend.node_endpoints(), start_wall)
                ctx = timeline.TimelineContext(self.plan, self.backend, actions, self.run, self.backend.node_endpoints(),
                                               self.backend.seeder_endpoint(), on_record=self.metrics.action)
                self.records = ctx.records
                poller = asyncio.create_task(self._poll_forever(collector))
                try:
                    await timeline.execute(ctx, self.plan.timeline, start)
                    remaining = start + self.plan.duration - time.monotonic()
                    if remaining > 0:
                        await asyncio.sleep(remaining)  # the scenario's own length
                finally:
                    poller.cancel()
                self._publish(phase="finishing", events=list(ctx.records))
                items = self.run.read_journal("item")
                self.metrics.injected(items)
                obs = await collector.observe(items, self._stopped())
                self._publish(phase="done", observations=obs, checks=evaluate(self.plan.checks, obs, self.plan))
                if linger:
                    await asyncio.Event().wait()  # until cancelled by SIGTERM (harness down)
            return self.results
        finally:
            lag.cancel()
            if runner is not None:
                await runner.cleanup()
