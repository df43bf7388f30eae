"""The Heilman eclipse end to end on the local backend, through the real CLI: `harness sweep
scenarios/eclipse-defences.yaml --set network.groups.0.countermeasures=legacy,current --seeds 2`
runs the same attack at the same budget (480 addresses over 120 /16s, real `harness-node attack`
identities) against real victim nodes with the `legacy` profile and with today's countermeasures,
two seeds each, and restarts the victims through the timeline.

The premise, in both profiles: every victim has bootstrapped (all 8 outbound slots honest) before
the flood begins, as Heilman's victims had (30 honest nodes: docs/results.md, "Bootstrap first").

- legacy: the attack succeeds: the victims' tried tables are > 80 % attacker, attackers are most
  of every restarted victim's outbound peers, and on average at least 6 of a victim's 8 at the
  end. How many victims end with attackers as *every* outbound peer depends on the machine's load
  (idle: 6 of 8 over both seeds, 14 of 20 in 5 seeds; beside one busy core: 3 of 8; one CI run: 1
  of 8), so it is not asserted: whether one honest entry of ~30 is among 8 draws is chance;
- current: it fails: no victim ends eclipsed in any seed, and only a small part of the budget
  reaches tried (inbound peers never enter it, #8594; only feelers move flooded addresses there).

A victim whose restart the backend could not carry out (the timeline check errs: the machine was
too loaded to free its address in time) is not counted: it never ran the attack's last step."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.run.rundir import RunDir
from harness.scenario.durations import parse_duration
from harness_node.addr.addrman_store import ENTRY_FIELDS, decode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(sys.executable).with_name("harness")
SCENARIO = ROOT / "scenarios" / "eclipse-defences.yaml"
SETTING = "network.groups.0.countermeasures"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eclipse") / "sweep"
    done = subprocess.run([str(HARNESS), "sweep", str(SCENARIO), "--set", f"{SETTING}=legacy,current",
                           "--seeds", "2", "--out", str(out)], capture_output=True, text=True, timeout=1400, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def runs(out: Path, profile: str) -> list[dict[str, Any]]:
    """Each seed's report.json and observations of the cell whose victims ran `profile`."""
    found = []
    for cell in sorted((out / "cells").iterdir()):
        if f"{SETTING}={profile}" not in (cell / "scenario.yaml").read_text().splitlines()[0]:
            continue
        for seed in sorted(cell.glob("seed-*")):
            report = json.loads((seed / "report" / "report.json").read_text())
            observed = json.loads((seed / "run" / "results.json").read_text())["observations"]
            found.append({"seed": seed.name, "report": report, "observations": observed,
                          "run_dir": RunDir(seed / "run")})
    assert len(found) == 2, f"{profile}: {found}"
    return found


def restarted_victims(run: dict[str, Any]) -> list[dict[str, Any]]:
    failed = set()
    for check in run["report"]["checks"]:
        if check["name"] == "timeline" and check["verdict"] != "pass":
            failed = {n["victim"] for n in run["report"]["eclipse"] if f"restart_node {n['victim']}:" in check["details"]}
    return [v for v in run["report"]["eclipse"] if v["victim"] not in failed]


BUDGET = 480  # the scenario's eclipse count
OUTBOUND = 8  # the victims' full-relay slots (block_relay: 0)


def flooded_before_restart(run: dict[str, Any]) -> set[str]:
    """The victims that took the flood before their restart: more than half the budget in their
    saved tried table with an inbound handshake (`last_success`, legacy) from before the restart
    began. Two CI runs had a victim end with no attacker among its 8 outbound peers; in the one whose
    files were kept, that victim took no identity during the flood (all ~435 reached its tried table
    3-15 s after its restart, none before; the likeliest cause, not confirmed: every inbound slot
    held an honest peer that eviction protects, so Core refuses newcomers). Its restart had no
    poisoned table to draw from, and the identities' handshakes, arriving as it came back, made it
    skip them as just tried (Core's 10-minute rule) while it filled its slots from the honest
    entries. Such a victim was never attacked as Heilman's were; the outcome is judged on the others."""
    attackers = {ip for a in run["observations"]["attackers"] for ip in a["addresses"]}
    rundir: RunDir = run["run_dir"]
    restarts = {e["target"]: e["started"] for e in rundir.read_journal("event") if e["action"] == "restart_node"}
    flooded = set()
    for victim, began in restarts.items():
        entries = decode((rundir.datadir(victim) / "peers.json").read_bytes())["entries"]
        rows = (dict(zip(ENTRY_FIELDS, e)) for e in entries)
        early = sum(1 for e in rows if e["in_tried"] and e["ip"] in attackers and e["last_success"] < began)
        if early > BUDGET / 2:
            flooded.add(victim)
    return flooded


def attack_start() -> float:
    """Seconds after the run's start at which the eclipse identities begin (their `start`, in Core
    time, times the scenario's time_scale)."""
    scenario = yaml.safe_load(SCENARIO.read_text())
    return parse_duration(scenario["attackers"][0]["params"]["start"]) * scenario["network"]["time_scale"]


def unbootstrapped(run: dict[str, Any]) -> list[tuple[str, int | None, int | None]]:
    """The victims whose last sample before the attack began does not show all their outbound slots
    filled with honest peers: (victim, outbound peers, attacker peers)."""
    begins = run["observations"]["started_at"] + attack_start()
    late = []
    for victim in run["observations"]["victims"]:
        before = [s for s in victim["samples"] if s["time"] <= begins]
        last = before[-1] if before else {"outbound_total": None, "outbound_attacker": None}
        if last["outbound_total"] != OUTBOUND or last["outbound_attacker"] != 0:
            late.append((victim["victim"], last["outbound_total"], last["outbound_attacker"]))
    return late


def evidence(run: dict[str, Any], victims: list[dict[str, Any]]) -> dict[str, Any]:
    """What a failed assertion about the victims' outbound peers prints: each victim's share over
    time (was it restarted, when did attackers arrive), its tables at the end, its process's
    counters (a restarted victim's bytes count from its restart) and the bans it set (a banned
    attacker is never dialled: banlist.json outlives the restart)."""
    load = {entry["node"]: entry for entry in run["observations"]["load"]}
    return {"seed": run["seed"], "victims": [
        {"victim": v["victim"], "max_share": v["max_share"],
         "share_series": [(round(t), share) for t, share in v["share_series"]][::2],
         "tables": run["observations"]["victim_tables"].get(v["victim"]), "load": load.get(v["victim"]),
         "bans": sum(1 for b in run["observations"]["bans"] if b["banning_node"] == v["victim"])}
        for v in victims], "timeline": [c for c in run["report"]["checks"] if c["name"] == "timeline"]}


def budget_in_tried(run: dict[str, Any]) -> float:
    """The share of the attacker's addresses that reached a victim's tried table (mean over victims)."""
    tables = run["observations"]["victim_tables"]
    return sum(t["tried"][0] for t in tables.values()) / (BUDGET * len(tables))


def tried_share(run: dict[str, Any]) -> float:
    tables = run["observations"]["victim_tables"]
    attackers = sum(t["tried"][0] for t in tables.values())
    total = sum(t["tried"][1] for t in tables.values())
    return attackers / total


def test_the_sweep_writes_its_comparison(sweep: Path) -> None:
    for name in ("sweep.md", "sweep.csv", "sweep.png", "runs.csv"):
        assert (sweep / name).stat().st_size > 0, name
    with (sweep / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    runs_done = {(r[SETTING], r["seed"]) for r in rows}
    assert runs_done == {(p, s) for p in ("legacy", "current") for s in ("1", "2")}
    assert {r["check"] for r in rows} >= {"not_eclipsed", "no_honest_banned"}


def test_legacy_victims_are_eclipsed(sweep: Path) -> None:
    final: list[tuple[str, str, float]] = []  # (seed, victim, attacker share of outbound peers at the end)
    for run in runs(sweep, "legacy"):
        assert not unbootstrapped(run), (run["seed"], unbootstrapped(run))  # measured 2-7 s, the flood at 18 s
        flooded = flooded_before_restart(run)
        victims = [v for v in restarted_victims(run) if v["victim"] in flooded]
        assert len(victims) >= 2, (run["report"]["checks"], flooded)
        assert tried_share(run) > 0.8, (run["seed"], run["observations"]["victim_tables"])
        # every restarted victim's outbound peers mostly attackers (measured 6-8 of 8); all of them for
        # some: Select() draws a random non-empty tried bucket, and each honest entry has a bucket of
        # its own, so one honest peer of 8 often survives (docs/results.md)
        assert all(v["max_share"] > 0.5 for v in victims), evidence(run, victims)
        held = [v["victim"] for v in victims if v["eclipsed_at_end"]]
        verdicts = {c["name"]: c["verdict"] for c in run["report"]["checks"]}
        assert verdicts["not_eclipsed"] == "fail" or not held, verdicts
        assert verdicts["no_honest_banned"] == "pass"
        final.extend((run["seed"], v["victim"], v["share_series"][-1][1]) for v in victims)
    # the attacker's share of the victims' outbound peers at the end: measured 0.97 idle, 0.91 beside
    # a busy core (7-8 of 8 each); today's defences: at most 0.5 for any victim
    mean = sum(share for *_, share in final) / len(final)
    assert mean >= 0.75, final


def test_todays_countermeasures_keep_every_victim_at_the_same_budget(sweep: Path) -> None:
    for run in runs(sweep, "current"):
        assert not unbootstrapped(run), (run["seed"], unbootstrapped(run))  # measured 2 s, the flood at 18 s
        victims = restarted_victims(run)
        assert len(victims) >= 2, run["report"]["checks"]
        assert not [v["victim"] for v in victims if v["eclipsed_at_end"]], (run["seed"], victims)
        verdicts = {c["name"]: c["verdict"] for c in run["report"]["checks"]}
        if len(victims) == len(run["report"]["eclipse"]):  # every victim restarted: the scenario's own check holds
            assert run["report"]["eclipse_share"]["eclipsed"] == 0
            assert verdicts["not_eclipsed"] == "pass"
        # inbound attackers never enter tried (legacy: most of the budget does); only the victims' feelers
        # and outbound dials move flooded addresses there (measured 4 % of the budget)
        assert budget_in_tried(run) < 0.25, (run["seed"], run["observations"]["victim_tables"])
        assert verdicts["no_honest_banned"] == "pass"
