"""bitcoind members on the docker backend, on the real engine with the real binary
(scripts/fetch-bitcoind.sh; with CI=true a missing engine, base image or binary fails).

Six light nodes and two bitcoinds, each bitcoind alone in a container of the bitcoind image (the
node image, built from the base, with the binary copied in). A wallet payment of bitcoind-0 reaches
bitcoind-1 byte-identical through the light nodes; both sides of every bitcoind link name planned
addresses (the transport tables: a light node attributes the bitcoind's container IP to its planned
address, the bitcoind reports its peers by theirs); `down` leaves nothing labelled with the run.
Only objects of this test's run are touched; the bitcoind image it built is removed at the end.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from harness.backends.client import ControlClient
from harness.backends.docker import engine
from harness.backends.registry import make_backend
from harness.run.rundir import RunDir
from tests.harness.docker_bitcoind import bitcoind_run
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.bitcoind, pytest.mark.timeout(900)]

TAG = "harness-node:test-docker-bitcoind"
RELAY_TIMEOUT = 180.0  # the payment through the light nodes, on a shared engine (both wallets funded at deploy)
wait = partial(wait_until, interval=1.0)
SCENARIO = """\
name: docker-bitcoind
seed: 5
duration: 5m
network:
  nodes: 6
  bitcoind: 2
  magic: dab5bffa
  time_scale: 0.05
  outbound_full_relay: 3
  block_relay: 0
"""


def _run(coro: Any) -> Any:
    return asyncio.run(coro)




def test_bitcoind_members_in_containers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with bitcoind_run(tmp_path, monkeypatch, TAG, SCENARIO) as run:
        client, state, bitcoind_image = run.client, run.state, run.bitcoind_image
        token = state.control_token or ""
        be = make_backend("docker", RunDir(run.run_dir))
        plan = be.plan
        eps = be.node_endpoints()
        containers = {c.labels["harness.io/member"]: c for c in engine.of_run(client, state.run_id)[0]}
        for name in ("bitcoind-0", "bitcoind-1"):
            assert containers[name].image.tags == [bitcoind_image]
            assert containers[name].labels["harness.io/role"] == "bitcoind"
            assert not eps[name].address.startswith("127.")  # it answers at its container IP

        async def pay() -> str:
            async with ControlClient(token) as c:
                return await c.inject_tx(eps["bitcoind-0"])

        txid = _run(pay())

        async def seen() -> Any:
            try:
                async with ControlClient(token, timeout=5.0, retries=0) as c:
                    return await c.item(eps["bitcoind-1"], "tx", txid)
            except Exception:  # noqa: BLE001 - a member not answering yet
                return None

        wait(lambda: _run(seen()), RELAY_TIMEOUT, f"{txid} at bitcoind-1")
        raw = [containers[n].exec_run(["python3", "-c", _RAW.format(txid=txid)]).output.decode().strip()
               for n in ("bitcoind-0", "bitcoind-1")]
        assert raw[0] and raw[0] == raw[1], raw

        async def statuses() -> dict[str, Any]:
            async with ControlClient(token) as c:
                return await c.gather(list(eps.values()), c.status)

        by_name = _run(statuses())
        planned = {n.address: n.name for n in plan.peers()}
        for name in ("bitcoind-0", "bitcoind-1"):
            spec = plan.node(name)
            peers = by_name[name]["peers"]
            # it dialled its planned light nodes and reports them by their planned addresses
            assert sorted(p["address"] for p in peers if p["direction"] == "outbound") == sorted(spec.config["connect"])
            assert by_name[name]["address"] == f"{spec.address}:{spec.p2p_port}"
            # each of those light nodes attributes the bitcoind's container IP to its planned address
            for peer in spec.config["connect"]:
                light = planned[peer.rpartition(":")[0]]
                inbound = {p["address"].rsplit(":", 1)[0] for p in by_name[light]["peers"] if p["direction"] == "inbound"}
                assert spec.address in inbound, (light, inbound)


# Inside a bitcoind container: the raw tx from its own RPC (the supervisor's config has the credentials).
_RAW = """\
import json
from harness_node.bitcoind.launch import RPC
c = json.load(open("/etc/harness-node/bitcoind.json"))
print(RPC(c["address"], c["rpc_port"], c["control_token"])("getrawtransaction", "{txid}"))
"""
