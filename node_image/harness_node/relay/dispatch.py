"""Which service handles each message command: the table a node registers with its peers.

Core's on_<msg> idea placed where the services are: a Peer hands every message it does not handle
itself (handshake, keep-alive) to the handler registered here for its command. node.py builds the
services; the tables here are shared by every node of a process and keep no state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..addr.addrservice import AddrService
from ..net.peer import Peer
from .dandelion import Dandelion
from .relay import Relay

Handler = Callable[[Any, Any], None]  # (peer, decoded message); the peer's owner is a `Services`


class Services(Protocol):
    """What the handlers reach through a peer's owner (node.py's Node is one)."""

    relay: Relay
    addrs: AddrService
    dandelion: Dandelion | None


# command -> handler(peer, decoded message), one table for every node of the process: the services
# are reached through the peer's owner, not closed over, so a node holds no handler of its own (a
# closure per command per node was ~2 kB of each of 10,000 nodes). Read-only by convention: no one
# registers into it.
MESSAGE_HANDLERS: dict[str, Handler] = {
    "addr": lambda p, m: p.owner.addrs.on_addr(p, m.addrs),
    "addrv2": lambda p, m: p.owner.addrs.on_addr(p, m.addrs),
    "getaddr": lambda p, m: p.owner.addrs.on_getaddr(p),
    "inv": lambda p, m: p.owner.relay.on_inv(p, m.inv),
    "getdata": lambda p, m: p.owner.relay.on_getdata(p, m.inv),
    "notfound": lambda p, m: p.owner.relay.on_notfound(p, m.inv),
    "tx": lambda p, m: p.owner.relay.on_tx(p, m.tx),
    "block": lambda p, m: p.owner.relay.on_block(p, m.block),
    "headers": lambda p, m: p.owner.relay.on_headers(p, m.headers),
    "getheaders": lambda p, m: p.owner.relay.on_getheaders(p, m.locator, m.hash_stop),
    # a stem tx: only Dandelion peers are sent one (we advertise NODE_DANDELION only under that
    # policy); a node without the policy takes it as a plain tx, so it is never lost
    "dandeliontx": lambda p, m: _stem_tx(p.owner, p, m.tx),
}

# command -> handler(peer, raw payload), tried before decoding (Peer.receive): True if it took the
# message. Flood relay's one-entry invs are read straight from their 37 bytes, and a one-header
# `headers` for a block the node holds from its 82. Shared, as above.
PAYLOAD_HANDLERS: dict[str, Callable[[Any, bytes], bool]] = {
    "inv": lambda p, payload: p.owner.relay.on_one_inv(p, payload),
    "headers": lambda p, payload: p.owner.relay.on_one_header(p, payload),
}


def _stem_tx(services: Services, peer: Peer, tx: Any) -> None:
    if services.dandelion is not None:
        services.dandelion.on_stem_tx(peer, tx)
    else:
        services.relay.on_tx(peer, tx)
