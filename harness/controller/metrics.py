"""The controller's own Prometheus metrics: its derived figures, live.

Names, types and labels are the catalogue's (grafana/catalogue.py, rendered in docs/metrics.md);
tests/observability/test_dashboards_live.py compares them with a live scrape. Labels stay bounded:
kind, coverage, relay policy, reason and table come from fixed sets, `victim` from the plan's
victims, `action` from the registered timeline actions, `check` from the scenario's checks.

Counters and histograms observe each event once although the figures are recomputed from the
whole history at every poll: what was observed is remembered by key (item and coverage, ban).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from harness.analysis.figures.bans import honest_nodes_banned
from harness.analysis.figures.bootstrap import heal_times, seeder_honest_at
from harness.analysis.figures.eclipse import attacker_share, eclipse_figures, eclipse_share, is_eclipsed
from harness.analysis.figures.propagation import ItemPropagation, item_propagation
from harness.analysis.model import ITEM_KINDS, BanEvent, CheckVerdict, Observations
from harness.controller.spam_metrics import SpamMetrics
from harness.controller.spy_metrics import SpyMetrics
from harness.controller.timeline import EventRecord
from harness.plan.model import Plan
from harness_node.net.looplag import LAG_BUCKETS  # the workers' buckets: the two lags compare bucket by bucket

# No `_created` series: they are not in the catalogue, and each would double the counters' and
# histograms' series for a timestamp nobody charts. (Process-wide; the controller is its own process.)
disable_created_metrics()

PHASES = ("waiting", "timeline", "finishing", "done", "error")
# coverage label -> the ItemPropagation field holding the time to reach it
COVERAGES = {"0.5": "t50", "0.9": "t90", "1": "t100"}
# Propagation on loopback takes milliseconds at time_scale 0.05 and tens of seconds at 1.
COVERAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)
BAN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
HEAL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)  # wall seconds after the seeder turns honest


class Metrics:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.registry = r = CollectorRegistry()
        self.phase = Gauge("harness_controller_phase", "1 for the controller's current phase", ["phase"], registry=r)
        self.actions = Counter("harness_controller_timeline_actions", "Timeline actions executed, by kind and outcome",
                               ["action", "outcome"], registry=r)
        self.unreachable = Gauge("harness_controller_nodes_unreachable",
                                 "Nodes whose control API did not answer the last poll", registry=r)
        self.items = Gauge("harness_controller_items_injected", "Transactions and blocks injected so far", ["kind"], registry=r)
        self.item_coverage = Histogram("harness_controller_item_coverage_seconds",
                                       "Per probe item: injection until the share `coverage` of the honest nodes had it",
                                       ["kind", "coverage", "relay_policy"], buckets=COVERAGE_BUCKETS, registry=r)
        self.last_coverage = Gauge("harness_controller_last_item_coverage_seconds",
                                   "Time to coverage of the latest probe item that reached it", ["kind", "coverage"], registry=r)
        self.coverage = Gauge("harness_controller_coverage_ratio",
                              "Share of the honest nodes that have the latest probe item", ["kind"], registry=r)
        self.bans = Counter("harness_controller_bans", "Bans by honest nodes, by reason", ["reason"], registry=r)
        self.time_to_ban = Histogram("harness_controller_time_to_ban_seconds",
                                     "From an attacker's first misbehaviour to its ban, by reason", ["reason"],
                                     buckets=BAN_BUCKETS, registry=r)
        self.honest_banned = Gauge("harness_controller_honest_banned", "Bans of honest nodes by honest nodes", registry=r)
        self.eclipsed = Gauge("harness_controller_victims_eclipsed", "Victims whose outbound peers are all attackers", registry=r)
        self.eclipsed_ratio = Gauge("harness_controller_victims_eclipsed_ratio",
                                    "Share of the watched victims whose outbound peers are all attackers", registry=r)
        self.eclipsed_since = Gauge("harness_controller_victim_eclipsed_since_seconds",
                                    "Since the run start: when each victim eclipsed now became so for good",
                                    ["victim"], registry=r)
        self.outbound_ratio = Gauge("harness_controller_victim_outbound_attacker_ratio",
                                    "Each victim's share of outbound peers that are attackers", ["victim"], registry=r)
        self.addrman_ratio = Gauge("harness_controller_victim_addrman_attacker_ratio",
                                   "Each victim's share of address-table slots holding attacker addresses",
                                   ["victim", "table"], registry=r)
        self.loop_lag = Histogram("harness_controller_event_loop_lag_seconds",
                                  "How late the controller's event loop ran a timer", buckets=LAG_BUCKETS, registry=r)
        self.checks = Gauge("harness_controller_check_passed", "1 pass, 0 fail, -1 error", ["check"], registry=r)
        self.spam = SpamMetrics(r)  # behaviour and policy from bounded sets (spam_metrics.py)
        self.heal = Histogram("harness_controller_heal_seconds", "From the seeder turning honest to each poisoned "
                              "victim's first honest outbound peer", buckets=HEAL_BUCKETS, registry=r)
        self.healed = Gauge("harness_controller_victims_healed", "Poisoned victims that have an honest outbound peer "
                            "again", registry=r)
        self._healed: set[str] = set()  # victims whose heal time was observed
        self.spy = SpyMetrics(r)  # estimator and relay policy, fixed sets (spy_metrics.py)
        self.partitions = Gauge("harness_controller_partitions_active", "Partitions in force now.", registry=r)
        self.nodes_down = Gauge("harness_controller_nodes_down",
                                "Nodes stopped by the timeline (kill, pause, churn) now.", registry=r)
        self._covered: set[tuple[str, str]] = set()  # (item id, coverage) observed
        self._bans_seen: set[tuple[str, str]] = set()  # (banning node, banned address) counted
        self.set_phase("waiting")

    def set_phase(self, phase: str) -> None:
        for p in PHASES:
            self.phase.labels(p).set(1 if p == phase else 0)

    def publish_faults(self, records: list[EventRecord], stopped: int) -> None:
        """Faults in force now: partitions begun and not healed (one per distinct cut), stopped nodes."""
        def cuts(action: str) -> set[str]:
            return {json.dumps(r.params.get("groups"), sort_keys=True) for r in records if r.action == action and r.ok}

        self.partitions.set(len(cuts("partition") - cuts("heal")))
        self.nodes_down.set(stopped)

    def action(self, record: EventRecord) -> None:
        """Count one executed timeline action at once (Grafana's fault annotations read this)."""
        self.actions.labels(record.action, "ok" if record.ok else "error").inc()

    def injected(self, journal_items: list[dict[str, Any]]) -> None:
        """Items injected so far, from the journal (the observations may hold only the newest)."""
        for kind in ITEM_KINDS:
            self.items.labels(kind).set(sum(1 for i in journal_items if i.get("kind") == kind))

    def observe(self, obs: Observations) -> None:
        self.unreachable.set(len(obs.unreachable))
        self._propagation([item_propagation(i) for i in obs.items])
        self._bans(obs.bans, obs.started_at)
        last = {v.victim: v.samples[-1] for v in obs.victims if v.samples}
        for victim, sample in last.items():
            self.outbound_ratio.labels(victim).set(attacker_share(sample))
        self.eclipsed.set(sum(1 for s in last.values() if is_eclipsed(s)))
        figures = eclipse_figures([v for v in obs.victims if v.samples], obs.started_at)
        self.eclipsed_ratio.set(eclipse_share(figures).share)
        for f in figures:  # a victim that is no longer eclipsed loses its series
            if f.eclipsed_since is not None:
                self.eclipsed_since.labels(f.victim).set(f.eclipsed_since)
            else:
                with contextlib.suppress(KeyError):
                    self.eclipsed_since.remove(f.victim)
        for victim, tables in obs.victim_tables.items():
            for table, (attackers, total) in tables.items():
                self.addrman_ratio.labels(victim, table).set(attackers / total if total else 0.0)
        self.spam.publish(obs)
        self.spy.publish(obs)
        self._heals(obs)

    def _heals(self, obs: Observations) -> None:
        """Each poisoned victim's heal, once the seeder has turned honest (figures.bootstrap)."""
        honest_at = seeder_honest_at(self.plan)
        if honest_at is None:
            return
        for heal in heal_times(obs.victims, obs.started_at + honest_at):
            if heal.poisoned and heal.heal_seconds is not None and heal.victim not in self._healed:
                self._healed.add(heal.victim)
                self.heal.observe(heal.heal_seconds)
        self.healed.set(len(self._healed))

    def checks_done(self, checks: Iterable[Any]) -> None:
        for c in checks:
            self.checks.labels(c.name).set({CheckVerdict.PASS: 1, CheckVerdict.FAIL: 0}.get(c.verdict, -1))

    def _propagation(self, items: list[ItemPropagation]) -> None:
        origins = {n.name: n.config.get("relay_policy", "flood") for n in self.plan.nodes}
        for kind in ITEM_KINDS:
            mine = [i for i in items if i.kind == kind]  # journal order: injection order
            if mine:
                self.coverage.labels(kind).set(mine[-1].coverage)
            for label, field in COVERAGES.items():
                reached = [i for i in mine if getattr(i, field) is not None]
                if reached:
                    self.last_coverage.labels(kind, label).set(getattr(reached[-1], field))
                for item in reached:
                    if (item.item_id, label) not in self._covered:
                        self._covered.add((item.item_id, label))
                        policy = origins.get(item.origin_node, "flood")
                        self.item_coverage.labels(kind, label, policy).observe(getattr(item, field))

    def _bans(self, bans: list[BanEvent], started_at: float) -> None:
        for ban in bans:
            key = (ban.banning_node, ban.banned_address)
            if key in self._bans_seen:
                continue
            self._bans_seen.add(key)
            self.bans.labels(ban.reason).inc()
            # From the first misbehaviour the banning node saw; a planned attacker without that
            # record counts from its start (the timeline's), as the report's time to ban does.
            start = ban.first_misbehaviour if ban.first_misbehaviour is not None else (
                started_at if ban.banned_is_attacker and ban.banned_node is not None else None)
            if ban.banned_is_attacker and start is not None:
                self.time_to_ban.labels(ban.reason).observe(max(0.0, ban.time - start))
        self.honest_banned.set(len(honest_nodes_banned(bans)))
