"""What one link costs: the CPU of a TCP connection between two nodes, its handshake and its close.

Run: python bench/bench_links.py [--nodes 200] [--links 5] [--rounds 8]. One process hosts the
nodes (each on its own 127.x.y.1), new ones every round; in a round every node dials `--links`
others, the round waits until every handshake is done, then every link is closed. Printed: the
process's CPU per link (both ends) from the first dial to the last close, min and median over the
rounds, for two kinds of link:
- block-relay: the handshake only (version, verack, wtxidrelay, sendaddrv2, sendheaders, ping, pong);
- outbound-full-relay: the same plus `getaddr` and its answer (~23 of the 100 addresses each node
  holds, placed in the dialler's addrman).

Forming a 10,000-node network opens ~106,000 such links (and places ~2 million addresses), and its
CPU, not the order of events, decides when the last node has its 8 + 2 (docs/benchmarks.md, issue
17). This isolates the per-link part of it from `bench_node.py`'s run-to-run spread.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.peering.peerconfig import PeerConfig
from harness_node.procutil import tune_gc
from harness_node.wire.codec import NetAddr
from scale_workers import KNOWN, PORT, wait_for
from scale_workers import spread_ip as node_ip  # 200 /16 netgroups, as the 10,000-node runs spread nodes


async def links_cpu(nodes: int, links: int, rounds: int, kind: str) -> list[float]:
    """CPU seconds per link (both ends), one figure a round. Each round has nodes of its own, as
    fresh as a forming network's: the addresses an answer brings are new to the dialler (placed in
    its addrman, as while forming), and no dial finds state an earlier round left."""
    per_link = []
    for _ in range(rounds):
        host = Host(NodeConfig(name=f"n{i}", bind=node_ip(i), port=PORT, seed=i,
                               peering=PeerConfig(self_advertise_in_ibd=False)) for i in range(nodes))
        members = list(host.nodes.values())
        now = int(time.time())
        for i, node in enumerate(members):
            known = random.Random(i).sample(range(nodes, nodes + 3000), KNOWN)
            node.connman.addrman.add([NetAddr(node_ip(j), PORT, 9, now - 3600) for j in known],
                                     source_ip="127.1.1.1")
        try:
            for node in members:
                await node.start()  # listening; no automatic dials (start_dialling is never called)
            cpu0 = time.process_time()
            await asyncio.gather(*(members[i].open_connection(node_ip((i + k) % nodes), PORT, kind=kind)
                                   for i in range(nodes) for k in range(1, links + 1)))
            # each poll walks every peer: every 50 ms, ~1 % of the CPU measured
            await wait_for(lambda: sum(len(n.peers) for n in members) == 2 * nodes * links
                           and all(p.verack_received for n in members for p in n.peers.values()),
                           60, "every handshake", 0.05)
            await asyncio.sleep(0.05)  # the getaddr answers (sent after the handshake) arrive
            for node in members:
                for peer in list(node.peers.values()):
                    peer.disconnect("bench")
            await wait_for(lambda: not any(n.peers for n in members), 60, "every link closed", 0.05)
            per_link.append((time.process_time() - cpu0) / (nodes * links))
        finally:
            await host.stop()
    return per_link


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--links", type=int, default=5, help="dials per node and round")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()  # as the host processes run
    except ImportError:
        pass
    tune_gc()
    for kind in ("block-relay", "outbound-full-relay"):
        per = asyncio.run(links_cpu(args.nodes, args.links, args.rounds, kind))
        print(f"{kind:<20} {args.nodes * args.links} links a round: CPU per link (both ends) "
              f"min {min(per) * 1e6:.0f} us, median {statistics.median(per) * 1e6:.0f} us")


if __name__ == "__main__":
    main()
