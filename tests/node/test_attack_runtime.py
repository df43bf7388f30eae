"""The attacker runtime (harness_node.attack): config validation, the kind registry, identities
dialling real nodes from their own loopback addresses, the control API and the metrics."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from harness_node.attack.base import ATTACKS, Attacker
from harness_node.attack.config import AttackConfig, AttackConfigError
from harness_node.attack.runtime import AttackRuntime
from harness_node.wire.messages import msg_ping
from tests.node.conftest import next_ip, peer_from, wait_until


@dataclass
class PingParams:
    pings: int = 3


if "test-ping" not in ATTACKS.kinds:
    @ATTACKS.register("test-ping", params=PingParams)
    class PingAttacker(Attacker):
        """Test kind: handshake with every target, send `pings` pings, hold the link."""

        async def run(self) -> None:
            for target in self.spec.targets:
                peer = await self.dial(target)
                for _ in range(self.params.pings):
                    peer.send(msg_ping(7))
                await peer.sync_with_ping()
                self.metrics.behaviour_done("ping")
                self.note("pinged", target=target)
            await asyncio.Event().wait()  # hold the links until stopped


def spec(name: str, address: str, targets: list[str], **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": "test-ping", "address": address, "targets": targets, **kw}


def test_config_refuses_unknown_keys_and_names_the_field() -> None:
    with pytest.raises(AttackConfigError, match=r"attackers\[0\]: unknown field\(s\) \['colour'\]"):
        AttackConfig.from_dict({"attackers": [{**spec("a", "127.0.0.1", []), "colour": "red"}]})
    with pytest.raises(AttackConfigError, match="unknown field"):
        AttackConfig.from_dict({"attackers": [spec("a", "127.0.0.1", [])], "speed": 3})
    with pytest.raises(AttackConfigError, match=r"targets\[0\]"):
        AttackConfig.from_dict({"attackers": [spec("a", "127.0.0.1", ["nowhere"])]})


def test_params_are_typed_and_unknown_params_refused() -> None:
    config = AttackConfig.from_dict({"attackers": [spec("a", "127.0.0.1", [], params={"bogus": 1})]})
    with pytest.raises(AttackConfigError, match=r"a\.params: unknown field\(s\) \['bogus'\]"):
        AttackRuntime(config)
    config = AttackConfig.from_dict({"attackers": [{**spec("a", "127.0.0.1", []), "kind": "nope"}]})
    with pytest.raises(AttackConfigError, match="unknown attacker kind 'nope'"):
        AttackRuntime(config)


def test_control_api_off_loopback_needs_a_token() -> None:
    with pytest.raises(AttackConfigError, match="off loopback, so it needs a control token"):
        AttackConfig.from_dict({"attackers": [spec("a", "10.0.0.5", [], control_port=18445)]})
    AttackConfig.from_dict({"control_token": "t", "attackers": [spec("a", "10.0.0.5", [], control_port=18445)]})


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_identities_dial_from_their_own_addresses_and_report(lt: Any, make_node: Any) -> None:
    node = make_node()
    target = f"{node.config.bind}:{node.port}"
    a_ip, b_ip = next_ip(), next_ip()
    config = AttackConfig.from_dict({"control_token": "secret", "attackers": [
        spec("atk-0", a_ip, [target], target_names=["n0"], control_port=0, params={"pings": 5}),
        spec("atk-1", b_ip, [target], control_port=0),
    ]})
    runtime = AttackRuntime(config)
    lt.run(runtime.start())
    try:
        lt.wait(lambda: all(a.metrics.behaviours.labels(a.name, "test-ping", "ping")._value.get() == 1
                            for a in runtime.attackers.values()), what="both identities done")
        # the node sees each identity at its own planned address
        assert peer_from(lt, node, a_ip) is not None and peer_from(lt, node, b_ip) is not None
        addrs = lt.eval(lambda: {a.name: addr for addr, a in runtime.control.app[_identities_key()].items()})
        ip, port = addrs["atk-0"]
        assert ip == a_ip
        status, body = _get(f"http://{ip}:{port}/status")
        st = json.loads(body)
        assert status == 200 and st["name"] == "atk-0" and st["address"] == a_ip and st["error"] is None
        assert st["peers"] == [{"address": target, "direction": "outbound", "kind": "attack", "handshake": True}]
        status, body = _get(f"http://{ip}:{port}/metrics")
        text = body.decode()
        assert 'harness_attacker_messages_sent_total{attacker="atk-0",behaviour="test-ping",command="ping",kind="test-ping"} 6.0' in text
        assert 'harness_attacker_connection_attempts_total{attacker="atk-0",kind="test-ping",outcome="connected"} 1.0' in text
        assert "atk-1" not in text  # each identity's /metrics shows its own series only
        # GET /identities on any identity's site: every identity of the process (the collector's one
        # request per process), each as its own /status says
        b_ip_port = addrs["atk-1"]
        status, body = _get(f"http://{b_ip_port[0]}:{b_ip_port[1]}/identities")
        every = json.loads(body)
        assert status == 200 and sorted(every) == ["atk-0", "atk-1"]
        assert every["atk-0"] == st
        assert every["atk-1"] == json.loads(_get(f"http://{b_ip_port[0]}:{b_ip_port[1]}/status")[1])
        assert _get(f"http://{ip}:{port}/stop", method="POST")[0] == 401
        assert _get(f"http://{ip}:{port}/stop", token="secret", method="POST")[0] == 200
        wait_until(lambda: peer_from(lt, node, a_ip) is None, what="the stopped identity's link gone")
        assert peer_from(lt, node, b_ip) is not None  # the other identity keeps its link
    finally:
        lt.run(runtime.stop())


def _identities_key() -> Any:
    from harness_node.attack.control import IDENTITIES
    return IDENTITIES


def test_a_failing_attack_is_reported_not_fatal(lt: Any) -> None:
    config = AttackConfig.from_dict({"attackers": [spec("atk", next_ip(), [f"{next_ip()}:1"])]})
    runtime = AttackRuntime(config)
    lt.run(runtime.start())
    try:
        lt.run(asyncio.wait_for(runtime.wait_finished(), 10))
        attacker = runtime.attackers["atk"]
        assert attacker.error is not None and "Connection" in attacker.error or "Errno" in attacker.error
        assert attacker.metrics.attempts.labels("atk", "test-ping", "failed")._value.get() == 1
    finally:
        lt.run(runtime.stop())


def test_the_cli_refuses_a_bad_config_with_one_message_and_exit_2(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("harness-node")
    bad = tmp_path / "attack.json"
    bad.write_text(json.dumps({"attackers": [{"name": "s", "kind": "spam", "address": "127.0.0.1",
                                              "params": {"behaviours": [{"behaviour": "teleport"}]}}]}))
    out = subprocess.run([str(script), "attack", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "spam params.behaviours[0]" in out.stderr and "unknown spam behaviour 'teleport'" in out.stderr, out.stderr


def test_the_cli_resolves_a_transport_table_under_the_configs_own_endpoints(tmp_path: Any) -> None:
    """`--transport` (Kubernetes' transport.json): pod names resolved into the dial endpoints, the
    config's own entries win; `localhost` stands in for a pod's DNS name."""
    from harness_node.attack.cli import attack_config
    from harness_node.cli import build_parser

    (tmp_path / "transport.json").write_text(json.dumps({
        "endpoints": {"10.1.0.1": "localhost:18444", "10.2.0.1": "localhost:18446"},
        "inbound_hosts": {"localhost": ["10.1.0.1", "10.2.0.1"]}}))
    (tmp_path / "attack.json").write_text(json.dumps({
        "endpoints": {"10.2.0.1": "127.0.0.9:1000"},
        "attackers": [spec("s", "10.100.0.1", ["10.1.0.1:18444", "10.2.0.1:18444"], bind="0.0.0.0")]}))
    args = build_parser().parse_args(["attack", "--config", str(tmp_path / "attack.json"),
                                      "--transport", str(tmp_path / "transport.json")])
    config = attack_config(args)
    assert config.dial_endpoint("10.1.0.1:18444") in {("127.0.0.1", 18444), ("::1", 18444)}
    assert config.dial_endpoint("10.2.0.1:18444") == ("127.0.0.9", 1000)
