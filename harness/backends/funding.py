"""Fund the bitcoind members' wallets while a run gets ready, one member after the other.

A bitcoind member pays from a coinbase, which is spendable only 100 blocks after it was mined, so
a wallet's first payment needs 101 blocks mined first. Mined at the first payment, those blocks
raced the payment through the light network, and a bitcoind that had not yet connected them
dropped the payment for good: Bitcoin Core's lineage ignores a transaction that arrives during its
initial block download, and keeps one whose inputs it cannot see only as an orphan, which the
arrival of the block that creates them does not resolve (measured with this repository's bitcoind,
docs/bitcoind.md). Nothing relays a transaction twice, so the payment never reached that bitcoind
(a CI run of tests/harness/test_docker_bitcoind.py waited 180 s for it).

So each member mines its 101 blocks in turn (POST /fund; none if it can pay already) and the next
one starts only when every bitcoind member has connected that tip: they all extend one chain, and
every later payment spends coins every bitcoind can see. The timeline's clock then starts after
the mining, not inside a first payment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.endpoint import Endpoint
from harness.errors import BackendError

FUND_TIMEOUT_SECONDS = 180.0  # per member: 101 blocks through the light nodes on a loaded 2-core machine
FUND_POLL_SECONDS = 0.5


async def fund_wallets(client: ControlClient, members: Sequence[Endpoint],
                       timeout: float = FUND_TIMEOUT_SECONDS) -> None:
    """Fund each bitcoind member in turn; after each, wait until all of them have its tip.
    BackendError naming the members without it after ``timeout`` seconds."""
    for ep in members:
        answer = await client.fund(ep)
        await _until_everyone_has(client, members, ep.name, answer["tip"], answer["height"], timeout)


async def _until_everyone_has(client: ControlClient, members: Sequence[Endpoint], funder: str, tip: str,
                              height: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = await client.gather(list(members), lambda ep: client.item(ep, "block", tip))
        missing = [name for name, record in seen.items() if record is None or isinstance(record, ControlAPIError)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BackendError(f"{', '.join(sorted(missing))} did not connect {funder}'s funding blocks "
                               f"(tip {tip}, height {height}) within {timeout:.0f} s; see their logs "
                               f"(`harness logs`) and `harness status`")
        await asyncio.sleep(FUND_POLL_SECONDS)
