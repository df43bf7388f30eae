"""Prometheus metrics of the seeder, prefix `harness_seeder_`, read at scrape time by a custom collector.

The DNS server and crawler only bump plain counters (cheap on the answer path); the collector turns
them and the database's current sizes into metric families. Labels come from small fixed sets:
qtype names, rcode names and mode names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .nodedb import DbStats

PREFIX = "harness_seeder_"


class SeederCounters:
    """Monotonic counts kept by the DNS server and the crawler."""

    def __init__(self) -> None:
        self.queries: Counter[tuple[str, str]] = Counter()  # (qtype, rcode) -> n
        self.records: Counter[str] = Counter()  # mode -> A/AAAA records served
        self.dropped = 0  # packets without a parsable header
        self.mode_switches = 0
        self.probes: Counter[str] = Counter()  # "ok" / "failed" -> n


class SeederCollector(Collector):
    def __init__(self, counters: SeederCounters, db_stats: Callable[[], DbStats], mode: Callable[[], str]) -> None:
        self.counters = counters
        self.db_stats = db_stats
        self.mode = mode

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        q = CounterMetricFamily(PREFIX + "queries", "DNS queries answered, by query type and response code",
                                labels=["qtype", "rcode"])
        for (qtype, rcode), n in sorted(c.queries.items()):
            q.add_metric([qtype, rcode], n)
        yield q
        r = CounterMetricFamily(PREFIX + "records_served", "A/AAAA records served, by the answer mode that chose them",
                                labels=["mode"])
        for mode, n in sorted(c.records.items()):
            r.add_metric([mode], n)
        yield r
        yield CounterMetricFamily(PREFIX + "packets_dropped", "DNS packets dropped without an answer (no parsable header)",
                                  value=c.dropped)
        yield CounterMetricFamily(PREFIX + "mode_switches", "Runtime answer mode changes", value=c.mode_switches)
        p = CounterMetricFamily(PREFIX + "crawl_probes", "Crawler connection attempts, by result", labels=["result"])
        for result in ("ok", "failed"):
            p.add_metric([result], c.probes[result])
        yield p
        s = self.db_stats()
        nodes = GaugeMetricFamily(PREFIX + "nodes", "Nodes in the seeder database, by state", labels=["state"])
        for state in ("known", "new", "tracked", "good", "banned", "undialable"):
            nodes.add_metric([state], getattr(s, state))
        yield nodes
        m = GaugeMetricFamily(PREFIX + "mode", "The active answer mode (1 for the current one)", labels=["mode"])
        m.add_metric([self.mode()], 1)
        yield m


def make_registry(collector: SeederCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
