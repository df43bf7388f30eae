"""What a bitcoind member did to its peers, and its Prometheus metrics.

The supervisor (service.py) polls `getpeerinfo`, `listbanned`, `getmempoolinfo` and `getblockcount`
every `PEER_POLL_S`, reads the new lines of bitcoind's debug log, and feeds both to a `Conduct`,
which keeps:

- a misbehaviour log in the light node's `GET /misbehaviour` format (time, address, peer id, reason,
  points, score, action), so the controller's spam figures read a bitcoind like a light node:
  * scores: each "Misbehaving: ... peer=N (a -> b) reason: R" line of its debug log (Core <= 0.20
    and Bitcoin SV write them); polling `banscore` misses most of them (bitcoind charges a burst of
    100 one-point messages within a second), so rises of `banscore` are the fallback only for a
    binary that writes no such line;
  * a peer that leaves `getpeerinfo` with a score above 0 is an entry with action `ban` if its
    address is in `listbanned`, else `disconnect`, unless the debug log says the peer closed the
    socket itself ("closed by peer=N", Core's "socket closed for peer=N"): then bitcoind did
    nothing and there is no entry. The verdict waits one poll after the peer left, so that the
    log lines written meanwhile are read.
- the last figures, exported at `GET /metrics` as `harness_bitcoind_*` (grafana/catalogue.py).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PEER_POLL_S = 0.1  # the resolution of the scores and disconnects seen
MAX_LOG = 10_000  # like the light node's misbehaviour log: the oldest entries go first
PREFIX = "harness_bitcoind_"
# BSV 1.0.13: "Misbehaving: 127.1.0.1:5 peer=9 (0 -> 1) reason: missing-version"; Core 0.20 has no address
MISBEHAVING = re.compile(r"Misbehaving: (?:(?P<addr>\S+) )?peer=(?P<id>\d+) \((?P<before>\d+) -> (?P<after>\d+)\)"
                         r"(?: reason: (?P<reason>[\w-]+))?")
CLOSED_BY_PEER = re.compile(r"(?:closed by peer=|socket closed for peer=)(?P<id>\d+)\b")


class LogTail:
    """The complete lines appended to a file since the last call (none while it does not exist)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]


def _host(addr: str) -> str:
    """'127.1.0.1:18444' -> '127.1.0.1'; '127.1.0.1/32' -> '127.1.0.1' (listbanned's subnets)."""
    host = addr.split("/")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Conduct:
    def __init__(self, planned: Callable[[str], str] = lambda addr: _host(addr)) -> None:
        self.planned = planned  # getpeerinfo's "ip:port" -> the peer's planned address (BitcoindConfig.planned)
        self.log: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self._peers: dict[int, dict[str, Any]] = {}  # peer id -> {"address", "score", "inbound"}
        self.banned: list[str] = []
        self.mempool: dict[str, Any] = {}
        self.height = 0
        self.left = {"ban": 0, "disconnect": 0, "closed-by-peer": 0}  # scored peers that left, by how (counters)
        self._closed_by_peer: set[int] = set()  # peer ids the log says closed the socket themselves
        self._leaving: dict[int, dict[str, Any]] = {}  # scored peers gone since the last poll: judged next poll
        self.scores_from_log = False  # the debug log has Misbehaving lines: banscore polls are not needed

    def update(self, peers: Sequence[Mapping[str, Any]], banned: Sequence[Mapping[str, Any]],
               mempool: Mapping[str, Any], height: int, log_lines: Sequence[str] = (),
               now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.banned = [_host(b["address"]) for b in banned]
        self.mempool, self.height = dict(mempool), height
        addresses = {int(p["id"]): self.planned(p["addr"]) for p in peers}
        for line in log_lines:
            if "peer=" not in line or ("Misbehaving" not in line and "closed" not in line):
                continue  # -debug=net writes thousands of lines a second: only these two kinds matter
            closed = CLOSED_BY_PEER.search(line)
            if closed is not None:
                self._closed_by_peer.add(int(closed["id"]))
            m = MISBEHAVING.search(line)
            if m is None:
                continue
            self.scores_from_log = True
            pid, after = int(m["id"]), int(m["after"])
            address = self.planned(m["addr"]) if m["addr"] else addresses.get(pid) or self._peers.get(pid, {}).get("address", "")
            self.log.append({"time": now, "address": address, "peer_id": pid, "reason": m["reason"] or "misbehaving",
                             "points": after - int(m["before"]), "score": after, "action": "none"})
            if pid in self._peers:
                self._peers[pid]["score"] = max(self._peers[pid]["score"], after)
            else:  # charged and gone between two polls: remembered so its leaving is seen
                self._peers[pid] = {"address": address, "score": after, "inbound": True}
        current: dict[int, dict[str, Any]] = {}
        for p in peers:
            pid, score = int(p["id"]), int(p.get("banscore", 0))
            before = self._peers.get(pid, {}).get("score", 0)
            if score > before and not self.scores_from_log:
                self.log.append({"time": now, "address": addresses[pid], "peer_id": pid, "reason": "banscore",
                                 "points": score - before, "score": score, "action": "none"})
            current[pid] = {"address": addresses[pid], "score": max(score, before), "inbound": bool(p.get("inbound"))}
        for pid, gone in self._leaving.items():  # left before the last poll: its log lines are read now
            if pid in self._closed_by_peer:
                self.left["closed-by-peer"] += 1
                continue
            action = "ban" if gone["address"] in self.banned else "disconnect"
            self.left[action] += 1
            self.log.append({"time": gone["time"], "address": gone["address"], "peer_id": pid, "reason": "banscore",
                             "points": 0, "score": gone["score"], "action": action})
        self._leaving = {pid: dict(gone, time=now) for pid, gone in self._peers.items()
                         if pid not in current and gone["score"] > 0}
        self._closed_by_peer &= set(current) | set(self._leaving)  # ids are never reused: forget the judged
        self._peers = current

    def peers(self, direction: str) -> int:
        return sum(1 for p in self._peers.values() if p["inbound"] == (direction == "inbound"))

    def max_score(self) -> int:
        return max((p["score"] for p in self._peers.values()), default=0)


class ConductCollector(Collector):
    """The last poll's figures as metric families, built at scrape time."""

    def __init__(self, name: str, conduct: Conduct) -> None:
        self.name, self.conduct = name, conduct

    def collect(self) -> Iterator[Metric]:
        c, n = self.conduct, self.name

        def gauge(metric: str, doc: str, value: float) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(PREFIX + metric, doc, labels=["node"])
            fam.add_metric([n], value)
            return fam

        peers = GaugeMetricFamily(PREFIX + "peers", "Connected peers by direction (getpeerinfo).", labels=["node", "direction"])
        for direction in ("inbound", "outbound"):
            peers.add_metric([n, direction], c.peers(direction))
        yield peers
        yield gauge("chain_height", "Height of the best chain (getblockcount).", c.height)
        yield gauge("mempool_transactions", "Transactions in the mempool (getmempoolinfo size).", c.mempool.get("size", 0))
        yield gauge("mempool_bytes", "Mempool size in bytes (getmempoolinfo bytes).", c.mempool.get("bytes", 0))
        yield gauge("banned_addresses", "Addresses in the ban list (listbanned).", len(c.banned))
        yield gauge("max_banscore", "Highest ban score among connected peers (getpeerinfo banscore).", c.max_score())
        left = CounterMetricFamily(PREFIX + "misbehaving_peers_left", "Peers with a ban score above 0 that left "
                                   "getpeerinfo: banned (in listbanned), disconnected by bitcoind, or closed by the peer.",
                                   labels=["node", "action"])
        for action, count in c.left.items():
            left.add_metric([n, action], count)
        yield left
