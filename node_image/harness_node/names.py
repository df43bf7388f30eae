"""The node's vocabularies, in one place: the node validates its config against these tuples and the
harness (scenario schema, planner, actions) imports them, so a name is never spelled twice.

A leaf module: it imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations

# How a node relays transactions (relay/): flood = announce to every peer at once; diffusion =
# Core's Poisson-timer trickle (inbound mean 5 s shared, outbound 2 s per peer); dandelion =
# Dandelion++ (relay/dandelion.py): a stem along per-epoch relays, then diffusion (not in Core).
RELAY_POLICIES: tuple[str, ...] = ("flood", "diffusion", "dandelion")

# Why a Dandelion node fluffed a stem tx: its coin came up q, its embargo timer fired, it had no
# stem relay (no Dandelion-capable outbound peer), or the stem came back to it (a cycle).
DANDELION_FLUFF_CAUSES: tuple[str, ...] = ("coin", "embargo", "no-relay", "loop")

# What a node does when a peer's misbehaviour score reaches 100 (peering/misbehaviour.py):
# "ban" as Core <= 0.20.0 (banlist for bantime), "discourage" as 0.20.1-27.x (disconnect,
# discourage the address), "disconnect" as 28.0+ (any misbehaviour disconnects and discourages).
MISBEHAVIOUR_POLICIES: tuple[str, ...] = ("ban", "discourage", "disconnect")

# Countermeasure switches (peering config): each of Core's defences can be turned off alone.
COUNTERMEASURES: tuple[str, ...] = (
    "feelers", "anchors", "test_before_evict", "netgroup_diversity", "tried_table",
    "getaddr_cache", "addr_rate_limit", "inbound_netgroup_eviction", "inbound_not_tried",
)

# Named sets of switches, selectable as `countermeasures: <profile>` (scenario and node config);
# each maps to the switches it turns off (every other one stays on). "current" is today's Core.
# "legacy" is bitcoind 0.9.3, the version Heilman et al. (2015) eclipsed: inbound peers' addresses
# entered tried (#8594 stopped it), no feelers (#8282, 0.13), no anchors (#17428, 0.21), no
# test-before-evict (#9037), and -- also absent then -- no addr rate limit (#22387), no cached
# getaddr answer (#18991) and no inbound eviction protecting netgroups (0.12).
COUNTERMEASURE_PROFILES: dict[str, tuple[str, ...]] = {
    "current": (),
    "legacy": ("inbound_not_tried", "feelers", "anchors", "test_before_evict", "addr_rate_limit",
               "getaddr_cache", "inbound_netgroup_eviction"),
}


def countermeasure_switches(profile: str) -> dict[str, bool]:
    """Every switch of a profile; KeyError for an unknown profile name."""
    off = COUNTERMEASURE_PROFILES[profile]
    return {name: name not in off for name in COUNTERMEASURES}

# The DNS seeder's answer modes (seeder/modes.py).
SEEDER_MODES: tuple[str, ...] = ("honest", "poison", "mixed", "stale", "empty", "nxdomain", "slow")

# Item ids per `GET /items` (api/items.py; the harness's collector batches by it): 100 ids of 64 hex
# digits keep the request line (~6.6 kB) under aiohttp's 8,190-byte limit.
MAX_ITEMS_PER_REQUEST = 100
