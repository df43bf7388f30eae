"""Spam peers: the behaviour catalogue's expectations come from the node's misbehaviour table, and
every behaviour, run by a real SpamAttacker against real nodes on loopback under each policy, gets
exactly the table's score and outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness_node.attack.behaviours import BEHAVIOURS, CATALOGUE, OUTCOMES, behaviour, expect
from harness_node.attack.config import AttackConfig, AttackConfigError
from harness_node.attack.forge import SENDERS
from harness_node.attack.kinds import load_kinds
from harness_node.attack.runtime import AttackRuntime
from harness_node.peering.misbehaviour import SCORES
from tests.node.conftest import next_ip

load_kinds()

# --- the catalogue (pure) ---------------------------------------------------------------------------


def test_every_behaviour_the_issue_names_is_in_the_catalogue() -> None:
    wanted = {"pre-version-message", "duplicate-version", "pre-verack-message", "oversized-inv", "oversized-getdata",
              "oversized-addr", "oversized-headers", "non-continuous-headers", "unconnecting-headers",
              "bad-pow-block", "invalid-block", "tx-empty-vout", "tx-oversize", "tx-null-prevout", "bad-checksum",
              "garbage", "truncated-frame", "oversized-length", "unknown-command", "unrequested-tx",
              "unrequested-block", "ping-flood", "addr-flood", "connection-flood", "slow-handshake"}
    assert wanted <= set(BEHAVIOURS)


def test_scored_behaviours_name_a_rule_of_the_table_and_others_an_outcome() -> None:
    for b in CATALOGUE:
        assert b.rule
        if b.reason is not None:
            assert b.reason in SCORES and SCORES[b.reason] > 0, b.name
        else:
            assert b.outcome in OUTCOMES, b.name
        # every behaviour that sends something has a sender; the two that only hold links do not
        assert (b.name in SENDERS) == (b.name not in ("slow-handshake", "connection-flood")), b.name


@pytest.mark.parametrize("policy", ["ban", "discourage", "disconnect"])
def test_expectations_replay_the_table(policy: str) -> None:
    inv = expect(behaviour("oversized-inv"), policy)
    assert inv.reason == "inv-too-large"
    if policy == "disconnect":  # 28.0: the first offence disconnects and discourages
        assert (inv.score, inv.outcome, inv.after) == (20, "discouraged", 1)
    else:  # 20 points a message: the 5th reaches 100
        assert (inv.score, inv.outcome, inv.after, inv.messages) == (100, "banned" if policy == "ban" else "discouraged", 5, 5)
    pre = expect(behaviour("pre-version-message"), policy)
    assert pre.messages == 100 and pre.after == (1 if policy == "disconnect" else 100)
    unconnecting = expect(behaviour("unconnecting-headers"), policy)  # charged on every 10th message
    assert unconnecting.after == (10 if policy == "disconnect" else 50)
    assert expect(behaviour("garbage"), policy).outcome == "disconnected"
    assert expect(behaviour("ping-flood"), policy).score == 0


def test_a_short_count_expects_no_reaction() -> None:
    e = expect(behaviour("oversized-inv"), "ban", count=2)
    assert (e.score, e.outcome, e.after) == (40, "none", None)


def test_spam_params_are_typed() -> None:
    def runtime(params: Any) -> AttackRuntime:
        return AttackRuntime(AttackConfig.from_dict({"attackers": [
            {"name": "s", "kind": "spam", "address": "127.0.0.1", "targets": [], "params": params}]}))
    with pytest.raises(AttackConfigError, match="unknown spam behaviour 'nope'"):
        runtime({"behaviours": [{"behaviour": "nope"}]})
    with pytest.raises(AttackConfigError, match=r"behaviours\[0\]: unknown field\(s\) \['speed'\]"):
        runtime({"behaviours": [{"behaviour": "garbage", "speed": 3}]})
    with pytest.raises(AttackConfigError, match="only connection-flood"):
        runtime({"behaviours": [{"behaviour": "garbage", "connections": 3}]})
    with pytest.raises(AttackConfigError, match="only 'behaviours'"):
        runtime({"behaviours": [{"behaviour": "garbage"}], "rate": 1})


# --- live: every behaviour against real nodes, both policies ------------------------------------------

TIME_SCALE = 0.2  # the 60 s handshake timeout becomes 12 s: long enough for 100 pre-version pings on a busy loop


def _observed(node: Any, ip: str) -> tuple[int, str]:
    log = [e for e in node.misbehaviour_log if e["address"] == ip]
    score = sum(e["points"] for e in log)
    if node.connman.banman.is_banned(ip):
        return score, "banned"
    if node.connman.banman.is_discouraged(ip):
        return score, "discouraged"
    return score, "scored" if log else "unscored"


@pytest.fixture(scope="module")
def spam_run() -> Any:
    """Two nodes (policies ban and disconnect), one spam identity per behaviour attacking both."""
    from harness_node.config import NodeConfig
    from harness_node.node import Node
    from tests.node.conftest import LoopThread

    lt = LoopThread()
    nodes = {}
    for policy in ("ban", "disconnect"):
        node = Node(NodeConfig(name=policy, bind=next_ip(), port=0, misbehaviour_policy=policy, time_scale=TIME_SCALE,
                               timers={"bantime": 3600.0}))
        lt.run(node.start())
        nodes[policy] = node
    targets = [f"{n.config.bind}:{n.port}" for n in nodes.values()]
    specs, ips = [], {}
    for b in CATALOGUE:
        ips[b.name] = next_ip()
        params: dict[str, Any] = {"behaviour": b.name, "rate": 200, "observe": 15 if b.name == "slow-handshake" else 5}
        if b.name == "connection-flood":
            params["connections"] = 20
        specs.append({"name": f"spam-{b.name}", "kind": "spam", "address": ips[b.name], "targets": targets,
                      "target_names": list(nodes), "params": {"behaviours": [params]}})
    runtime = AttackRuntime(AttackConfig.from_dict({"attackers": specs}))
    lt.run(runtime.start())
    lt.run(asyncio.wait_for(runtime.wait_finished(), 120), timeout=130)
    yield lt, nodes, runtime, ips
    lt.run(runtime.stop())
    for node in nodes.values():
        lt.run(node.stop())
    lt.close()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["ban", "disconnect"])
@pytest.mark.parametrize("name", [b.name for b in CATALOGUE])
def test_each_behaviour_gets_the_tables_score_and_outcome(spam_run: Any, name: str, policy: str) -> None:
    lt, nodes, runtime, ips = spam_run
    node, ip = nodes[policy], ips[name]
    attacker = runtime.attackers[f"spam-{name}"]
    assert attacker.error is None
    run = next(r for r in attacker.runs if r.target_name == policy)
    assert run.error is None, run.error
    want = expect(BEHAVIOURS[name], policy)
    score, state = lt.eval(lambda: _observed(node, ip))
    assert score == want.score, f"{name} under {policy}: the node charged {score} points, the table says {want.score}"
    if want.outcome in ("banned", "discouraged"):
        assert state == want.outcome
        # the victim acts on message `after`; more may be on the wire by then (the node's score is exact)
        assert run.closed_by_victim_at is not None and run.sent >= want.after
        assert run.reconnect == ("refused" if want.outcome == "banned" else "accepted")
    elif want.outcome == "disconnected":
        assert state == "unscored" and run.closed_by_victim_at is not None
        assert run.reconnect == "accepted"  # closed, not banned
    else:
        assert state == "unscored" and run.closed_by_victim_at is None, run.close_reason
        if name in SENDERS:  # connection-flood and slow-handshake send no message
            assert run.sent == want.messages
    if name == "connection-flood":
        assert run.connections == 20


def _catalogue_table() -> str:
    def cell(e: Any) -> str:
        if e.reason is None:
            return e.outcome
        return f"{e.outcome} after {e.after} ({e.score} pts)" if e.after else f"{e.outcome} ({e.score} pts)"

    rows = ["| Behaviour | Sends | Stage | Table rule (points) | `ban` | `discourage` | `disconnect` | Where written |",
            "|---|---|---|---|---|---|---|---|"]
    for b in CATALOGUE:
        rule = f"`{b.reason}` ({b.points}{', every 10th' if b.every == 10 else ''})" if b.reason else "—"
        rows.append(f"| `{b.name}` | {b.what} | {b.stage} | {rule} | "
                    + " | ".join(cell(expect(b, p)) for p in ("ban", "discourage", "disconnect")) + f" | {b.rule} |")
    return "\n".join(rows)


def test_the_catalogue_table_in_the_docs_is_current() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "attackers.md").read_text()
    assert _catalogue_table() in docs, "regenerate the table in docs/attackers.md from tests/node/test_spam.py"
