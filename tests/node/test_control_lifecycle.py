"""Control calls the harness's timeline uses: block first-seen, pause/resume, shutdown of one node."""

from __future__ import annotations

import socket

import pytest

from test_control import call, host  # noqa: F401  (host is a fixture)


def _connect(lt, a, b) -> None:
    status, _ = call(b.control_address, "POST", "/peers", {"address": a.address})
    assert status == 202
    lt.wait(lambda: any(p.ready for p in a.peers.values()) and any(p.ready for p in b.peers.values()),
            what="b connected to a")


def test_a_mined_block_is_reported_with_its_first_sight_and_delay_on_the_receiver(lt, host):
    a, b = host.nodes.values()
    _connect(lt, a, b)
    _, mined = call(a.control_address, "POST", "/block", {})
    lt.wait(lambda: b.chain.height == 1, what="block reached b")
    status, rec = call(b.control_address, "GET", f"/block/{mined['hash']}")
    assert status == 200
    assert rec["height"] == 1 and rec["from_peer"] == a.address
    assert rec["first_seen_ns"] >= rec["origin_ns"] and rec["propagation_delay_s"] >= 0
    assert call(b.control_address, "GET", "/block/" + "00" * 32)[0] == 404


def test_items_answers_for_many_txs_and_blocks_in_one_request_as_the_single_item_calls_do(lt, host):
    """GET /items: the collector's batch (one request per node instead of one per item and node);
    ControlClient.items splits longer lists into requests of MAX_ITEMS_PER_REQUEST ids."""
    import asyncio

    from harness.backends.client import ControlClient
    from harness.backends.endpoint import Endpoint
    from harness_node.names import MAX_ITEMS_PER_REQUEST

    a, b = host.nodes.values()
    _connect(lt, a, b)
    _, mined = call(a.control_address, "POST", "/block", {})
    txids = [call(a.control_address, "POST", "/tx", {"synthetic": True})[1]["txid"] for _ in range(3)]
    lt.wait(lambda: b.chain.height == 1 and len(b.mempool) == 3, what="the block and the txs at b")
    unseen = "ab" * 32
    status, got = call(b.control_address, "GET", f"/items?tx={','.join(txids + [unseen])}&block={mined['hash']}")
    assert status == 200 and sorted(got["tx"]) == sorted(txids)  # the unseen id is absent
    for txid in txids:
        assert got["tx"][txid] == call(b.control_address, "GET", f"/tx/{txid}")[1]
    assert got["block"] == {mined["hash"]: call(b.control_address, "GET", f"/block/{mined['hash']}")[1]}
    too_many = ",".join(f"{i:064x}" for i in range(MAX_ITEMS_PER_REQUEST + 1))
    status, err = call(b.control_address, "GET", f"/items?tx={too_many}")
    assert status == 400 and str(MAX_ITEMS_PER_REQUEST) in err["error"]
    assert call(b.control_address, "GET", "/items?tx=zz")[0] == 400

    # the harness's client: 250 ids (three requests), answers keyed by (kind, id), unseen -> None
    wanted = [("tx", t) for t in txids] + [("block", mined["hash"])] + [("tx", f"{i:064x}") for i in range(246)]
    ep = Endpoint(b.name, b.config.bind, b.port, f"http://{b.control_address[0]}:{b.control_address[1]}")

    async def ask():
        async with ControlClient("s3cret") as client:
            return await client.items(ep, wanted), await client.item(ep, "tx", txids[0])

    records, single = asyncio.run(ask())
    assert list(records) == wanted
    assert records[("tx", txids[0])] == single and single["from_peer"] == a.address
    assert records[("block", mined["hash"])]["first_seen"] > 0
    assert [k for k, r in records.items() if r is None] == wanted[4:]


def test_a_paused_node_neither_reads_nor_relays_until_resumed(lt, host):
    a, b = host.nodes.values()
    _connect(lt, a, b)
    assert call(b.control_address, "POST", "/pause", {})[0] == 200
    call(a.control_address, "POST", "/tx", {"synthetic": True})
    lt.wait(lambda: a.stats.msgs[("out", "inv")] >= 1, what="a announced the tx to b")
    # unpaused, b would fetch it within milliseconds; paused, it must not for a whole half second
    with pytest.raises(AssertionError, match="timed out"):
        lt.wait(lambda: len(b.mempool) > 0, timeout=0.5, what="b to stay without the tx")
    _, st = call(b.control_address, "GET", "/status")
    assert st["paused"] is True and st["mempool"] == 0
    assert call(b.control_address, "POST", "/resume", {})[0] == 200
    lt.wait(lambda: len(b.mempool) == 1, what="tx reached b after resume")


def test_shutdown_stops_one_node_and_frees_its_ports_while_the_other_keeps_serving(lt, host):
    a, b = host.nodes.values()
    p2p = (b.config.bind, b.port)
    control = b.control_address
    assert call(control, "POST", "/shutdown", {})[0] == 202
    lt.wait(lambda: not b.running, what="b stopped")

    def port_free(addr) -> bool:
        with socket.socket() as s:
            # TIME_WAIT leftovers of closed HTTP connections do not count, only a live listener
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError:
                return False
            return True

    lt.wait(lambda: port_free(p2p) and port_free(control), what="b's ports freed")
    assert call(a.control_address, "GET", "/status")[0] == 200


def test_a_node_stopped_keeping_its_control_site_answers_only_start(lt, host):
    """`POST /shutdown {"keep_control": true}` (the k8s backend's stop_node): the node stops, its
    site stays and answers only `POST /start`, which runs a fresh node of the same config there."""
    a, b = host.nodes.values()
    control = b.control_address
    assert call(control, "POST", "/start", {})[0] == 409  # not stopped
    assert call(control, "POST", "/shutdown", {"keep_control": "yes"})[0] == 400
    assert call(control, "POST", "/shutdown", {"keep_control": True}) == (200, {"status": "stopped"})
    assert not b.running
    with pytest.raises(OSError):  # its P2P listener is closed
        socket.create_connection((b.config.bind, b.port), timeout=5).close()
    assert call(control, "GET", "/status")[0] == 503
    # wait_ready asks a host which of its nodes answer: not this one now
    assert call(a.control_address, "GET", "/host/ready") == (200, {"nodes": {a.name: True}})
    assert call(control, "POST", "/tx", {"synthetic": True})[0] == 409
    assert call(control, "POST", "/start", {}, token=None)[0] == 401
    assert call(control, "POST", "/start", {}) == (200, {"status": "running", "wipe_datadir": False})
    assert call(control, "GET", "/status")[0] == 200 and host.nodes[b.name].running
    assert call(control, "GET", "/host/ready") == (200, {"nodes": {a.name: True, b.name: True}})
    fresh = host.nodes[b.name]  # listening again (this fixture's port 0: a port of its own)
    socket.create_connection((fresh.config.bind, fresh.port), timeout=5).close()
    assert call(a.control_address, "GET", "/status")[0] == 200
