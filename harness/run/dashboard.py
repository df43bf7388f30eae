"""What `harness dashboard` shows, gathered once per refresh: the run's status (nodes and peers from
their control APIs, propagation and bans from the controller's results; runner.status), the
controller's live figures from its `/metrics` (coverage of the latest probe items, time to ban,
victims' attacker shares, loop lag), and the timeline's last actions from the run's journal.

Library code: no printing; the CLI renders the snapshot (harness/cli/dashboard.py).
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from harness.run import runner
from harness.run.rundir import RunDir

LAST_ACTIONS = 8
METRICS_TIMEOUT_SECONDS = 3.0

Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> [(labels, value)]


@dataclass
class Snapshot:
    status: dict[str, Any]  # runner.status()
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> {"ratio", "0.5", "0.9", "1"}
    time_to_ban: dict[str, tuple[int, float]] = field(default_factory=dict)  # reason -> (bans, mean seconds)
    victims: dict[str, dict[str, float]] = field(default_factory=dict)  # victim -> {"outbound", "new", "tried"}
    eclipsed: int | None = None
    loop_lag_mean: float | None = None  # the controller's, seconds
    actions: list[dict[str, Any]] = field(default_factory=list)  # the journal's last timeline events
    metrics_error: str | None = None  # why the controller's /metrics could not be read


def controller_samples(url: str) -> Samples:
    """The controller's /metrics, parsed (it answers on loopback without a token)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=METRICS_TIMEOUT_SECONDS) as r:
        text = r.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return samples


def _figures(snap: Snapshot, samples: Samples) -> None:
    for labels, value in samples.get("harness_controller_coverage_ratio", []):
        snap.coverage.setdefault(labels["kind"], {})["ratio"] = value
    for labels, value in samples.get("harness_controller_last_item_coverage_seconds", []):
        snap.coverage.setdefault(labels["kind"], {})[labels["coverage"]] = value
    sums = {lab["reason"]: v for lab, v in samples.get("harness_controller_time_to_ban_seconds_sum", [])}
    for labels, count in samples.get("harness_controller_time_to_ban_seconds_count", []):
        if count:
            snap.time_to_ban[labels["reason"]] = (int(count), sums.get(labels["reason"], 0.0) / count)
    for labels, value in samples.get("harness_controller_victim_outbound_attacker_ratio", []):
        snap.victims.setdefault(labels["victim"], {})["outbound"] = value
    for labels, value in samples.get("harness_controller_victim_addrman_attacker_ratio", []):
        snap.victims.setdefault(labels["victim"], {})[labels["table"]] = value
    eclipsed = samples.get("harness_controller_victims_eclipsed")
    snap.eclipsed = int(eclipsed[0][1]) if eclipsed else None
    lag_sum, lag_count = (samples.get(f"harness_controller_event_loop_lag_seconds_{s}") for s in ("sum", "count"))
    if lag_sum and lag_count and lag_count[0][1]:
        snap.loop_lag_mean = lag_sum[0][1] / lag_count[0][1]


def snapshot(run_dir: str | Path) -> Snapshot:
    """One refresh: RunDirError (exit 2) when there is no run; a controller that does not answer
    leaves the live figures empty and says why."""
    snap = Snapshot(runner.status(run_dir))
    events = RunDir(run_dir).read_journal("event")
    snap.actions = [{k: e.get(k) for k in ("at", "action", "target", "ok", "error")} for e in events[-LAST_ACTIONS:]]
    url = snap.status["controller"]["url"]
    if not url:
        snap.metrics_error = "the controller has not recorded its URL yet"
        return snap
    try:
        _figures(snap, controller_samples(url))
    except (OSError, ValueError) as e:
        snap.metrics_error = f"controller {url}/metrics: {e}"
    return snap
