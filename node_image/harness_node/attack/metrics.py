"""Prometheus metrics of one attacker identity (`harness_attacker_*`), in its own registry so each
identity's /metrics shows only its own series. Labels are bounded: `attacker` (one per identity),
`kind` (the registry's kinds), `command` (the wire's commands, or "raw" for bytes we forge),
`behaviour` (the kind's catalogue), `outcome`/`event` (fixed small sets below)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "harness_attacker_"
CONNECTION_OUTCOMES = ("connected", "failed")  # TCP up / refused or timed out
OBSERVED_EVENTS = ("disconnected", "refused")  # the victim closed the link after / before sending its version


class AttackerMetrics:
    def __init__(self, attacker: str, kind: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.attacker, self.kind = attacker, kind
        r = self.registry
        self.connections = Counter(PREFIX + "connections", "Connections the attacker opened, by outcome.",
                                   ["attacker", "kind", "outcome"], registry=r)
        self.open = Gauge(PREFIX + "open_connections", "Connections the attacker holds open now.",
                          ["attacker", "kind"], registry=r)
        self.messages = Counter(PREFIX + "messages_sent", "Messages the attacker sent, by command "
                                "(raw: bytes forged without a valid frame).", ["attacker", "kind", "command"], registry=r)
        self.bytes = Counter(PREFIX + "sent_bytes", "Bytes the attacker sent.", ["attacker", "kind"], registry=r)
        self.behaviours = Counter(PREFIX + "behaviours_run", "Behaviours the attacker ran to the end, per target.",
                                  ["attacker", "kind", "behaviour"], registry=r)
        self.observed = Counter(PREFIX + "disconnects_observed", "Connections the victims closed: after their version "
                                "(disconnected) or before sending it (refused: a banned address, or a peer that "
                                "never sent version).", ["attacker", "kind", "event"], registry=r)
        for outcome in CONNECTION_OUTCOMES:
            self.connections.labels(attacker, kind, outcome)
        for event in OBSERVED_EVENTS:
            self.observed.labels(attacker, kind, event)
        self.open.labels(attacker, kind)
        self.bytes.labels(attacker, kind)

    def connection(self, outcome: str) -> None:
        self.connections.labels(self.attacker, self.kind, outcome).inc()

    def sent(self, command: str, size: int) -> None:
        self.messages.labels(self.attacker, self.kind, command).inc()
        self.bytes.labels(self.attacker, self.kind).inc(size)

    def behaviour_done(self, behaviour: str) -> None:
        self.behaviours.labels(self.attacker, self.kind, behaviour).inc()

    def saw(self, event: str) -> None:
        self.observed.labels(self.attacker, self.kind, event).inc()

    def set_open(self, n: int) -> None:
        self.open.labels(self.attacker, self.kind).set(n)
