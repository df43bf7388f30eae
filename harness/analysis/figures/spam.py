"""Spam figures: per behaviour and target, the score and outcome the node's misbehaviour table
predicts (harness_node.attack.behaviours.expect, the node's own engine replayed) next to what the
node logged; time to react; and what the flood cost the victims. A bitcoind member's "log" is what
its supervisor saw through its RPC (harness_node/bitcoind/conduct.py): its runs stand beside our
nodes' under target kind `bitcoind`.

Inputs are what the controller collected: each spam identity's /status (its runs: behaviour,
target, when it started, what it sent, whether the victim closed the link) and each honest node's
misbehaviour log (GET /misbehaviour: address, points, action). Observed outcome, in order: the
last action the node logged against the attacker's address (ban, discourage, disconnect), else
"disconnected" if the attacker saw the victim close the link, else "none".
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.figures.bans import host_of
from harness.analysis.model import NodeLoad, SpamRun
from harness.plan.model import BITCOIND, Plan
from harness_node.attack.behaviours import BEHAVIOURS, expect

_ACTION_OUTCOME = {"ban": "banned", "discourage": "discouraged", "disconnect": "disconnected"}


def spam_runs(plan: Plan, attacker_status: Mapping[str, Mapping[str, Any]],
              misbehaviour: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[SpamRun]:
    """Every run of every spam identity that reported its runs, expected next to observed."""
    out = []
    for name, status in sorted(attacker_status.items()):
        node = plan.node(name)
        if node.config.get("kind") != "spam":
            continue
        for run in (status.get("detail") or {}).get("runs", []):
            target = run["target_name"]
            policy = str(plan.node(target).config.get("misbehaviour_policy", "ban"))
            params = next((b for b in node.config["attack"]["params"]["behaviours"] if b["behaviour"] == run["behaviour"]), {})
            want = expect(BEHAVIOURS[run["behaviour"]], policy, params.get("count"))
            log = [e for e in misbehaviour.get(target, []) if host_of(str(e.get("address", ""))) == node.address]
            acted = [e for e in log if e.get("action") in _ACTION_OUTCOME]
            if acted:
                outcome, reacted = _ACTION_OUTCOME[acted[-1]["action"]], float(acted[0]["time"])
            elif run.get("closed_by_victim_at") is not None:
                outcome, reacted = "disconnected", float(run["closed_by_victim_at"])
            else:
                outcome, reacted = "none", None
            out.append(SpamRun(
                attacker=name, behaviour=run["behaviour"], target=target, policy=policy,
                expected_score=want.score, expected_outcome=want.outcome,
                observed_score=sum(int(e.get("points", 0)) for e in log), observed_outcome=outcome,
                started_at=run.get("started_at"), reacted_at=reacted, messages_sent=int(run.get("sent", 0)),
                error=run.get("error"), target_kind="bitcoind" if plan.node(target).role == BITCOIND else "light",
            ))
    return out


@dataclass(frozen=True)
class BehaviourSummary:
    behaviour: str
    policy: str
    target_kind: str  # light (our node) or bitcoind
    runs: int
    as_expected: int
    expected_score: int
    observed_scores: list[int]
    expected_outcome: str
    observed_outcomes: list[str]
    max_seconds_to_react: float | None


def spam_by_behaviour(runs: Sequence[SpamRun]) -> list[BehaviourSummary]:
    """One line per (behaviour, policy, target kind): the table next to what the nodes did, a real
    bitcoind's line right after our nodes' for the same behaviour."""
    groups: dict[tuple[str, str, str], list[SpamRun]] = {}
    for r in runs:
        groups.setdefault((r.behaviour, r.policy, r.target_kind), []).append(r)
    out = []
    for (behaviour, policy, kind), rs in sorted(groups.items(), key=lambda kv: (list(BEHAVIOURS).index(kv[0][0]), *kv[0][1:])):
        times = [t for t in (r.seconds_to_react for r in rs) if t is not None]
        out.append(BehaviourSummary(behaviour, policy, kind, len(rs), sum(1 for r in rs if r.as_expected), rs[0].expected_score,
                                    sorted({r.observed_score for r in rs}), rs[0].expected_outcome,
                                    sorted({r.observed_outcome for r in rs}), round(max(times), 3) if times else None))
    return out


@dataclass(frozen=True)
class LoadOverhead:
    """Mean receive CPU and bytes of attacked honest nodes, of the others, and their ratios
    (None without a baseline: every honest node was attacked)."""

    attacked_cpu_seconds: float | None
    baseline_cpu_seconds: float | None
    cpu_ratio: float | None
    attacked_bytes_in: float | None
    baseline_bytes_in: float | None
    bytes_ratio: float | None


def load_overhead(loads: Sequence[NodeLoad]) -> LoadOverhead:
    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    cpu_a = mean([x.processing_seconds for x in loads if x.attacked])
    cpu_b = mean([x.processing_seconds for x in loads if not x.attacked])
    by_a = mean([float(x.bytes_in) for x in loads if x.attacked])
    by_b = mean([float(x.bytes_in) for x in loads if not x.attacked])
    return LoadOverhead(cpu_a, cpu_b, ratio(cpu_a, cpu_b), by_a, by_b, ratio(by_a, by_b))
