"""The seeder's answer modes, honest to malicious, set at start or switched through the control API."""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request

import dns.message
import dns.query
import dns.rcode
import pytest

from harness_node.seeder import ModeError, SeederConfig
from harness_node.seeder.modes import make_mode
from harness_node.seeder.service import SeederThread

DNS_IP = f"127.54.{random.randrange(1, 250)}.1"
HONEST = [f"127.70.0.{i}" for i in range(1, 101)]
ATTACKERS = [f"127.66.6.{i}" for i in range(1, 51)]
TOKEN = "s3cret"


def start(mode: str = "honest", params: dict | None = None, **kw) -> SeederThread:
    cfg = SeederConfig(dns_host=DNS_IP, dns_port=0, control_port=0, crawl=False, static_nodes=HONEST, mode=mode,
                       mode_params=params or {}, control_token=TOKEN, cache_max_age=0.0, **kw)
    thread = SeederThread(cfg)
    thread.start()
    return thread


@pytest.fixture
def seeder():
    thread = start()
    thread.seeder.thread = thread  # tests that touch seeder state run it on the seeder's loop
    yield thread.seeder
    thread.stop()


def query(seeder, name: str = "x9.seed.testnet.", qtype: str = "A", timeout: float = 3.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, qtype), DNS_IP, port=seeder.dns.port, timeout=timeout)


def ips(msg: dns.message.Message) -> list[str]:
    return [rd.address for rrset in msg.answer for rd in rrset]


def control(seeder, method: str, path: str, body: dict | None = None, token: str | None = TOKEN):
    req = urllib.request.Request(f"http://{seeder.config.control_host}:{seeder.control.port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return r.status, json.loads(raw) if path != "/metrics" else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_honest_mode_serves_good_nodes(seeder):
    got = ips(query(seeder))
    assert got and set(got) <= set(HONEST)


def test_poison_answers_only_attacker_addresses():
    thread = start("poison", {"addresses": ATTACKERS})
    try:
        for _ in range(5):
            got = ips(query(thread.seeder))
            assert len(got) >= 20 and set(got) <= set(ATTACKERS)
        assert ips(query(thread.seeder, "seed.testnet.", "AAAA")) == []  # no IPv6 attacker addresses given
    finally:
        thread.stop()


def test_mixed_serves_the_configured_fraction_of_attackers(seeder):
    status, _ = control(seeder, "POST", "/mode", {"mode": "mixed", "addresses": ATTACKERS, "fraction": 0.25})
    assert status == 200
    total = bad = 0
    for _ in range(20):
        got = ips(query(seeder))
        total += len(got)
        bad += len(set(got) & set(ATTACKERS))
        assert set(got) <= set(ATTACKERS) | set(HONEST)
    assert total >= 20 * 20
    assert abs(bad / total - 0.25) < 0.03


def test_slow_delays_answers_by_at_least_the_configured_delay(seeder):
    control(seeder, "POST", "/mode", {"mode": "slow", "params": {"delay": 0.4}})
    for _ in range(2):
        t0 = time.monotonic()
        got = ips(query(seeder, timeout=5))
        assert time.monotonic() - t0 >= 0.4 and set(got) <= set(HONEST) and got
    t0 = time.monotonic()
    tcp = dns.query.tcp(dns.message.make_query("seed.testnet.", "A"), DNS_IP, port=seeder.dns.port, timeout=5)
    assert time.monotonic() - t0 >= 0.4 and ips(tcp)


def test_stale_serves_configured_dead_hosts_or_the_crawlers_failed_nodes(seeder):
    dead = ["127.99.0.1", "127.99.0.2"]
    control(seeder, "POST", "/mode", {"mode": "stale", "addresses": dead})
    assert sorted(ips(query(seeder))) == dead

    def fail_some(s) -> None:
        for i in (1, 2, 3):
            s.db.add(f"127.98.0.{i}", 18444)
            s.db.record_failure((f"127.98.0.{i}", 18444))

    control(seeder, "POST", "/mode", {"mode": "stale"})
    seeder.thread.call(fail_some, seeder)
    assert sorted(ips(query(seeder))) == ["127.98.0.1", "127.98.0.2", "127.98.0.3"]


def test_empty_and_nxdomain(seeder):
    control(seeder, "POST", "/mode", {"mode": "empty"})
    r = query(seeder)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    control(seeder, "POST", "/mode", {"mode": "nxdomain"})
    assert query(seeder).rcode() == dns.rcode.NXDOMAIN
    assert query(seeder, "seed.testnet.", "NS").rcode() == dns.rcode.NOERROR  # the zone itself still works


def test_runtime_switch_changes_the_answers_and_the_status(seeder):
    assert set(ips(query(seeder))) <= set(HONEST)
    status, body = control(seeder, "POST", "/mode", {"mode": "poison", "addresses": ATTACKERS[:3]})
    assert status == 200 and body == {"mode": "poison", "params": {"addresses": ATTACKERS[:3]}}
    assert sorted(ips(query(seeder))) == sorted(ATTACKERS[:3])
    status, st = control(seeder, "GET", "/status")
    assert status == 200 and st["mode"] == "poison" and len(st["good"]) == len(HONEST) and st["known"] == 0
    control(seeder, "POST", "/mode", {"mode": "honest"})
    assert set(ips(query(seeder))) <= set(HONEST)


@pytest.mark.parametrize("body, fragment", [
    ({"mode": "evil"}, "unknown mode 'evil'"),
    ({"mode": "poison"}, "needs 'addresses'"),
    ({"mode": "poison", "addresses": ["not-an-ip"]}, "'not-an-ip' in 'addresses' is not an IP address"),
    ({"mode": "mixed", "addresses": ["127.0.0.1"], "fraction": 1.5}, "needs 'fraction'"),
    ({"mode": "slow", "delay": -1}, "needs 'delay'"),
    ({"mode": "empty", "delay": 1}, "takes no parameters"),
    ({"addresses": []}, "\"mode\" key"),
])
def test_bad_mode_requests_get_400_and_change_nothing(seeder, body, fragment):
    status, answer = control(seeder, "POST", "/mode", body)
    assert status == 400 and fragment in answer["error"]
    assert seeder.mode.name == "honest"


def test_post_needs_the_bearer_token(seeder):
    assert control(seeder, "POST", "/mode", {"mode": "empty"}, token=None)[0] == 401
    assert control(seeder, "POST", "/mode", {"mode": "empty"}, token="wrong")[0] == 401
    assert seeder.mode.name == "honest"
    assert control(seeder, "GET", "/status", token=None)[0] == 200


def test_metrics_count_queries_records_by_mode_and_crawl_state(seeder):
    query(seeder)
    query(seeder, "nosuch.seed.testnet.")
    control(seeder, "POST", "/mode", {"mode": "poison", "addresses": ATTACKERS})
    query(seeder)
    status, text = control(seeder, "GET", "/metrics")
    assert status == 200
    assert 'harness_seeder_queries_total{qtype="A",rcode="NOERROR"} 2.0' in text
    assert 'harness_seeder_queries_total{qtype="A",rcode="NXDOMAIN"} 1.0' in text
    assert 'harness_seeder_records_served_total{mode="poison"}' in text
    assert 'harness_seeder_records_served_total{mode="honest"}' in text
    assert 'harness_seeder_nodes{state="known"} 0.0' in text
    assert 'harness_seeder_mode{mode="poison"} 1.0' in text


def test_every_answer_is_logged_with_its_mode(seeder, caplog):
    with caplog.at_level(logging.INFO, logger="harness_node.seeder.dns"):
        query(seeder)
        control(seeder, "POST", "/mode", {"mode": "poison", "addresses": ATTACKERS})
        query(seeder)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "harness_node.seeder.dns"]
    assert [(line["mode"], line["rcode"]) for line in lines] == [("honest", "NOERROR"), ("poison", "NOERROR")]
    assert set(lines[1]["addresses"]) <= set(ATTACKERS) and lines[1]["records"] == len(lines[1]["addresses"])


def test_a_rogue_seeder_takes_over_the_honest_seeders_address():
    honest = start()
    port = honest.seeder.dns.port
    assert set(ips(query(honest.seeder))) <= set(HONEST)
    honest.stop()
    cfg = SeederConfig(dns_host=DNS_IP, dns_port=port, control_port=0, crawl=False, static_nodes=ATTACKERS,
                       mode="honest")
    rogue = SeederThread(cfg)
    rogue.start()
    try:
        got = ips(query(rogue.seeder))
        assert got and set(got) <= set(ATTACKERS)
    finally:
        rogue.stop()


def test_make_mode_validates_up_front():
    with pytest.raises(ModeError, match="known:"):
        make_mode("rogue")
    with pytest.raises(ModeError, match="mapping"):
        make_mode("honest", ["x"])  # type: ignore[arg-type]
    assert make_mode("mixed", {"addresses": ["::1"], "fraction": 0}).params() == {"addresses": ["::1"], "fraction": 0.0}


def test_config_errors_name_the_setting(tmp_path):
    from harness_node.seeder import SeederConfigError
    from harness_node.seeder.service import main_from_args

    with pytest.raises(SeederConfigError, match="seeder config: unknown field"):
        SeederConfig.from_dict({"zone": "seed.testnet.", "zonee": 1})
    with pytest.raises(SeederConfigError, match="mode: unknown mode"):
        SeederConfig(mode="evil")
    with pytest.raises(SeederConfigError, match="allowlist"):
        SeederConfig(allowlist=["10.0.0.0/33"])
    with pytest.raises(SeederConfigError, match="warmup_share must be 0..1"):
        SeederConfig(warmup_share=1.5)
    with pytest.raises(SeederConfigError, match="warmup_seconds must be >= 0"):
        SeederConfig(warmup_seconds=-1)
    bad = tmp_path / "seeder.yaml"
    bad.write_text("seeder:\n  magic: zz\n")
    assert main_from_args(["--config", str(bad)]) == 2
    good = tmp_path / "ok.yaml"
    good.write_text("seeder:\n  zone: seed.example\n  mode: poison\n  mode_params: {addresses: [127.6.6.6]}\n")
    cfg = SeederConfig.from_file(good)
    assert cfg.zone == "seed.example." and cfg.ns_name == "ns.seed.example." and cfg.mode == "poison"
