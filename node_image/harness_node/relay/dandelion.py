"""Dandelion++ stem phase (protocol.md §5; not in Bitcoin Core): the ``dandelion`` relay policy.

Per epoch (``timers.dandelion_epoch``, 10 min × time_scale) a node picks ``stem_relays`` (1 or 2)
of its outbound full-relay peers that run Dandelion (they advertise NODE_DANDELION and our user
agent: testbed adaptation 3) as stem relays. Each peer that sends us stem transactions is mapped
pseudo-randomly to one relay for the epoch (Dandelion++'s per-edge routing), and our own
transactions always take one fixed relay (Dandelion++: it stops a spy from intersecting several
paths of one origin). A stem transaction is forwarded with probability 1 − q and fluffed with
probability q (BIP 156's per-hop coin); every node on the stem keeps it in a stem pool, outside the
mempool (so it is never announced and never served by ``getdata``), with its own embargo timer
(``dandelion_embargo`` + Exp(``dandelion_embargo_mean``)): if the transaction has not come back to
it through normal relay when the timer fires, it fluffs it itself — the fail-safe against a relay
that drops stem transactions. A stem that comes back to a node holding it (a cycle in the stem
graph) is fluffed there at once. Fluffing hands the transaction to ``Relay.accept_tx``: into the
mempool, then Core's diffusion.

A relay that disconnects mid-epoch is replaced at once from the remaining candidates, and a node
that starts with no candidates fills its relays as outbound peers arrive; with none at all it
fluffs (so a network mixing Dandelion and other nodes still delivers everything: a non-Dandelion
peer is never a stem relay and never receives ``dandeliontx``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from .. import USER_AGENT
from ..names import DANDELION_FLUFF_CAUSES
from ..net.peer import Peer
from ..wire.codec import hash_to_hex
from ..wire.messages import NODE_DANDELION, msg_dandeliontx
from ..wire.primitives import Tx
from .relay import RelayHost

MAX_STEM_POOL = 50_000  # testbed bound: a stem pool never outgrows Core's known-inventory filter
# outbound full-relay links, automatic or manual (net/peer.py OUTBOUND_KINDS); never block-relay-only,
# feeler or addr-fetch links. (This once said "full-relay", a kind no peer has: in networks built by
# the connection manager no node had a stem relay and every own transaction fluffed at once.)
STEM_RELAY_KINDS = frozenset({"outbound-full-relay", "manual"})
OUR_AGENT_PREFIX = USER_AGENT.split(":")[0] + ":"  # "/harness-node:", any version


@dataclass
class DandelionConfig:
    """``dandelion:`` in a node config. Read only under ``relay_policy: dandelion``."""

    fluff_probability: float = 0.1  # q; BIP 156 10 %, Dandelion++ q <= 0.2, Monero 20 %
    stem_relays: int = 2  # per epoch; BIP 156 and Dandelion++ 2, Grin 1

    def validate(self) -> None:
        q = self.fluff_probability
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= q <= 1.0:
            raise ValueError(f"dandelion.fluff_probability must be a number in [0, 1], got {q!r}")
        if isinstance(self.stem_relays, bool) or self.stem_relays not in (1, 2):
            raise ValueError(f"dandelion.stem_relays must be 1 or 2, got {self.stem_relays!r}")


class Fluffer(Protocol):
    """What the stem needs from normal relay (relay.Relay is one)."""

    def accept_tx(self, tx: Tx, from_peer: Peer | None) -> bool: ...
    def mark_known(self, peer: Peer, *hashes: bytes) -> None: ...


def supports_dandelion(peer: Peer) -> bool:
    return bool(peer.services & NODE_DANDELION) and peer.user_agent.startswith(OUR_AGENT_PREFIX)


@dataclass
class StemEntry:
    tx: Tx
    from_peer: Peer | None  # None: our own transaction
    embargo: Any  # asyncio.TimerHandle


class Dandelion:
    def __init__(self, node: RelayHost, relay: Fluffer, config: DandelionConfig) -> None:
        self.node = node
        self.relay = relay
        self.q = float(config.fluff_probability)
        self.n_relays = config.stem_relays
        self.epoch = 0
        self.relays: list[Peer] = []
        self.routes: dict[int, Peer] = {}  # sending peer id -> its relay this epoch
        self.own_relay: Peer | None = None
        self.stempool: dict[bytes, StemEntry] = {}  # txid -> entry, never announced
        self.stems = 0  # stem transactions we forwarded (ours and others')
        self.fluffs: Counter[str] = Counter({cause: 0 for cause in DANDELION_FLUFF_CAUSES})
        self._epoch_timer: Any = None

    # --- epochs ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._new_epoch()

    def _new_epoch(self) -> None:
        """Forget the relays and the routes; the next stem transaction picks new ones."""
        self.epoch += 1
        self.relays, self.routes, self.own_relay = [], {}, None
        self._fill_relays()
        self._epoch_timer = self.node.loop.call_later(self.node.timers.dandelion_epoch, self._new_epoch)

    def _candidates(self) -> list[Peer]:
        return [p for p in self.node.peers.values()
                if not p.inbound and p.kind in STEM_RELAY_KINDS and p.ready and p.relay and supports_dandelion(p)]

    def _fill_relays(self) -> None:
        """Drop relays that went away, top up to `n_relays` from the candidates (uniformly)."""
        live = [p for p in self.relays if p.ready and p.id in self.node.peers]
        if len(live) < len(self.relays):
            self.routes = {k: r for k, r in self.routes.items() if r in live}
            if self.own_relay not in live:
                self.own_relay = None
        spare = [p for p in self._candidates() if p not in live]
        while len(live) < self.n_relays and spare:
            live.append(spare.pop(self.node.rng.randrange(len(spare))))
        self.relays = live

    def _route(self, from_peer: Peer | None) -> Peer | None:
        """The relay for transactions from `from_peer` (None: ours) this epoch; None if we have none."""
        self._fill_relays()
        if not self.relays:
            return None
        if from_peer is None:
            if self.own_relay is None:
                self.own_relay = self.node.rng.choice(self.relays)
            return self.own_relay
        relay = self.routes.get(from_peer.id)
        if relay is None:
            # never hand a stem straight back to the peer it came from, if there is a choice
            choice = [r for r in self.relays if r is not from_peer] or self.relays
            relay = self.routes[from_peer.id] = self.node.rng.choice(choice)
        return relay

    # --- transactions ----------------------------------------------------------------------------

    def originate(self, tx: Tx) -> bool:
        """Our own transaction (injected): start its stem. False if we already have it."""
        if self.node.mempool.known(tx.txid) or tx.txid in self.stempool:
            return False
        self._stem(tx, None)
        return True

    def on_stem_tx(self, peer: Peer, tx: Tx) -> None:
        """A peer handed us a stem transaction (`dandeliontx`)."""
        self.relay.mark_known(peer, tx.txid, tx.wtxid)
        if tx.n_in == 0 or tx.n_out == 0:
            peer.misbehaving("dandelion-invalid")
            return
        if self.node.mempool.known(tx.txid):
            return  # already fluffed
        if tx.txid in self.stempool:
            # the stem came back to us: a cycle. Fluff now rather than stall every stem node until
            # an embargo timer fires (Grin's "Dandelion cycle fix", Monero's loop detection)
            self._fluff(tx, peer, "loop")
            return
        if self.node.rng.random() < self.q:
            self._fluff(tx, peer, "coin")
        else:
            self._stem(tx, peer)

    def _stem(self, tx: Tx, from_peer: Peer | None) -> None:
        relay = self._route(from_peer)
        if relay is None or len(self.stempool) >= MAX_STEM_POOL:
            self._fluff(tx, from_peer, "no-relay")
            return
        node = self.node
        delay = node.timers.dandelion_embargo + node.rng.expovariate(1.0 / node.timers.dandelion_embargo_mean) \
            if node.timers.dandelion_embargo_mean > 0 else node.timers.dandelion_embargo
        embargo = node.loop.call_later(delay, self._embargo_fired, tx.txid)
        self.stempool[tx.txid] = StemEntry(tx, from_peer, embargo)
        # the relay is NOT marked as knowing it: it holds it in its stem pool, not its mempool, and our
        # fluff's announcement is how it learns the stem ended (then its embargo timer stands down)
        self.stems += 1
        relay.send(msg_dandeliontx(tx))

    def _embargo_fired(self, txid: bytes) -> None:
        entry = self.stempool.pop(txid, None)
        if entry is None or self.node.mempool.known(txid):
            return  # it came back through normal relay: the stem worked
        self._fluff(entry.tx, entry.from_peer if entry.from_peer and entry.from_peer.ready else None, "embargo")

    def _fluff(self, tx: Tx, from_peer: Peer | None, cause: str) -> None:
        entry = self.stempool.pop(tx.txid, None)
        if entry is not None:
            entry.embargo.cancel()
        self.fluffs[cause] += 1
        self.relay.accept_tx(tx, from_peer)

    def stop(self) -> None:
        if self._epoch_timer is not None:
            self._epoch_timer.cancel()
            self._epoch_timer = None
        for entry in self.stempool.values():
            entry.embargo.cancel()
        self.stempool.clear()

    def status(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "fluff_probability": self.q,
                "relays": [p.address for p in self.relays],
                "own_relay": self.own_relay.address if self.own_relay else None,
                "routes": {str(k): r.address for k, r in self.routes.items()},
                "stempool": [hash_to_hex(t) for t in list(self.stempool)[:100]], "stempool_size": len(self.stempool),
                "stems": self.stems, "fluffs": dict(self.fluffs)}
