"""One request per block in flight, as Core's mapBlocksInFlight (net_processing.cpp).

A block announced by several peers (each headers-first peer sends its headers as soon as it has
the block) is asked of the first announcer only; the others are remembered as having it (their
known inventory) and one of them is asked when that request fails: the peer leaves, answers
`notfound`, or has not delivered within the download timeout. Asking every announcer, as the testbed
did before, made each node of a 10,000-node network download and parse every block 1.5 to 9 times
at the moment it reached most of them (docs/benchmarks.md, issue 17, seventeenth round).

Core's timeout is a block interval (10 min) plus half of one for each other peer it downloads from,
after which it disconnects the staller; the testbed asks another announcer instead, after
`block_download_timeout` (timing.py, scaled). Core lets up to 3 peers send one block at once only for compact
blocks (BIP152), which the testbed does not speak. Decisions only: relay.py sends the requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

MAX_BLOCKS_IN_FLIGHT = 10_000  # testbed: requests remembered (the oldest forgotten: asked again if announced)


class Asked(Protocol):
    """A peer as this module reads it."""

    @property
    def ready(self) -> bool: ...


class BlocksInFlight:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.asked: dict[bytes, tuple[Asked, float]] = {}  # block hash -> (the peer asked, deadline)

    def claim(self, h: bytes, peer: Asked, now: float) -> bool:
        """`peer` announced block `h`: True (and recorded) if it is to be asked now, False while
        another live peer's request for it runs."""
        current = self.asked.get(h)
        if current is not None and current[0] is not peer and current[0].ready and current[1] > now:
            return False
        self.asked[h] = (peer, now + self.timeout)
        while len(self.asked) > MAX_BLOCKS_IN_FLIGHT:
            del self.asked[next(iter(self.asked))]
        return True

    def done(self, h: bytes) -> None:
        """The block arrived (from whichever peer), or its request failed."""
        self.asked.pop(h, None)

    def asked_of(self, peer: Asked) -> list[bytes]:
        return [h for h, (p, _) in self.asked.items() if p is peer]

    def expired(self, now: float) -> list[tuple[bytes, Asked]]:
        """(block, the peer asked) of every request past its deadline or to a peer no longer ready."""
        return [(h, p) for h, (p, deadline) in self.asked.items() if deadline <= now or not p.ready]


def next_announcer(h: bytes, peers: Iterable[Asked], knows: Callable[[Asked, bytes], bool],
                   asked_before: Callable[[Asked, bytes], bool], failed: Asked | None) -> Asked | None:
    """Whom to ask for block `h` after a request to `failed` failed: a live peer that announced it,
    one not asked for it before if there is one."""
    having = [p for p in peers if p is not failed and p.ready and knows(p, h)]
    fresh = [p for p in having if not asked_before(p, h)]
    return (fresh or having or [None])[0]
