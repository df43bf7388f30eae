"""Prometheus metrics of one attacker identity (`harness_attacker_*`), in its own registry so each
identity's /metrics shows only its own series (Prometheus tells identities apart by `instance`).

Labels are bounded: `attacker` is the attacker entry of the scenario (the identity's `group`), not
the identity, so series do not grow with `count`; `kind` (the registry's kinds), `behaviour` (the
kind's catalogue, or the kind itself), `command` (the wire's commands, or "raw" for bytes forged
without a valid frame), and the fixed sets below."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

PREFIX = "harness_attacker_"
CONNECTION_OUTCOMES = ("connected", "failed")  # TCP up / refused or timed out
OBSERVED_EVENTS = ("disconnected", "refused")  # the victim closed the link after / before sending its version
# wall seconds a block was held (bootstrap: 570 s x time_scale 0.05 = 28.5 s; up to Core's 600 s at scale 1)
BLOCK_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class AttackerMetrics:
    def __init__(self, attacker: str, kind: str) -> None:
        # No `_created` series: they are not in the catalogue and double every counter (process-wide
        # switch; an attacker process exports nothing else).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self.attacker, self.kind = attacker, kind
        r = self.registry
        who = ["attacker", "kind"]
        self.attempts = Counter(PREFIX + "connection_attempts", "Connections the attacker tried to open, by outcome.",
                                [*who, "outcome"], registry=r)
        self.open = Gauge(PREFIX + "connections", "Connections the attacker holds open now.", [*who, "direction"],
                          registry=r)
        self.messages = Counter(PREFIX + "messages_sent", "Messages the attacker sent, by behaviour and command "
                                "(raw: bytes forged without a valid frame).", [*who, "behaviour", "command"], registry=r)
        self.bytes = Counter(PREFIX + "sent_bytes", "Bytes the attacker sent.", who, registry=r)
        self.behaviours = Counter(PREFIX + "behaviours_run", "Behaviours the attacker ran to the end (against all "
                                  "its targets).", [*who, "behaviour"], registry=r)
        self.observed = Counter(PREFIX + "disconnections", "Connections the victims closed: after their version "
                                "(disconnected) or before sending it (refused: a banned address, or a peer that "
                                "never sent version).", [*who, "event"], registry=r)
        # What a victim loses to an attacker it is connected to (kind bootstrap; every kind exports
        # them, at 0, so every identity's /metrics carries the catalogue's families)
        self.censored = Counter(PREFIX + "censored_transactions", "Victims' transactions accepted and never relayed.",
                                ["attacker"], registry=r)
        self.block_delay = Histogram(PREFIX + "block_delay_seconds", "How long attackers held back a block they had "
                                     "announced (from the victim's getdata to the block).", ["attacker"],
                                     buckets=BLOCK_DELAY_BUCKETS, registry=r)
        self.censored.labels(attacker)
        self.block_delay.labels(attacker)
        # only `attacker`: the addresses an entry pushes, whatever its kind (eclipse, malicious bootstrap)
        self.addresses = Counter(PREFIX + "addresses_sent", "Addresses (own and trash) the attacker pushed to its "
                                 "victims in addr messages.", ["attacker"], registry=r)
        self.addresses.labels(attacker)
        # the spy kind's view (attack/spy.py); every identity exports it (0 for other kinds), so the
        # families of harness_attacker_* are the same whatever the kind
        self.spy_announcements = Counter(PREFIX + "spy_announcements", "Transaction announcements the spy recorded "
                                         "(first per transaction and announcing node).", ["attacker"], registry=r)
        self.spy_announcements.labels(attacker)
        for outcome in CONNECTION_OUTCOMES:
            self.attempts.labels(attacker, kind, outcome)
        for event in OBSERVED_EVENTS:
            self.observed.labels(attacker, kind, event)
        self.open.labels(attacker, kind, "outbound")
        self.bytes.labels(attacker, kind)

    def connection(self, outcome: str) -> None:
        self.attempts.labels(self.attacker, self.kind, outcome).inc()

    def sent(self, behaviour: str, command: str, size: int) -> None:
        self.messages.labels(self.attacker, self.kind, behaviour, command).inc()
        self.bytes.labels(self.attacker, self.kind).inc(size)

    def addresses_sent(self, n: int) -> None:
        self.addresses.labels(self.attacker).inc(n)

    def behaviour_done(self, behaviour: str) -> None:
        self.behaviours.labels(self.attacker, self.kind, behaviour).inc()

    def saw(self, event: str) -> None:
        self.observed.labels(self.attacker, self.kind, event).inc()

    def censored_tx(self) -> None:
        self.censored.labels(self.attacker).inc()

    def block_held(self, seconds: float) -> None:
        self.block_delay.labels(self.attacker).observe(seconds)

    def set_open(self, n: int) -> None:
        self.open.labels(self.attacker, self.kind, "outbound").set(n)
