"""Node-wide network emulation that depends on who is at the other end: regions (per-peer one-way
delay from a round-trip matrix), upload/download bandwidth (token buckets over all of the node's
links), per-link loss and partitions (messages to an unreachable peer are held, as TCP would hold
them, until the partition heals).

The kernel here has no tc/netem, so this is the testbed's network (docs/chaos.md). Every node
applies it to what it *sends*: a link A-B gets A's view on A->B and B's view on B->A, and both
derive the same region delay (RTT / 2 each way) because both have the same matrix and region table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .linkem import LinkModel

# Bytes a bucket may send at once after being idle (about one TCP initial window, 10 x 1460 B): a
# ping is not paced, a block is.
DEFAULT_BURST = 14_600
MAX_RATE_KBIT = 10_000_000.0  # 10 Gbit/s: beyond it a cap is a typo


@dataclass
class Regions:
    """Where this node and its peers are, and the round-trip times between regions.

    region: ours (None: no region delay); of: planned IP -> region for every planned peer;
    rtt_ms: region -> region -> round-trip ms (symmetric; a missing pair is an error at load);
    jitter: uniform spread of each one-way delay, as a fraction of it (0.1 = +-10 %).
    """

    region: str | None = None
    of: dict[str, str] = field(default_factory=dict)
    rtt_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    jitter: float = 0.0

    def validate(self, prefix: str = "regions") -> None:
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"{prefix}.jitter must be in [0, 1), got {self.jitter!r}")
        names = set(self.rtt_ms)
        for a, row in self.rtt_ms.items():
            if not isinstance(row, dict):
                raise ValueError(f"{prefix}.rtt_ms.{a} must be a mapping region -> ms")
            for b, ms in row.items():
                if not isinstance(ms, (int, float)) or ms < 0:
                    raise ValueError(f"{prefix}.rtt_ms.{a}.{b} must be a number >= 0, got {ms!r}")
            missing = names - set(row)
            if missing:
                raise ValueError(f"{prefix}.rtt_ms.{a} lacks {sorted(missing)}: give every pair of regions")
        used = set(self.of.values()) | ({self.region} if self.region else set())
        unknown = used - names
        if unknown:
            raise ValueError(f"{prefix}: region(s) {sorted(unknown)} not in rtt_ms (known: {sorted(names)})")

    def one_way_ms(self, peer_ip: str) -> float:
        theirs = self.of.get(peer_ip)
        if self.region is None or theirs is None:
            return 0.0
        return self.rtt_ms[self.region][theirs] / 2.0


@dataclass
class Bandwidth:
    """Caps in kbit/s (1 kbit = 1000 bit); None: unlimited."""

    up_kbit: float | None = None
    down_kbit: float | None = None

    def validate(self, prefix: str = "bandwidth") -> None:
        for name in ("up_kbit", "down_kbit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not 0 < v <= MAX_RATE_KBIT):
                raise ValueError(f"{prefix}.{name} must be in (0, {MAX_RATE_KBIT:g}] kbit/s or null, got {v!r}")


class TokenBucket:
    """A token bucket in virtual-time form: `reserve(n, now)` books n bytes and returns when the last
    of them has passed. Idle time earns up to `burst` bytes of credit."""

    __slots__ = ("rate", "burst", "free_at")

    def __init__(self, kbit_per_s: float, burst: int = DEFAULT_BURST) -> None:
        self.rate = kbit_per_s * 1000.0 / 8.0  # bytes per second
        self.burst = burst
        self.free_at = 0.0

    def reserve(self, nbytes: int, now: float) -> float:
        start = max(self.free_at, now - self.burst / self.rate)
        self.free_at = start + nbytes / self.rate
        return max(now, self.free_at)


class Shaper:
    """One node's view of the network: what each outgoing message to a peer suffers."""

    def __init__(self, base: LinkModel, regions: Regions, bandwidth: Bandwidth) -> None:
        self.base = base
        self.regions = regions
        self.up: TokenBucket | None = None
        self.down: TokenBucket | None = None
        self.bandwidth = Bandwidth()
        self.set_bandwidth(bandwidth)
        self.loss: dict[str, float] = {}  # planned ip -> loss (chaos fault), on top of base.loss
        self.held: set[str] = set()  # planned ips we cannot reach now (partition)
        self.dropped = {"loss": 0, "partition": 0}  # messages, by cause (metrics)
        self.waited = {"in": 0.0, "out": 0.0}  # seconds messages waited for a bucket, by direction
        self._models: dict[str, LinkModel] = {}
        self._flat = self._is_flat()

    def _is_flat(self) -> bool:
        """No delay, jitter or loss towards any peer (no base model, no regions, no loss fault): then
        no message needs a per-peer model, and none is built (a node of a big host has ~20 peers)."""
        return not self.base.active and self.regions.region is None and not self.loss

    def set_bandwidth(self, bw: Bandwidth) -> None:
        bw.validate()
        self.bandwidth = bw
        self.up = TokenBucket(bw.up_kbit) if bw.up_kbit else None
        self.down = TokenBucket(bw.down_kbit) if bw.down_kbit else None

    def set_loss(self, ips: list[str], loss: float) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss!r}")
        for ip in ips:
            if loss:
                self.loss[ip] = loss
            else:
                self.loss.pop(ip, None)
        self._models.clear()
        self._flat = self._is_flat()

    def model_for(self, ip: str) -> LinkModel:
        """The link model towards planned address `ip`: the node's base link plus the region delay."""
        m = self._models.get(ip)
        if m is None:
            one_way = self.regions.one_way_ms(ip)
            b = self.base
            m = LinkModel(delay_ms=b.delay_ms + one_way, jitter_ms=b.jitter_ms + one_way * self.regions.jitter,
                          loss=1 - (1 - b.loss) * (1 - self.loss.get(ip, 0.0)), distribution=b.distribution)
            self._models[ip] = m
        return m

    @property
    def idle(self) -> bool:
        """No message to any peer needs the emulator (no cap, no partition, no delay or loss)."""
        return self.up is None and not self.held and self._flat

    def shapes(self, ip: str) -> bool:
        """Whether a message to `ip` needs the emulator at all (the fast path skips it)."""
        return self.up is not None or ip in self.held or (not self._flat and self.model_for(ip).active)

    def upload_done(self, nbytes: int, now: float) -> float:
        """When the last of `nbytes` sent now has left through the upload cap."""
        return self._through(self.up, "out", nbytes, now)

    def download_done(self, nbytes: int, now: float) -> float:
        """When the last of `nbytes` received now has come in through the download cap."""
        return self._through(self.down, "in", nbytes, now)

    def _through(self, bucket: TokenBucket | None, direction: str, nbytes: int, now: float) -> float:
        if bucket is None:
            return now
        done = bucket.reserve(nbytes, now)
        self.waited[direction] += done - now
        return done

    def status(self) -> dict[str, object]:
        return {"region": self.regions.region, "up_kbit": self.bandwidth.up_kbit,
                "down_kbit": self.bandwidth.down_kbit, "loss": dict(self.loss), "unreachable": sorted(self.held)}

