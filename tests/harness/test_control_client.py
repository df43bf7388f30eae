"""The control client against a real aiohttp server on loopback that answers late, as a host process
of 800 nodes does when its loop lags seconds (mainnet-scale: one `inject_block` timed out at 5 s)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.endpoint import Endpoint

LATE = 0.6  # seconds every POST takes to answer
SHORT = 0.3  # the client's ordinary per-request timeout in this test (5 s in a run)


async def _serve_late(posts: dict[str, int]) -> tuple[web.AppRunner, Endpoint]:
    async def late(request: web.Request) -> web.Response:
        posts[request.path] = posts.get(request.path, 0) + 1
        await asyncio.sleep(LATE)  # the lagging loop, not a wait for a condition
        return web.json_response({"hash": "00" * 32, "txid": "11" * 32, "status": "ok"})

    app = web.Application()
    app.router.add_post("/block", late)
    app.router.add_post("/tx", late)
    app.router.add_post("/pause", late)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, Endpoint("node-0", "127.0.0.1", 18444, f"http://127.0.0.1:{port}")


def test_injections_wait_for_a_late_answer_and_are_sent_once_while_other_posts_time_out() -> None:
    posts: dict[str, int] = {}

    async def main() -> tuple[str, str, ControlAPIError | None]:
        runner, ep = await _serve_late(posts)
        try:
            async with ControlClient(timeout=SHORT) as client:
                block = await client.mine_block(ep)
                txid = await client.inject_tx(ep)
                try:
                    await client.pause(ep)
                    timed_out = None
                except ControlAPIError as e:
                    timed_out = e
            return block, txid, timed_out
        finally:
            await runner.cleanup()

    block, txid, timed_out = asyncio.run(main())
    assert (block, txid) == ("00" * 32, "11" * 32)
    # the ordinary timeout applies to other calls (so the injections' own is what let them through)
    assert timed_out is not None and "Timeout" in timed_out.reason
    # a POST is never retried: one block, one tx, one pause reached the node
    assert posts == {"/block": 1, "/tx": 1, "/pause": 1}
