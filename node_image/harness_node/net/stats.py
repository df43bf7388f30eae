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


# Each counted (direction, label) pair is a small int, fixed for the process: counting runs twice
# per message (the sender's "out", the receiver's "in"), and a dict keyed by a small int skips the
# tuple hash that a (direction, label) key costs on every update (counting was 7 % of a
# relay burst's CPU, py-spy). `msgs`, `bytes` and `processing` give the labelled view on read.
_LABELS: tuple[str, ...] = (*sorted(KNOWN_COMMANDS), OTHER)
_IN: dict[str, int] = {c: i for i, c in enumerate(_LABELS)}
_OUT: dict[str, int] = {c: len(_LABELS) + i for i, c in enumerate(_LABELS)}
_IN_OTHER, _OUT_OTHER = _IN[OTHER], _OUT[OTHER]
_PAIRS: tuple[tuple[str, str], ...] = tuple(("in", c) for c in _LABELS) + tuple(("out", c) for c in _LABELS)


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
    __slots__ = ("_msgs", "_bytes", "protocol_errors", "misbehaviour", "bans", "txs_received",
                 "blocks_received", "tx_delay", "block_delay", "inv_wait", "sandbox_refused", "connections",
                 "_seconds", "housekeeping_errors")

    def __init__(self) -> None:
        # _PAIRS index -> count / bytes; see `msgs` and `bytes`
        self._msgs: defaultdict[int, int] = defaultdict(int)
        self._bytes: defaultdict[int, int] = defaultdict(int)
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
        # _IN index -> seconds spent handling received messages (synchronous: CPU time): what a flood
        # costs a victim; see `processing`
        self._seconds: defaultdict[int, float] = defaultdict(float)
        self.housekeeping_errors = 0  # rounds of the periodic task that raised (logged, loop goes on)

    def count_received(self, command: str, size: int, seconds: float) -> None:
        """A received message of `size` bytes (with header) that took `seconds` to handle."""
        i = _IN.get(command, _IN_OTHER)
        self._msgs[i] += 1
        self._bytes[i] += size
        self._seconds[i] += seconds

    def count_sent(self, command: str, size: int, times: int = 1) -> None:
        """`times` messages of `size` bytes each (a flood inv counted once for all its peers)."""
        i = _OUT.get(command, _OUT_OTHER)
        self._msgs[i] += times
        self._bytes[i] += size * times

    @property
    def msgs(self) -> defaultdict[tuple[str, str], int]:
        """(direction "in"|"out", command label) -> messages (0 for a pair never counted)."""
        return defaultdict(int, {_PAIRS[i]: n for i, n in self._msgs.items()})

    @property
    def bytes(self) -> defaultdict[tuple[str, str], int]:
        """(direction, command label) -> bytes, headers included."""
        return defaultdict(int, {_PAIRS[i]: n for i, n in self._bytes.items()})

    def message_counts(self) -> list[tuple[str, str, int, int]]:
        """(direction, command label, messages, bytes) of every pair counted, sorted: what a scrape
        reads, built from the int keys directly (no labelled copy of each dict per node)."""
        sizes = self._bytes
        return sorted((*_PAIRS[i], n, sizes[i]) for i, n in self._msgs.items())

    @property
    def processing(self) -> defaultdict[str, float]:
        """Command label -> seconds spent handling received messages."""
        return defaultdict(float, {_LABELS[i]: t for i, t in self._seconds.items()})

    @property
    def processing_seconds(self) -> float:
        return sum(self._seconds.values())

    @property
    def messages_total(self) -> int:
        return sum(self._msgs.values())
