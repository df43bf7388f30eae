"""Plain counters of one node. Cheap by design: a thousand nodes live in one process, so these are
dicts and ints updated inline; metrics.py turns them into Prometheus series on scrape."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from ..wire.messages import MESSAGEMAP

# Commands get their own label; anything else is "other" so that the label set stays bounded.
KNOWN_COMMANDS: frozenset[str] = frozenset(c.decode() for c in MESSAGEMAP) | {
    "sendtxrcncl", "protoconf", "authch", "cmpctblock", "getblocktxn", "blocktxn", "reject",
    "filterload", "filteradd", "filterclear", "merkleblock", "getcfilters", "cfilter",
}
OTHER = "other"

# Propagation-delay buckets (seconds): loopback hops are sub-millisecond, diffusion adds seconds.
DELAY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                    2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def command_label(command: str) -> str:
    return command if command in KNOWN_COMMANDS else OTHER


# (direction, label) keys built once per command and shared by every node of the process: counting
# runs twice per message, and a tuple per count was a visible part of relay's CPU. Bounded: a
# command outside KNOWN_COMMANDS gets the shared "other" key and is not remembered.
_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    d: {c: (d, c) for c in KNOWN_COMMANDS} for d in ("in", "out")}
_OTHER_KEYS = {d: (d, OTHER) for d in ("in", "out")}


class Histogram:
    """Fixed-bucket histogram (non-cumulative counts; metrics.py makes them cumulative)."""

    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets: tuple[float, ...] = DELAY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


class NodeStats:
    __slots__ = ("msgs", "bytes", "protocol_errors", "misbehaviour", "bans", "txs_received",
                 "blocks_received", "tx_delay", "block_delay", "inv_wait", "sandbox_refused", "connections",
                 "processing", "housekeeping_errors")

    def __init__(self) -> None:
        # (direction "in"|"out", command label) -> count
        self.msgs: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.bytes: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.protocol_errors: defaultdict[str, int] = defaultdict(int)  # kind -> count
        self.misbehaviour: defaultdict[str, int] = defaultdict(int)  # reason -> events
        self.bans = 0
        self.txs_received = 0  # new txs accepted into the mempool (from peers or injected)
        self.blocks_received = 0  # new blocks stored
        self.tx_delay = Histogram()
        self.block_delay = Histogram()
        # diffusion: time a tx waited in a peer's announcement queue, by the peer's direction
        self.inv_wait = {"inbound": Histogram(), "outbound": Histogram()}
        self.sandbox_refused = 0
        self.connections: defaultdict[tuple[str, str], int] = defaultdict(int)  # (direction, outcome)
        # command label -> seconds spent handling received messages (synchronous: CPU time): what a flood costs a victim
        self.processing: defaultdict[str, float] = defaultdict(float)
        self.housekeeping_errors = 0  # rounds of the periodic task that raised (logged, loop goes on)

    def count_message(self, direction: str, command: str, size: int) -> None:
        key = _KEYS[direction].get(command) or _OTHER_KEYS[direction]
        self.msgs[key] += 1
        self.bytes[key] += size

    def count_processing(self, command: str, seconds: float) -> None:
        self.processing[command_label(command)] += seconds

    @property
    def processing_seconds(self) -> float:
        return sum(self.processing.values())

    @property
    def messages_total(self) -> int:
        return sum(self.msgs.values())
