"""The bootstrap attacker kind (harness_node/attack/bootstrap.py) against real nodes on loopback:
a victim that dials its identities (as it would after a poisoned seeder's answer) gets its address
table filled with attacker addresses only, its transactions are fetched and never relayed, and the
blocks the attacker learns from an honest node reach the victim only `block_delay` after it asked.
Everything is real: sockets, handshakes, the victim's addrman, relay and chain."""

from __future__ import annotations

from typing import Any

import pytest

from harness_node.attack.config import AttackConfig, AttackConfigError
from harness_node.attack.kinds import load_kinds
from harness_node.attack.runtime import AttackRuntime
from harness_node.wire.codec import NetAddr

from conftest import next_ip, wait_until

load_kinds()
BLOCK_DELAY = 1.5  # wall seconds at time_scale 1: long against loopback, short for a test


def bootstrap_config(addresses: list[str], feeds: list[str], **params: Any) -> AttackConfig:
    return AttackConfig.from_dict({"time_scale": 1.0, "attackers": [
        {"name": f"boot-{i}", "group": "boot", "kind": "bootstrap", "address": ip, "port": 18444,
         "targets": feeds, "params": params} for i, ip in enumerate(addresses)]})


def sent(attacker: Any, command: str) -> float:
    return sum(s.value for m in attacker.metrics.registry.collect() for s in m.samples
               if m.name == "harness_attacker_messages_sent" and s.labels.get("command") == command)


def sample(attacker: Any, name: str) -> float:
    return sum(s.value for m in attacker.metrics.registry.collect() for s in m.samples if s.name == name)


@pytest.mark.parametrize("params, field", [({"block_delay": -1}, "block_delay"), ({"block_delay": 601}, "download timeout"),
                                           ({"push_every": "x"}, "push_every"),
                                           ({"attacker_addresses": ["nope"]}, "attacker_addresses"),
                                           ({"bogus": 1}, "unknown field")])
def test_bootstrap_params_are_validated(params: dict[str, Any], field: str) -> None:
    with pytest.raises(AttackConfigError, match=field):
        AttackRuntime(bootstrap_config(["127.0.0.1"], [], **params))


def test_a_victim_of_the_bootstrap_attackers_is_filled_censored_and_delayed(lt, make_node):
    honest = make_node(relay_policy="flood")
    ips = [next_ip() for _ in range(3)]
    runtime = AttackRuntime(bootstrap_config(ips, [f"{honest.config.bind}:{honest.port}"], block_delay=BLOCK_DELAY))
    lt.run(runtime.start())
    try:
        boots = [runtime.attackers[f"boot-{i}"] for i in range(3)]
        wait_until(lambda: all(b.feeds for b in boots), what="every identity's feed link to the honest node")
        # The victim knows nothing but the attacker (what a poisoned seeder's answer gives it).
        victim = make_node(name="victim", relay_policy="flood", connect=[f"{ips[0]}:18444"])
        lt.wait(lambda: sum(p.ready for p in victim.outbound_peers()) == 1, what="the victim's link to the attacker")
        # (a) getaddr answered with attacker addresses only: every identity lands in the victim's table,
        # except that two from one source can share a new-table position, where Core keeps the first
        # (all three are in one /16 here: p ~ 5 %), so the wait is for one identity per position.
        positions = lt.eval(lambda: {victim.connman.addrman._new_slot(NetAddr(ip, 18444, 0, 0), ips[0]) for ip in ips})
        def table() -> set[str]:
            return set(lt.eval(lambda: [ip for ip in ips if victim.connman.addrman.find(ip, 18444) is not None]))
        wait_until(lambda: len(table()) == len(positions), what=f"{len(positions)} attacker addresses in the victim's addrman")
        assert lt.eval(lambda: victim.connman.addrman.size()) == len(positions)  # and nothing else
        assert boots[0].getaddr_answered >= 1 and boots[0].addr_pushes >= 1

        # (b) the victim's transaction is fetched and never relayed
        tx = lt.eval(victim.inject_tx)
        wait_until(lambda: boots[0].censored_count == 1, what="the attacker to take the victim's tx")
        assert sample(boots[0], "harness_attacker_censored_transactions_total") == 1
        lt.wait(lambda: tx.txid not in honest.mempool, what="the tx kept from the honest node")
        assert sent(boots[0], "tx") == 0 and tx.txid not in honest.mempool

        # (c) a block mined by the honest node is announced at once and served only after the delay
        block = lt.eval(honest.mine_block)
        lt.wait(lambda: victim.chain.has(block.hash), timeout=BLOCK_DELAY + 30, what="the victim to get the block")
        mined, got = lt.eval(lambda: (honest.block_seen[block.hash][0], victim.block_seen[block.hash][0]))
        assert (got - mined) / 1e9 >= BLOCK_DELAY  # held at least the delay (a bound from below only)
        assert sample(boots[0], "harness_attacker_block_delay_seconds_count") == 1
        assert sample(boots[0], "harness_attacker_block_delay_seconds_sum") >= BLOCK_DELAY
        assert boots[0].detail()["victims_connected"] and boots[0].detail()["blocks_served"] == 1
    finally:
        lt.run(runtime.stop())


def test_with_every_behaviour_off_the_attacker_only_answers_getaddr(lt, make_node):
    honest = make_node(relay_policy="flood")
    ip = next_ip()
    runtime = AttackRuntime(bootstrap_config([ip], [f"{honest.config.bind}:{honest.port}"], push_addresses=False,
                                             censor=False, delay_blocks=False))
    lt.run(runtime.start())
    try:
        boot = runtime.attackers["boot-0"]
        wait_until(lambda: boot.feeds, what="the feed link")
        victim = make_node(name="victim", relay_policy="flood", connect=[f"{ip}:18444"])
        lt.wait(lambda: sum(p.ready for p in victim.outbound_peers()) == 1, what="the victim's link")
        wait_until(lambda: boot.getaddr_answered == 1, what="the getaddr answer")
        lt.eval(victim.inject_tx)
        block = lt.eval(honest.mine_block)
        wait_until(lambda: boot.chain.has(block.hash), what="the attacker to learn the block")
        with pytest.raises(AssertionError):  # nothing is announced, so the victim never asks
            lt.wait(lambda: victim.chain.has(block.hash), timeout=3, what="no block")
        assert boot.censored_count == 0 and boot.addr_pushes == 0 and sent(boot, "getdata") >= 1  # feed getdata only
        assert sent(boot, "inv") == 0
    finally:
        lt.run(runtime.stop())
