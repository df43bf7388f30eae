"""The controller's spam metrics: each behaviour's runs against the node's misbehaviour table
(expected and observed score, time to react) and what the spam cost its victims, per behaviour and
policy (both bounded sets: ~25 behaviours x 3 policies)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from harness.analysis.figures.spam import load_overhead, spam_by_behaviour
from harness.analysis.model import Observations

BY = ["behaviour", "policy"]


class SpamMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.runs = Gauge("harness_controller_spam_runs", "Spam behaviour runs (one attacker identity against one "
                          "target), by whether the target reacted as the misbehaviour table says", [*BY, "result"],
                          registry=r)
        self.expected = Gauge("harness_controller_spam_expected_score", "Misbehaviour points the node's table charges "
                              "for the behaviour's messages", BY, registry=r)
        self.observed = Gauge("harness_controller_spam_observed_score", "Highest misbehaviour points a target charged "
                              "for the behaviour", BY, registry=r)
        self.react = Gauge("harness_controller_spam_time_to_react_seconds", "Slowest time from a behaviour's first "
                           "message to the target's ban, discouragement or disconnection", BY, registry=r)
        self.cpu = Gauge("harness_controller_victim_processing_seconds", "Mean CPU seconds honest nodes spent handling "
                         "received messages, spam targets (attacked=true) and the others", ["attacked"], registry=r)
        self.received = Gauge("harness_controller_victim_received_bytes", "Mean message bytes honest nodes received, "
                              "spam targets (attacked=true) and the others", ["attacked"], registry=r)
        self.overhead = Gauge("harness_controller_victim_overhead_ratio", "Spam targets' mean over the other honest "
                              "nodes' mean, for processing CPU and received bytes", ["resource"], registry=r)

    def publish(self, obs: Observations) -> None:
        for b in spam_by_behaviour([r for r in obs.spam if r.target_kind == "light"]):  # bitcoind: harness_bitcoind_*
            self.runs.labels(b.behaviour, b.policy, "as_expected").set(b.as_expected)
            self.runs.labels(b.behaviour, b.policy, "unexpected").set(b.runs - b.as_expected)
            self.expected.labels(b.behaviour, b.policy).set(b.expected_score)
            self.observed.labels(b.behaviour, b.policy).set(max(b.observed_scores, default=0))
            if b.max_seconds_to_react is not None:
                self.react.labels(b.behaviour, b.policy).set(b.max_seconds_to_react)
        if not obs.load or not obs.spam:  # without spam there is no victim to compare
            return
        load = load_overhead(obs.load)
        for attacked, cpu, received in (("true", load.attacked_cpu_seconds, load.attacked_bytes_in),
                                        ("false", load.baseline_cpu_seconds, load.baseline_bytes_in)):
            if cpu is not None and received is not None:
                self.cpu.labels(attacked).set(cpu)
                self.received.labels(attacked).set(received)
        for resource, ratio in (("cpu", load.cpu_ratio), ("bytes", load.bytes_ratio)):
            if ratio is not None:
                self.overhead.labels(resource).set(ratio)
