"""Polls the nodes' control APIs and turns what they say into the observations
(harness.analysis.model): first sightings of injected items, bans, victims' outbound peers over
time, and the final peer graph.

Peers and bans name planned (protocol) addresses: a node attributes every connection to a planned
address whatever carries it (Backend.transport_for), so the plan maps an IP back to a node name and
no transport address ever reaches here; an address outside the plan counts as not honest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from functools import partial

from typing import Any

from harness.backends.base import Endpoint
from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.node_config import is_attack_identity
from harness.analysis.figures.bans import host_of
from harness.plan.model import ATTACKER, BITCOIND, HONEST, Plan
from harness.analysis.model import (
    AttackerStart,
    Observations,
    BanEvent,
    ItemObservation,
    LagSample,
    NodeLoad,
    OutboundSample,
    PrivacyScore,
    PeerEdge,
    PeerGraph,
    SpamRun,
    VictimSeries,
)
from harness.analysis.figures.spam import spam_runs
from harness.analysis.privacy import merge_views, spy_scores

# Short-lived outbound connections that hold no outbound slot (net.h ConnectionType::FEELER);
# counting them would make an eclipse look broken every few minutes.
NOT_SLOT_KINDS = frozenset({"feeler"})


# checks whose `victim` selector names nodes whose outbound peers are sampled over time
VICTIM_CHECKS = frozenset({"eclipsed", "not_eclipsed", "healed_within", "censored_share"})


def victims_of(plan: Plan) -> list[str]:
    """The victims the plan's victim checks (VICTIM_CHECKS) name; with attackers but no such check, every
    honest node (so the eclipse figure still exists), unless every attacker is a spy: it takes no
    one's slots, and sampling 100 nodes' address tables every poll plus a 100-panel figure was a
    sixth of a spy run's time."""
    named = [v for x in plan.checks if x.check in VICTIM_CHECKS for v in (x.params.get("victim") or [])]
    attackers = [plan.node(n) for n in plan.names(ATTACKER)]
    if named or all(a.config.get("kind") == "spy" for a in attackers):
        return sorted(set(named))
    return plan.names(HONEST)


def lag_samples(statuses: Iterable[Mapping[str, Any]], now: float) -> list[LagSample]:
    """One sample per worker process (its nodes all report the same loop) from the nodes' /status."""
    by_worker: dict[str, LagSample] = {}
    for status in statuses:
        lag = (status.get("chaos") or {}).get("loop_lag")
        if lag and lag.get("worker") not in by_worker:
            by_worker[lag["worker"]] = LagSample(now, lag["worker"], lag["p50_s"], lag["p99_s"], lag["max_s"])
    return list(by_worker.values())


class Collector:
    """Keeps the history a single snapshot cannot give (ban times, victims' samples) across polls."""

    def __init__(self, plan: Plan, client: ControlClient, endpoints: Mapping[str, Endpoint], started_at: float) -> None:
        self.plan, self.client, self.endpoints, self.started_at = plan, client, dict(endpoints), started_at
        self.by_ip = {n.address: n for n in plan.peers()}
        self.victims = victims_of(plan)
        self._bans: dict[tuple[str, str], BanEvent] = {}
        self._samples: dict[str, list[OutboundSample]] = {v: [] for v in self.victims}
        self._status: dict[str, dict[str, Any]] = {}
        # earliest sighting per (kind, item) and node, kept across polls: a node that restarts
        # forgets its mempool, not the fact that it had the item
        self._first_seen: dict[tuple[str, str], dict[str, float]] = {}
        self._unreachable: list[str] = []
        self._tables: dict[str, dict[str, tuple[int, int]]] = {}
        self._attacker_hosts = sorted(n.address for n in plan.peers() if n.role != HONEST)
        self._lag: list[LagSample] = []
        # spam: each node's misbehaviour log, merged across polls (a restarted node forgets its own),
        # each attacker identity's last status, each honest node's last load figures
        self._misbehaviour: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._attackers: dict[str, dict[str, Any]] = {}
        self._load: dict[str, dict[str, Any]] = {}
        self._spam = [n.name for n in plan.peers() if n.role == ATTACKER and n.config.get("kind") == "spam"]
        # spy: its identities' views, merged, read on the full observation only (they grow with
        # every transaction: a few MB at a few hundred transactions, too much for every 2 s poll)
        self._spies = [n.name for n in plan.peers() if n.role == ATTACKER and n.config.get("kind") == "spy"]
        self._views: dict[str, dict[str, float]] = {}
        self._views_since: dict[str, float] = {}  # per spy identity: its clock at the last read
        self._privacy: list[PrivacyScore] = []  # the last scores (live_privacy), until the next
        # active attacker identities (an attack process's: they answer GET /identities; a sybil is a
        # node and answers /status), and which of them share a process
        self._attacker_names = [n.name for n in plan.peers() if is_attack_identity(n)]
        self._attacker_set = set(self._attacker_names)
        entries: dict[str | None, set[str]] = {}
        for n in plan.peers():
            if is_attack_identity(n):
                entries.setdefault(n.group, set()).add(n.name)
        self._siblings = {name: entries[self.plan.node(name).group] for name in self._attacker_names}

    def _role_of_ip(self, address: str) -> tuple[str | None, str | None]:
        node = self.by_ip.get(host_of(address))
        return (node.name, node.role) if node else (None, None)

    def _running(self, names: Iterable[str], stopped: Iterable[str]) -> list[Endpoint]:
        down = set(stopped)
        return [self.endpoints[n] for n in names if n not in down]

    async def poll(self, stopped: Iterable[str] = (), peer_lists: bool = True) -> None:
        """One round: every running node's status (peers), every honest node's bans. Without
        `peer_lists`, nodes give peer counts instead of their peer lists unless something live
        reads the lists (victims' samples, the spy's estimators), and the peer graph and outbound
        counts of the observations built on it are empty: the final observation polls with lists."""
        stopped = list(stopped)
        now = time.time()
        members = [n for n in self.plan.names() if n not in self._attacker_set]
        brief = not (peer_lists or self.victims or self._spies)
        # each host process once for all its nodes (GET /host/status): at 10,000 nodes a request per
        # node and call was 30,000 requests a poll, and the peer lists 150 MB of JSON (benchmarks.md)
        statuses = await self.client.per_host(self._running(members, stopped),
                                              f"/host/status?peers={'counts' if brief else 'list'}",
                                              partial(self.client.status, peer_counts=brief))
        down = set(stopped)
        statuses.update(await self._attacker_statuses([n for n in self._attacker_names if n not in down]))
        self._unreachable = sorted(n for n, s in statuses.items() if isinstance(s, ControlAPIError))
        self._status = {n: s for n, s in statuses.items() if not isinstance(s, ControlAPIError)}
        self._lag += lag_samples(self._status.values(), now)
        for victim in self.victims:
            status = statuses.get(victim)
            if isinstance(status, dict):
                outbound = [p for p in status.get("peers", []) if p.get("direction") == "outbound"
                            and p.get("kind") not in NOT_SLOT_KINDS]
                attackers = sum(1 for p in outbound if self._role_of_ip(p["address"])[1] != HONEST)
                self._samples[victim].append(OutboundSample(now, len(outbound), attackers))
        victims = [self.endpoints[v] for v in self.victims if isinstance(statuses.get(v), dict)]
        tables = await self.client.gather(victims, lambda ep: self.client.addrman_count(ep, self._attacker_hosts))
        self._tables = {v: t for v, t in tables.items() if isinstance(t, dict)}
        for name, status in self._status.items():
            if name in self._spam:
                self._attackers[name] = status
            elif isinstance(status.get("load"), dict):
                self._load[name] = status["load"]
        if self._spam:
            await self._poll_misbehaviour(stopped)
        banning = [*self.plan.names(HONEST), *self.plan.names(BITCOIND)]  # a bitcoind: its listbanned
        bans = await self.client.bans_of(self._running(banning, stopped))
        for banning, entries in bans.items():
            if isinstance(entries, ControlAPIError):
                continue
            for entry in entries:
                key = (banning, host_of(entry["address"]))
                if key not in self._bans:
                    name, role = self._role_of_ip(entry["address"])
                    when = entry.get("created") or now  # discouragements carry no time: first poll that saw it
                    self._bans[key] = BanEvent(when, banning, entry["address"], entry.get("reason") or entry.get("kind", "ban"),
                                               banned_is_attacker=role != HONEST, banned_node=name,
                                               first_misbehaviour=entry.get("first_misbehaviour"))

    async def _attacker_statuses(self, names: list[str]) -> dict[str, dict[str, Any] | ControlAPIError]:
        """Every attacker identity's /status with one request per attacker process (its GET
        /identities answers for every identity it serves), so a poll's cost is the number of
        processes, not of identities (an eclipse has hundreds). Which identities share a process is
        learnt from the answers; the first guess is the plan's entry (the local backend runs one
        process per entry; Docker and k8s one per identity, found on a second wave)."""
        out: dict[str, dict[str, Any] | ControlAPIError] = {}
        todo = list(names)
        for _ in range(3):  # first guess, then every identity the guess missed, then a last retry
            if not todo:
                break
            asked: dict[str, set[str]] = {}  # the identity asked -> the identities it should answer for
            covered: set[str] = set()
            for n in todo:
                if n not in covered:
                    asked[n] = (self._siblings.get(n) or {n}) & set(todo)
                    covered |= asked[n] | {n}
            answers = await self.client.gather([self.endpoints[n] for n in asked], self.client.attacker_identities)
            for n, answer in answers.items():
                if isinstance(answer, ControlAPIError):
                    out.update(dict.fromkeys(asked[n] | {n}, answer))
                    for sibling in asked[n] | {n}:
                        self._siblings.pop(sibling, None)  # a restarted process may serve others
                    continue
                served = {x for x in answer if x in self._attacker_set}
                for x in served:
                    self._siblings[x] = served
                    out[x] = answer[x]
            todo = [n for n in todo if n not in out]
            for n in todo:
                self._siblings[n] = {n}  # not where the guess said: ask it on its own
        return out

    async def _poll_misbehaviour(self, stopped: list[str]) -> None:
        # a bitcoind member serves the same log from its RPC (harness_node/bitcoind/conduct.py)
        members = [*self.plan.names(HONEST), *self.plan.names(BITCOIND)]
        logs = await self.client.gather(self._running(members, stopped), self.client.misbehaviour)
        for node, entries in logs.items():
            if isinstance(entries, ControlAPIError):
                continue
            merged = self._misbehaviour.setdefault(node, {})
            for e in entries:
                merged.setdefault((e.get("time"), e.get("peer_id"), e.get("reason"), e.get("score")), e)

    def spam(self) -> list[SpamRun]:
        logs = {n: sorted(m.values(), key=lambda e: e.get("time") or 0.0) for n, m in self._misbehaviour.items()}
        return spam_runs(self.plan, self._attackers, logs)

    async def _poll_views(self, stopped: list[str]) -> None:
        """What the spy identities recorded since the last read (GET /data?since=), merged in: a
        first announcement never changes, so each read carries only the new ones."""
        eps = self._running(self._spies, stopped)
        data = await self.client.gather(eps, lambda ep: self.client.attacker_data(ep, self._views_since.get(ep.name)))
        parts = [self._views] + [d.get("views") or {} for d in data.values() if isinstance(d, dict)]
        self._views = merge_views(parts)  # a stopped identity's views are kept from earlier reads
        for name, d in data.items():
            if isinstance(d, dict) and isinstance(d.get("now"), (int, float)):
                self._views_since[name] = float(d["now"])

    async def live_privacy(self, journal_items: Iterable[Mapping[str, Any]], settled_before: float,
                           stopped: Iterable[str] = ()) -> list[PrivacyScore]:
        """The spy's scores so far, over the transactions injected before `settled_before` (a newer
        one may not have reached the spy yet: counted now, it would read as a miss). Kept for the
        live observations until the next call; the estimators run in a thread (0.3 s of CPU at 300
        transactions and 100 candidates) so the poll loop keeps its period."""
        if not self._spies:
            return []
        await self._poll_views(list(stopped))
        settled = [i for i in journal_items if i["kind"] == "tx" and (i.get("origin_time") or 0.0) < settled_before]
        if not settled:
            return self._privacy  # nothing to score yet: no figures rather than zeros
        self._privacy = await asyncio.to_thread(self.privacy, settled)
        return self._privacy

    def privacy(self, journal_items: Iterable[Mapping[str, Any]]) -> list[PrivacyScore]:
        """The spy's source estimators scored against the journal's truth (who injected each tx)."""
        if not self._spies:
            return []
        honest = set(self.plan.names(HONEST))
        truth = {i["item_id"]: i["origin"] for i in journal_items if i["kind"] == "tx" and i["origin"] in honest}
        policy_of = {n: str(self.plan.node(n).config.get("relay_policy", "")) for n in honest}
        edges = [(e.a, e.b) for e in self.graph().edges if e.a in policy_of and e.b in policy_of]
        return spy_scores(self._views, truth, policy_of, edges, len(self._spies))

    def load(self) -> list[NodeLoad]:
        attacked = {t for n in self._spam for t in self.plan.node(n).config.get("targets", [])}
        return [NodeLoad(n, float(x.get("processing_seconds", 0.0)), int(x.get("bytes_in", 0)), n in attacked)
                for n, x in sorted(self._load.items())]

    async def items(self, journal_items: Iterable[Mapping[str, Any]], stopped: Iterable[str] = ()) -> list[ItemObservation]:
        """First sighting of every injected item at every running honest node."""
        honest = self._running(self.plan.names(HONEST), stopped)
        journal_items = list(journal_items)
        # Every node at once, all its items in batches, each host process asked once for all its
        # nodes (GET /host/items): a request per item and node was 32,000 requests at the end of a
        # 100-node spy run.
        watched = honest + self._running(self.plan.names(BITCOIND), stopped)
        keys = [(i["kind"], i["item_id"]) for i in journal_items]
        by_node = await self.client.items_of(watched, keys)
        answers = [{n: r if isinstance(r, ControlAPIError) else r.get(key) for n, r in by_node.items()} for key in keys]
        observed = []
        honest_names = {ep.name for ep in honest}
        for item, seen in zip(journal_items, answers):
            known = self._first_seen.setdefault((item["kind"], item["item_id"]), {})
            for n, r in seen.items():
                if isinstance(r, dict) and r.get("first_seen") is not None:
                    known[n] = min(known.get(n, r["first_seen"]), r["first_seen"])
            first_seen = {n: known.get(n) for n in seen if n in honest_names}
            members_seen = {n: known.get(n) for n in seen if n not in honest_names}
            origin_honest = item["origin"] in {ep.name for ep in honest}
            observed.append(ItemObservation(
                kind=item["kind"], item_id=item["item_id"], origin_time=item["origin_time"], origin_node=item["origin"],
                first_seen=first_seen, honest_node_count=max(1, len(honest)), origin_honest=origin_honest,
                members_seen=members_seen,
            ))
        return observed

    def graph(self) -> PeerGraph:
        edges = []
        for name, status in self._status.items():
            for peer in status.get("peers", []):
                other, _ = self._role_of_ip(peer["address"])
                if other is not None and peer.get("direction") in ("outbound", "inbound"):
                    edges.append(PeerEdge(name, other, peer["direction"]))
        return PeerGraph(edges, {n.name: n.role for n in self.plan.peers()})

    def outbound_counts(self) -> dict[str, int]:
        return {n: sum(1 for p in s.get("peers", []) if p.get("direction") == "outbound" and p.get("kind") not in NOT_SLOT_KINDS)
                for n, s in self._status.items() if self.plan.node(n).role == HONEST}

    async def observe(self, journal_items: Iterable[Mapping[str, Any]], stopped: Iterable[str] = (), poll: bool = True) -> Observations:
        stopped = list(stopped)
        journal_items = list(journal_items)
        if poll:
            await self.poll(stopped)
            if self._spies:
                await self._poll_views(stopped)
        items = await self.items(journal_items, stopped)
        return Observations(
            started_at=self.started_at, ended_at=max(time.time(), self.started_at), items=items,
            bans=sorted(self._bans.values(), key=lambda b: b.time),
            attackers=[AttackerStart(n.name, self.started_at, (n.address,)) for n in self.plan.peers() if n.role == ATTACKER],
            victims=[VictimSeries(v, list(s)) for v, s in self._samples.items()],
            graph=self.graph(), outbound_at_end=self.outbound_counts(), unreachable=list(self._unreachable),
            victim_tables=dict(self._tables),
            loop_lag=list(self._lag),
            spam=self.spam(), load=self.load(), privacy=self.privacy(journal_items) if poll else list(self._privacy),
        )
