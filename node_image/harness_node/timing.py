"""Every protocol timer, with Bitcoin Core's value and source, scaled by one `time_scale` factor.

`time_scale` < 1 compresses time (0.001 turns the 24 h ban into 86.4 s) so that a scenario of a
few minutes can exercise day-long behaviour (protocol.md, testbed adaptation 5). Timers that exist
only to bound resource use (handshake timeout) are scaled too, so ratios between timers hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

# name: seconds at time_scale 1.0                      # source
CORE_TIMERS: dict[str, float] = {
    "ping_interval": 120.0,                 # net_processing.cpp PING_INTERVAL (2 min)
    "ping_timeout": 1200.0,                 # net.h TIMEOUT_INTERVAL (20 min outstanding ping)
    "handshake_timeout": 60.0,              # net.h DEFAULT_PEER_CONNECT_TIMEOUT (-peertimeout)
    "inactivity_timeout": 1200.0,           # net.h TIMEOUT_INTERVAL (no send/receive for 20 min)
    "inbound_inv_mean": 5.0,                # net_processing.cpp INBOUND_INVENTORY_BROADCAST_INTERVAL
    "outbound_inv_mean": 2.0,               # net_processing.cpp OUTBOUND_INVENTORY_BROADCAST_INTERVAL
    "addr_send_mean": 30.0,                 # net_processing.cpp AVG_ADDRESS_BROADCAST_INTERVAL
    "self_advertise_mean": 86400.0,         # net_processing.cpp AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL
    "max_tip_age": 86400.0,                 # validation.h DEFAULT_MAX_TIP_AGE (-maxtipage): older tip = IBD
    "feeler_mean": 120.0,                   # net.h FEELER_INTERVAL (2 min)
    "extra_block_relay_mean": 300.0,        # net.h EXTRA_BLOCK_RELAY_ONLY_PEER_INTERVAL
    "connect_loop": 0.5,                    # net.cpp ThreadOpenConnections 500 ms
    "bantime": 86400.0,                     # banman.h DEFAULT_MISBEHAVING_BANTIME
    "dns_seed_delay": 11.0,                 # net.cpp DNSSEEDS_DELAY_FEW_PEERS
    "dns_seed_delay_many": 300.0,           # net.cpp DNSSEEDS_DELAY_MANY_PEERS
    "dns_seed_retry": 1.0,                  # testbed: first wait before asking a seed again (addr/bootstrap.py)
    "fixed_seed_delay": 60.0,               # net.cpp: fixed seeds after 1 min
    "getaddr_cache": 21 * 3600.0,           # net.h ADDRMAN cache 21 h (+ U(0, 6 h))
    "getaddr_cache_jitter": 6 * 3600.0,     # net.cpp
    "addr_token_rate": 0.1,                 # net_processing.cpp MAX_ADDR_RATE_PER_SECOND (per second; inverse-scaled)
    "tx_relay_cache": 900.0,                # net_processing.cpp RELAY_TX_CACHE_TIME (15 min)
    "getdata_tx_interval": 60.0,            # txdownloadman.h GETDATA_TX_INTERVAL
    "block_download_timeout": 600.0,        # net_processing.cpp BLOCK_DOWNLOAD_TIMEOUT_BASE (a block interval)
    "nonpref_tx_delay": 2.0,                # txdownloadman.h NONPREF_PEER_TX_DELAY (inbound announcers)
    "dandelion_epoch": 600.0,               # BIP156 / Dandelion++ epoch (10 min)
    "dandelion_embargo": 10.0,              # BIP156 embargo base 10 s (+ exp(20 s))
    "dandelion_embargo_mean": 20.0,         # BIP156 embargo exponential part
    "seeder_retry": 1000.0,                 # bitcoin-seeder MIN_RETRY
    "seeder_timeout": 30.0,                 # bitcoin-seeder connect timeout
}


@dataclass(frozen=True)
class Timers:
    """The scaled timers of one node. Rates (per second) are divided by the scale, periods multiplied."""

    ping_interval: float
    ping_timeout: float
    handshake_timeout: float
    inactivity_timeout: float
    inbound_inv_mean: float
    outbound_inv_mean: float
    addr_send_mean: float
    self_advertise_mean: float
    max_tip_age: float
    feeler_mean: float
    extra_block_relay_mean: float
    connect_loop: float
    bantime: float
    dns_seed_delay: float
    dns_seed_delay_many: float
    dns_seed_retry: float
    fixed_seed_delay: float
    getaddr_cache: float
    getaddr_cache_jitter: float
    addr_token_rate: float
    tx_relay_cache: float
    getdata_tx_interval: float
    block_download_timeout: float
    nonpref_tx_delay: float
    dandelion_epoch: float
    dandelion_embargo: float
    dandelion_embargo_mean: float
    seeder_retry: float
    seeder_timeout: float
    time_scale: float = 1.0

    @classmethod
    def scaled(cls, time_scale: float = 1.0, **overrides: float) -> "Timers":
        """Core's timers times `time_scale`; `overrides` are unscaled seconds for single timers."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        unknown = set(overrides) - set(CORE_TIMERS)
        if unknown:
            raise ValueError(f"unknown timer(s) {sorted(unknown)}; known: {sorted(CORE_TIMERS)}")
        values = {}
        for name, base in CORE_TIMERS.items():
            if name in overrides:
                values[name] = float(overrides[name])
            elif name == "addr_token_rate":
                values[name] = base / time_scale
            else:
                values[name] = base * time_scale
        return cls(time_scale=time_scale, **values)


TIMER_NAMES = [f.name for f in fields(Timers) if f.name != "time_scale"]


class Clock:
    """A node's wall clock, possibly skewed (a chaos fault): what its version timestamps, addr times
    and ban expiries read. `skew` is seconds added to the host's clock; it may change at run time."""

    __slots__ = ("skew",)

    def __init__(self, skew: float = 0.0) -> None:
        self.skew = float(skew)

    def __call__(self) -> float:
        return time.time() + self.skew
