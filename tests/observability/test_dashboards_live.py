"""Every dashboard query proven against a real Prometheus scraping a real network, and the catalogue
proven against the real `/metrics` of nodes, seeder and controller.

The network is `scenarios/quickstart.yaml` on the local backend (`harness deploy`, real processes on
loopback) with two spam identities added (one floods pings, one never finishes its handshake: they
exercise the attacker, victim-load and spam figures without banning anyone), two eclipse
identities that flood one node with addresses (too few to eclipse it), a one-identity spy
(it times quickstart's transactions: the privacy panels), plus one hostile raw peer that gets itself
banned (so bans, misbehaviour and protocol errors exist). A real Prometheus
(Debian's) discovers the targets from files, as a monitored deployment will.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from grafana import verify
from grafana.boards import BITCOIND_PANELS
from grafana.catalogue import PER_WORKER, PLANNED_METRICS, TODAY, Metric
from grafana.spec import metrics_in
from tests.observability.waiting import wait_until
from tests.observability.hostile_peer import misbehave_until_banned
from tests.observability.prometheus_server import PrometheusServer, prometheus, require  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).parent / "harness")
SCENARIO = ROOT / "scenarios" / "quickstart.yaml"
# Added to quickstart: attackers that neither ban nor err (the hostile peer's ban must stay the only one).
SPAM = [{"kind": "spam", "count": 2, "targets": {"nodes": ["node-1", "node-2"]},
         "params": {"behaviours": [{"behaviour": "ping-flood", "start": "5s", "rate": 20, "count": 100},
                                   {"behaviour": "slow-handshake", "start": "5s", "observe": "10s"}]}},
        # An eclipse attacker too small to eclipse anyone (the eclipse panel's addresses-pushed series):
        # it floods node-4 with its own address and trash and holds the link; it does not listen, so
        # no honest node that learns its address can make it an outbound peer (node-1/2's shares stay 0).
        {"kind": "eclipse", "count": 2, "targets": {"nodes": ["node-4"]},
         "params": {"trash": 10, "start": "100s", "ramp": "20s", "advertise": "own", "listen": False}}]
# A spy linked once to every honest node: it only listens and answers pings, so it bans nobody and
# eclipses nobody (quickstart's honest seeder never hands out its address); the controller scores it
# on its final observation, which the fixture waits for.
SPY = [{"kind": "spy", "count": 1, "targets": {"role": "honest"}, "params": {"connections": 1}}]
# Quickstart's spam identities eclipse nobody: watching two nodes as victims (their outbound attacker
# share stays 0, truly) makes the victim panels' series exist.
VICTIMS_CHECK = {"check": "not_eclipsed", "victim": "node-[1-2]", "max_attacker_share": 0.5}


def _scenario(directory: Path) -> Path:
    spec = yaml.safe_load(SCENARIO.read_text())
    spec["attackers"] = SPAM + SPY
    spec["expect"].append(VICTIMS_CHECK)
    path = directory / "quickstart-spam-victims.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path

# Panels (dashboard uid, panel title) that chart metrics no component exports yet, with the issue
# that adds them. test_pending_panels_are_exactly_those_over_planned_metrics keeps this list honest:
# a panel leaves it the day its metrics arrive (its queries must then return series).
PENDING: dict[tuple[str, str], int] = {
}


# Panels over real bitcoind members' metrics: the quickstart network here has none, so they are proven
# against a real Prometheus by tests/harness/test_mixed_bitcoind_run.py, which runs two bitcoinds.
PROVEN_WITH_BITCOIND = BITCOIND_PANELS


@dataclass
class LiveNetwork:
    run_dir: Path
    node_targets: dict[str, str]  # node name -> host:port of its control API
    seeder_target: str
    controller_target: str
    prometheus: PrometheusServer
    attacker_targets: dict[str, str]  # attacker identity -> host:port of its control API

    def scrape(self, target: str) -> str:
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as r:
            return r.read().decode()

    def targets(self) -> list[str]:
        return [*self.node_targets.values(), self.seeder_target, self.controller_target, *self.attacker_targets.values()]


def _harness(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _deploy(run_dir: Path, scenario: Path) -> None:
    """`harness deploy`; other engineers' runs share this machine's loopback addresses, so an
    AddressesInUse refusal (exit 2, nothing started) is waited out, never ignored."""
    deadline = time.monotonic() + 300
    while True:
        out = _harness("deploy", str(scenario), "--run-dir", str(run_dir))
        if out.returncode == 0:
            return
        if "already in use" not in out.stderr + out.stdout or time.monotonic() > deadline:
            raise AssertionError(f"harness deploy failed ({out.returncode}): {out.stdout}{out.stderr}")
        time.sleep(5)


def _controller_done(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/results", timeout=5) as r:
            phase = json.load(r)["phase"]
    except OSError:
        return False
    assert phase != "error", "the controller failed: see logs/controller.log in the run directory"
    return phase == "done"


@pytest.fixture(scope="module")
def live(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:  # noqa: F811
    workdir = tmp_path_factory.mktemp("observability")
    run_dir = workdir / "quickstart"
    _deploy(run_dir, _scenario(workdir))
    try:
        plan = json.loads((run_dir / "plan.json").read_text())
        state = json.loads((run_dir / "state.json").read_text())
        nodes = {n["name"]: f"{n['address']}:{n['control_port']}" for n in plan["nodes"] if n["role"] == "honest"}
        seeder_plan = next(n for n in plan["nodes"] if n["role"] == "seeder")
        seeder = f"{seeder_plan['address']}:{seeder_plan['control_port']}"
        controller = state["controller_url"].removeprefix("http://")
        attackers = {n["name"]: f"{n['address']}:{n['control_port']}" for n in plan["nodes"] if n["role"] == "attacker"}
        network = LiveNetwork(run_dir, nodes, seeder, controller, prometheus, attackers)
        prometheus.set_targets("harness-attacker", list(attackers.values()))
        prometheus.set_targets("harness-node", list(nodes.values()))
        prometheus.set_targets("harness-seeder", [seeder])
        prometheus.set_targets("harness-controller", [controller])
        victim = next(n for n in plan["nodes"] if n["role"] == "honest")
        # Outside every planned range (honest 127.1-99, attackers 127.100-239, bitcoind 127.240).
        misbehave_until_banned((victim["address"], victim["p2p_port"]), f"127.250.{os.getpid() % 250}.1")
        wait_until(lambda: _controller_done(state["controller_url"]), plan["duration"] + 120, "the controller to finish")
        # A restarted node is a new process on the same address; see test_a_restarted_node_is_scraped_again.
        restarted = {f"{a}:" for a in (n["address"] for n in plan["nodes"] if n["name"] in _restarted(run_dir))}
        expected = {f"http://{t}/metrics" for t in network.targets() if not t.startswith(tuple(restarted))}

        def all_up() -> bool:
            return expected <= {t["scrapeUrl"] for t in prometheus.active_targets() if t["health"] == "up"}
        try:
            wait_until(all_up, 60, f"prometheus to scrape all {len(expected)} targets")
        except AssertionError as e:
            health = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in prometheus.active_targets()]
            raise AssertionError(f"{e}: {health}") from None
        time.sleep(3)  # a few scrapes after `done`, so the final figures are in the database
        yield network
    finally:
        down = _harness("down", "--run-dir", str(run_dir))
        assert down.returncode == 0, down.stdout + down.stderr


def _restarted(run_dir: Path) -> set[str]:
    """Nodes the timeline restarted: each runs alone in a process named node-<name>-<n>."""
    state = json.loads((run_dir / "state.json").read_text())
    # the local backend's own record (RunState.backend_state) says which processes host a restarted node
    return {n for p in state["backend_state"]["processes"] if p["name"].startswith("node-") for n in p.get("nodes", [])}


def _pending_metrics(q: verify.PanelQuery) -> set[Metric]:
    return {m for m in metrics_in(q.expr) if m.planned}


def test_every_panel_query_over_exported_metrics_returns_series(live: LiveNetwork) -> None:
    queries = verify.queries()
    assert len(queries) > 50, "the generated dashboards are missing"
    current = [q for q in queries if not _pending_metrics(q) and (q.dashboard, q.panel) not in PROVEN_WITH_BITCOIND]
    empty = verify.evaluate(live.prometheus.url, current)
    assert not empty, "queries over exported metrics that return no series:\n" + "\n".join(
        f"  {q.dashboard} / {q.panel}: {q.expr}" for q in empty)


def test_pending_panels_are_exactly_those_over_planned_metrics(live: LiveNetwork) -> None:
    over_planned: dict[tuple[str, str], set[int]] = {}
    for q in verify.queries():
        if pending := _pending_metrics(q):
            over_planned.setdefault((q.dashboard, q.panel), set()).update(m.planned_in for m in pending)  # type: ignore[misc]
    assert set(over_planned) == set(PENDING), (
        f"not listed: {sorted(set(over_planned) - set(PENDING))}; listed but charting only exported metrics: "
        f"{sorted(set(PENDING) - set(over_planned))}")
    for panel, issue in PENDING.items():
        assert issue in over_planned[panel], f"{panel}: its planned metrics come from issues {over_planned[panel]}"


def test_pending_metrics_are_really_absent(live: LiveNetwork) -> None:
    """If a component starts exporting a planned metric, this fails: move it to the catalogue's
    exported section and its panels out of PENDING (their queries are then proven above)."""
    # By sample name, not family: a planned counter may take over a gauge's family name
    # (harness_controller_bans -> harness_controller_bans_total) when it replaces it.
    exported = {(s.name, fam.type) for t in live.targets() for fam in text_string_to_metric_families(live.scrape(t))
                for s in fam.samples}
    for m in PLANNED_METRICS:
        clash = {(name, type_) for name, type_ in exported if name in m.series_names()}
        assert not clash, f"{m.name} (planned in #{m.planned_in}) is exported now: {clash}"
        names = "|".join(m.series_names())
        assert not live.prometheus.query(f'count({{__name__=~"{names}"}})'), f"{m.name} has series in Prometheus"
    for q in verify.queries():  # the pending queries are valid PromQL already (an error raises) and empty
        if _pending_metrics(q):
            assert verify.series(live.prometheus.url, q) == [], f"{q.dashboard} / {q.panel}: {q.expr}"


def test_verify_command_names_exactly_the_pending_queries(live: LiveNetwork) -> None:
    out = subprocess.run([sys.executable, "-m", "grafana.verify", live.prometheus.url], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    empty = [line for line in out.stdout.splitlines() if line.startswith("no series: ")]
    pending = [q for q in verify.queries() if _pending_metrics(q)]
    # and the bitcoind panels: this network has no bitcoind member (PROVEN_WITH_BITCOIND)
    pending += [q for q in verify.queries() if (q.dashboard, q.panel) in PROVEN_WITH_BITCOIND and q not in pending]
    assert out.returncode == 1 and len(empty) == len(pending), out.stdout + out.stderr
    assert f"{len(verify.queries()) - len(pending)} of {len(verify.queries())} queries return series" in out.stdout


def _families(text: str) -> dict[str, object]:
    return {fam.name: fam for fam in text_string_to_metric_families(text)}


@pytest.mark.parametrize("component", ["node", "seeder", "controller", "attacker"])
def test_live_metrics_and_catalogue_agree(live: LiveNetwork, component: str) -> None:
    targets = {"node": list(live.node_targets.values()), "seeder": [live.seeder_target],
               "controller": [live.controller_target], "attacker": list(live.attacker_targets.values())}[component]
    catalogued = {m.family: m for m in TODAY if m.component == component}
    per_worker_seen: set[str] = set()
    for target in targets:
        families = _families(live.scrape(target))
        ours = {name: fam for name, fam in families.items() if name.startswith("harness_")}
        per_worker_seen |= set(ours) & PER_WORKER
        assert set(ours) - set(catalogued) == set(), f"{target}: exported but not catalogued"
        assert set(catalogued) - PER_WORKER - set(ours) == set(), f"{target}: catalogued but not exported"
        for name, fam in ours.items():
            m = catalogued[name]
            assert fam.type == m.type, f"{name}: exported as {fam.type}, catalogued as {m.type}"  # type: ignore[attr-defined]
            names = {lab.name for lab in m.labels}
            for sample in fam.samples:  # type: ignore[attr-defined]
                allowed = names | {"le"} if sample.name.endswith("_bucket") else names
                assert set(sample.labels) == allowed, f"{sample.name}: labels {sorted(sample.labels)}"
                for lab in m.labels:
                    value = sample.labels[lab.name]
                    if lab.values is not None:
                        assert value in lab.values, f"{sample.name}: {lab.name}={value!r} not in {lab.values}"
                    if lab.name in ("node", "worker"):  # a worker is named after its first node
                        assert value in live.node_targets, f"{sample.name}: {lab.name}={value!r} is not a planned node"
    assert per_worker_seen == (PER_WORKER if component == "node" else set()), "no worker exports its loop lag"


@pytest.mark.parametrize("component", ["node", "seeder", "controller", "attacker"])
def test_promtool_accepts_the_live_exposition(live: LiveNetwork, component: str) -> None:
    promtool = require("promtool")
    target = {"node": next(iter(live.node_targets.values())), "seeder": live.seeder_target,
              "controller": live.controller_target, "attacker": next(iter(live.attacker_targets.values()))}[component]
    out = subprocess.run([promtool, "check", "metrics"], input=live.scrape(target), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, f"{target}: {out.stdout}{out.stderr}"


def test_the_hostile_peer_was_banned_by_the_rules(live: LiveNetwork) -> None:
    """The bans the spam panels show come from the node's own rules, not from the test."""
    bans = live.prometheus.query('sum by (reason) (harness_node_bans_by_reason_total)')
    assert {b["metric"]["reason"]: float(b["value"][1]) for b in bans} == {"addr-too-large": 1.0}
    errors = live.prometheus.query('sum by (kind) (harness_node_protocol_errors_total)')
    assert {e["metric"]["kind"] for e in errors} == {"bad-checksum"}


def _values(live: LiveNetwork, expr: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in live.prometheus.query(expr)}


def test_the_controllers_figures_match_what_happened(live: LiveNetwork) -> None:
    """The controller's derived metrics against the run's own record (journal, results, node counters)."""
    results = json.loads((live.run_dir / "results.json").read_text())
    events = results["events"]
    assert _values(live, "sum by (action) (harness_controller_timeline_actions_total)", "action") == {
        a: float(sum(1 for e in events if e["action"] == a)) for a in {e["action"] for e in events}}
    assert _values(live, "sum by (reason) (harness_controller_bans_total)", "reason") == {"addr-too-large": 1.0}
    assert _values(live, "sum by (reason) (harness_controller_time_to_ban_seconds_count)", "reason") == {"addr-too-large": 1.0}
    items = results["observations"]["items"]
    for kind in ("tx", "block"):
        n = sum(1 for i in items if i["kind"] == kind)
        counts = _values(live, f'sum by (coverage) (harness_controller_item_coverage_seconds_count{{kind="{kind}"}})', "coverage")
        assert counts["0.5"] == n and counts["1"] <= counts["0.9"] <= n, (kind, n, counts)
        assert _values(live, f'harness_controller_coverage_ratio{{kind="{kind}"}}', "kind") == {kind: 1.0}
    shares = _values(live, "harness_controller_victim_outbound_attacker_ratio", "victim")
    assert shares == {"node-1": 0.0, "node-2": 0.0}
    tables = live.prometheus.query("harness_controller_victim_addrman_attacker_ratio")
    assert {(t["metric"]["victim"], t["metric"]["table"]) for t in tables} == {
        (v, t) for v in ("node-1", "node-2") for t in ("new", "tried")}
    assert _values(live, "sum(harness_controller_event_loop_lag_seconds_count)", "")[""] > 10


def test_a_restarted_node_is_scraped_again(live: LiveNetwork) -> None:
    restarted = _restarted(live.run_dir)
    assert restarted, "quickstart restarts node-3: the scenario changed"
    for name in restarted:
        url = f"http://{live.node_targets[name]}/metrics"
        health = {t["scrapeUrl"]: (t["health"], t["lastError"]) for t in live.prometheus.active_targets()}
        assert health[url][0] == "up", f"{name} ({url}): {health[url]}"

