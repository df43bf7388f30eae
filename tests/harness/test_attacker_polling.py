"""How the collector learns which attacker identities share a process (Collector._attacker_statuses),
against real attacker runtimes and their real control sites on loopback: the plan puts four spy
identities in one entry (locally one process), but here two runtimes serve two each (as when the
identities are spread over processes or containers). The first poll guesses one process per entry,
finds the guess covered only half, asks the rest, and from then on asks each process once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from harness.backends.endpoint import Endpoint
from harness.controller.collector import Collector
from tests.harness.counting_client import CountingClient
from harness.plan.planner import plan
from harness.scenario import parse_scenario
from harness_node.attack.config import AttackConfig
from harness_node.attack.control import IDENTITIES
from harness_node.attack.kinds import load_kinds
from harness_node.attack.runtime import AttackRuntime
from tests.node.conftest import LoopThread, next_ip

load_kinds()

SCENARIO = """\
name: polling
duration: 30s
network: {nodes: 2}
attackers:
  - {kind: spy, name: spy, count: 4, targets: {role: honest}, params: {connections: 0, listen: false}}
"""


def _runtime(names: list[str]) -> AttackRuntime:
    # spies with no target and no listener: only their control sites matter here
    return AttackRuntime(AttackConfig.from_dict({"attackers": [
        {"name": n, "kind": "spy", "address": next_ip(), "port": 18444, "targets": [], "control_port": 0,
         "params": {"connections": 0, "listen": False}} for n in names]}))


def test_identities_spread_over_two_processes_are_learnt_and_asked_once_per_process() -> None:
    view = plan(parse_scenario(SCENARIO))
    names = view.names("attacker")
    assert len(names) == 4 and len({view.node(n).group for n in names}) == 1  # the plan: one entry
    lt = LoopThread()
    runtimes = [_runtime(names[:2]), _runtime(names[2:])]
    try:
        for r in runtimes:
            lt.run(r.start())
        endpoints = {a.name: Endpoint(a.name, ip, 18444, f"http://{ip}:{port}")
                     for r in runtimes for (ip, port), a in r.control.app[IDENTITIES].items()}  # type: ignore[union-attr]

        async def polls() -> list[tuple[Counter[str], dict[str, Any]]]:
            out = []
            async with CountingClient(None) as client:
                collector = Collector(view, client, endpoints, time.time())
                for _ in range(3):
                    client.paths.clear()
                    got = await collector._attacker_statuses(names)
                    out.append((Counter(client.paths), got))
            return out

        (first, got1), (second, got2), (third, _) = asyncio.run(polls())
        for got in (got1, got2):
            assert sorted(got) == sorted(names) and all(got[n]["name"] == n for n in names), got
        # first poll: the entry's guess (1 request, answered for 2), then the 2 missed ones on their own
        assert first == {"/identities": 3}, first
        # learnt: one request per runtime
        assert second == third == {"/identities": 2}, (second, third)
        assert not any("/status" in p for p in first + second)
    finally:
        for r in runtimes:
            lt.run(r.stop())
        lt.close()
