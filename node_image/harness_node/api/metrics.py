"""Prometheus exposition of one node's plain counters (stats.py) through a custom Collector.

One collector and one CollectorRegistry per node: nothing is updated on the hot path, series are
built on scrape. Prefix `harness_node_`, base units, `_total` for counters; labels come only from
small fixed sets (direction, command label, error kind, misbehaviour reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..names import DANDELION_FLUFF_CAUSES
from ..net.stats import Histogram

if TYPE_CHECKING:
    from ..node import Node

PREFIX = "harness_node_"


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    buckets, cumulative = [], 0
    for bound, count in zip(list(h.buckets) + [float("inf")], h.counts):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return buckets


def _histogram(name: str, doc: str, h: Histogram, node_label: str) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(PREFIX + name, doc, labels=["node"])
    fam.add_metric([node_label], _buckets(h), h.sum)
    return fam


def _single(family: type, name: str, doc: str, node_label: str, value: float) -> Metric:
    fam = family(PREFIX + name, doc, labels=["node"])
    fam.add_metric([node_label], value)
    return fam


class NodeCollector:
    def __init__(self, node: "Node") -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node, s = self.node, self.node.stats
        n = node.name

        peers = GaugeMetricFamily(PREFIX + "peers", "Connected peers by direction.", labels=["node", "direction"])
        inbound = sum(1 for p in node.peers.values() if p.inbound)
        peers.add_metric([n, "inbound"], inbound)
        peers.add_metric([n, "outbound"], len(node.peers) - inbound)
        yield peers

        msgs = CounterMetricFamily(PREFIX + "messages", "P2P messages by command and direction.",
                                   labels=["node", "direction", "command"])
        size = CounterMetricFamily(PREFIX + "message_bytes", "P2P bytes (with headers) by command and direction.",
                                   labels=["node", "direction", "command"])
        for direction, command, count, nbytes in s.message_counts():
            msgs.add_metric([n, direction, command], count)
            size.add_metric([n, direction, command], nbytes)
        yield msgs
        yield size

        yield _single(GaugeMetricFamily, "mempool_transactions", "Transactions in the mempool.", n, len(node.mempool))
        yield _single(GaugeMetricFamily, "chain_height", "Height of the best chain.", n, node.chain.height)
        yield _single(CounterMetricFamily, "transactions_received", "New transactions accepted (peers or injected).",
                      n, s.txs_received)
        yield _single(CounterMetricFamily, "blocks_received", "New blocks stored.", n, s.blocks_received)
        yield _histogram("tx_propagation_delay_seconds", "Origin to first sight of synthetic transactions.",
                         s.tx_delay, n)
        yield _histogram("block_propagation_delay_seconds", "Origin to first sight of synthetic blocks.",
                         s.block_delay, n)

        waits = HistogramMetricFamily(PREFIX + "inv_queue_wait_seconds",
                                      "Time a tx waited in a peer's announcement queue (diffusion).",
                                      labels=["node", "direction"])
        for direction, h in s.inv_wait.items():
            waits.add_metric([n, direction], _buckets(h), h.sum)
        yield waits

        # Every node exports the Dandelion counters (zero under other policies) so that a panel summing
        # them over a mixed network never loses series when the Dandelion nodes are few.
        d = node.dandelion
        yield _single(CounterMetricFamily, "dandelion_stem_transactions", "Transactions relayed in the stem phase.",
                      n, d.stems if d is not None else 0)
        fluffs = CounterMetricFamily(PREFIX + "dandelion_fluffs", "Stem transactions this node fluffed, by cause.",
                                     labels=["node", "cause"])
        for cause in DANDELION_FLUFF_CAUSES:
            fluffs.add_metric([n, cause], d.fluffs[cause] if d is not None else 0)
        yield fluffs

        errors = CounterMetricFamily(PREFIX + "protocol_errors", "Protocol errors by kind.", labels=["node", "kind"])
        for kind, count in sorted(s.protocol_errors.items()):
            errors.add_metric([n, kind], count)
        yield errors
        misb = CounterMetricFamily(PREFIX + "misbehaviour_events", "Misbehaviour events by reason.",
                                   labels=["node", "reason"])
        for reason, count in sorted(s.misbehaviour.items()):
            misb.add_metric([n, reason], count)
        yield misb
        processing = CounterMetricFamily(PREFIX + "processing_seconds", "Time spent handling received messages "
                                         "(synchronous, on the host's one thread: CPU time), by command.",
                                         labels=["node", "command"])
        for command, seconds in sorted(s.processing.items()):
            processing.add_metric([n, command], seconds)
        yield processing
        yield _single(CounterMetricFamily, "bans", "Addresses banned.", n, s.bans)
        yield _single(GaugeMetricFamily, "banned_addresses", "Addresses currently banned or discouraged.", n,
                      len(node.list_bans()))
        yield _single(CounterMetricFamily, "sandbox_refused_dials", "Dials refused by the sandbox allowlist.", n,
                      s.sandbox_refused)
        yield _single(CounterMetricFamily, "housekeeping_errors",
                      "Rounds of the periodic task (timeouts, pings, relay retries) that raised.", n,
                      s.housekeeping_errors)
        conns = CounterMetricFamily(PREFIX + "connections", "Connection attempts by direction and outcome.",
                                    labels=["node", "direction", "outcome"])
        for (direction, outcome), count in sorted(s.connections.items()):
            conns.add_metric([n, direction, outcome], count)
        yield conns
        yield from peering_metrics(node)
        yield from chaos_metrics(node)


def chaos_metrics(node: "Node") -> Iterator[Metric]:
    """The network emulation (docs/chaos.md): drops, partitions, bucket waits, clock skew, loop lag."""
    n, sh = node.name, node.shaper
    dropped = CounterMetricFamily(PREFIX + "link_dropped_messages", "Messages the link emulation dropped, by cause.",
                                  labels=["node", "cause"])
    for cause, count in sorted(sh.dropped.items()):
        dropped.add_metric([n, cause], count)
    yield dropped
    yield _single(GaugeMetricFamily, "partitioned_peers", "Peers this node cannot reach through an active partition.",
                  n, sum(1 for p in node.peers.values() if p.ip in sh.held))
    waits = CounterMetricFamily(PREFIX + "bandwidth_wait_seconds",
                                "Time messages waited for the node's upload/download token bucket.",
                                labels=["node", "direction"])
    for direction, seconds in sorted(sh.waited.items()):
        waits.add_metric([n, direction], seconds)
    yield waits
    yield _single(GaugeMetricFamily, "clock_skew_seconds", "The node's configured clock offset.", n, node.clock.skew)
    if node.lag is not None and node.exports_lag:  # one node per worker process (host.py)
        fam = HistogramMetricFamily(PREFIX + "event_loop_lag_seconds",
                                    "How late the worker process's event loop ran a timer (per worker, not per node).",
                                    labels=["worker"])
        fam.add_metric([node.lag.worker], _buckets(node.lag.histogram), node.lag.histogram.sum)
        yield fam


SCORE_BUCKETS = (0.0, 1.0, 10.0, 20.0, 50.0, 99.0, 100.0)  # misbehaviour points; 100 = threshold
OUTBOUND_KINDS = ("manual", "outbound-full-relay", "block-relay", "feeler", "addr-fetch")


def peering_metrics(node: "Node") -> Iterator[Metric]:
    """Peer management: slots by kind, addrman tables, bans, scores, evictions, addr gossip."""
    n, cm = node.name, node.connman
    out = GaugeMetricFamily(PREFIX + "outbound_peers", "Outbound connections by kind.", labels=["node", "kind"])
    for kind in OUTBOUND_KINDS:
        out.add_metric([n, kind], sum(1 for p in node.peers.values() if not p.inbound and p.kind == kind))
    yield out
    tables = GaugeMetricFamily(PREFIX + "addrman_addresses", "Addresses in addrman by table.", labels=["node", "table"])
    new, tried = cm.addrman.counts()
    tables.add_metric([n, "new"], new)
    tables.add_metric([n, "tried"], tried)
    yield tables
    bans = CounterMetricFamily(PREFIX + "bans_by_reason", "Bans by misbehaviour reason.", labels=["node", "reason"])
    for reason, count in sorted(cm.banman.bans_by_reason.items()):
        bans.add_metric([n, reason], count)
    yield bans
    yield _single(CounterMetricFamily, "discouragements", "Addresses discouraged (0.20.1+ policies).", n,
                  cm.banman.discouraged_total)
    scores = Histogram(SCORE_BUCKETS)
    for p in node.peers.values():
        scores.observe(float(p.score))
    fam = HistogramMetricFamily(PREFIX + "peer_misbehaviour_score", "Current misbehaviour scores of connected peers.",
                                labels=["node"])
    fam.add_metric([n], _buckets(scores), scores.sum)
    yield fam
    for name, key, doc in (
            ("evictions", "evictions", "Inbound peers evicted to make room."),
            ("feeler_connections", "feelers", "Feeler connections opened."),
            ("sandbox_skipped_addresses", "sandbox_skipped", "Addresses never dialled: outside the allowlist."),
            ("inbound_refused_full", "inbound_refused_full", "Inbound refused: slots full, nobody evictable."),
            ("inbound_refused_descriptors", "inbound_refused_descriptors",
             "Inbound refused: the host process's open-files budget is spent.")):
        yield _single(CounterMetricFamily, name, doc, n, cm.counters[key])
    yield _single(CounterMetricFamily, "addr_received", "Addresses received in addr/addrv2.", n, node.addrs.received)
    yield _single(CounterMetricFamily, "addr_rate_limited", "Addresses dropped by the addr token bucket.", n,
                  node.addrs.rate_limited)


def registry_for(node: "Node") -> CollectorRegistry:
    """The node's own registry (created once, cached on the node)."""
    reg = getattr(node, "_metrics_registry", None)
    if reg is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(NodeCollector(node))  # type: ignore[arg-type]
        node._metrics_registry = reg  # type: ignore[attr-defined]
    return reg


def exposition(node: "Node") -> bytes:
    return generate_latest(registry_for(node))
