"""Which service handles each message command: the table a node registers with its peers.

Core's on_<msg> idea placed where the services are: a Peer hands every message it does not handle
itself (handshake, keep-alive) to the handler registered here for its command. node.py builds the
services and calls these; nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..addr.addrservice import AddrService
from ..net.peer import Peer
from .dandelion import Dandelion
from .relay import Relay

Handler = Callable[[Peer, Any], None]


def message_handlers(relay: Relay, addrs: AddrService, dandelion: Dandelion | None) -> dict[str, Handler]:
    """command -> handler(peer, decoded message)."""
    return {
        "addr": lambda p, m: addrs.on_addr(p, m.addrs),
        "addrv2": lambda p, m: addrs.on_addr(p, m.addrs),
        "getaddr": lambda p, m: addrs.on_getaddr(p),
        "inv": lambda p, m: relay.on_inv(p, m.inv),
        "getdata": lambda p, m: relay.on_getdata(p, m.inv),
        "notfound": lambda p, m: relay.on_notfound(p, m.inv),
        "tx": lambda p, m: relay.on_tx(p, m.tx),
        "block": lambda p, m: relay.on_block(p, m.block),
        "headers": lambda p, m: relay.on_headers(p, m.headers),
        "getheaders": lambda p, m: relay.on_getheaders(p, m.locator, m.hash_stop),
        # a stem tx: only Dandelion peers are sent one (we advertise NODE_DANDELION only under that
        # policy); a node without the policy takes it as a plain tx, so it is never lost
        "dandeliontx": lambda p, m: (dandelion.on_stem_tx if dandelion is not None else relay.on_tx)(p, m.tx),
    }


def payload_handlers(relay: Relay) -> dict[str, Callable[[Peer, bytes], bool]]:
    """command -> handler(peer, raw payload), tried before decoding (Peer.receive): True if it took
    the message. Flood relay's one-entry invs are read straight from their 37 bytes."""
    return {"inv": relay.on_one_inv}
