"""bench_node.py beyond one process: N nodes spread over K host processes (each within its own
open-files limit), driven over stdin/stdout with one JSON line per message.

The coordinator (`run`) starts K workers (`python bench/scale_workers.py K k N`); each hosts nodes
i with i % K == k on 127.{20 + i % 200}.{i // 200}.1 with 100 random addresses in its addrman, so
the connection manager fills Core's 8 full-relay + 2 block-relay slots, one per netgroup, across
processes; they follow Core's rule of no self-announcement in initial block download. Commands:
dial, inject, watch <txid>, burst <count>, stop. Each worker reports twice a second: nodes with
all 10 slots, RSS, CPU seconds (of them the kernel's, and those spent in the garbage collector,
with its full collections), messages, event-loop lag (p99 of the last 5 s of the process's own
lag monitor, net/looplag.py, the one behind the lag metric), and, for every
watched tx, how many of its nodes hold it and when the last one got it (wall clock, comparable
across processes).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PORT = 18444
KNOWN = 100
REPORT_EVERY = 0.5


def spread_ip(i: int) -> str:
    """Node i on its own 127.a.b.1, over 200 /16 netgroups (netgroup diversity can be satisfied)."""
    return f"127.{20 + i % 200}.{i // 200}.1"


def steal_s() -> float:
    """CPU seconds the hypervisor has given other guests instead of this machine since boot (the
    `steal` column of /proc/stat; 0 where there is none): the same code measured 65,000 and 110,000
    messages per CPU second hours apart here, and a window's steal says whether the host was busy."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 and fields[0] == "cpu" else 0.0


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- worker ----------------------------------------------------------------------------------------

SLOT_KINDS = {"outbound-full-relay": 0, "block-relay": 1}


def track_slots(nd) -> list[int]:
    """[full-relay, block-relay] outbound peers of `nd` past their handshake, kept by the node's own
    connect/disconnect hooks. Counting them from every node's peer list at each report was ~8 % of a
    worker's CPU while 10,000 nodes formed their graph (py-spy): the bench's cost, not the nodes'.
    A peer counts from its verack until it is gone (a closing one for at most CLOSE_GRACE more)."""
    counts = [0, 0]

    def up(peer) -> None:
        i = SLOT_KINDS.get(peer.kind)
        if i is not None:
            counts[i] += 1

    def down(peer) -> None:
        i = SLOT_KINDS.get(peer.kind)
        if i is not None and peer.verack_received:
            counts[i] -= 1

    nd.on_peer_connected, nd.on_peer_disconnected = up, down
    return counts



async def worker(k: int, workers: int, n: int) -> None:
    from harness_node.config import NodeConfig
    from harness_node.host import Host
    from harness_node.net.looplag import INTERVAL
    from harness_node.peering.peerconfig import PeerConfig
    from harness_node.wire.codec import NetAddr

    rss0 = rss_kb()
    mine = list(range(k, n, workers))
    # Core's rule for self-announcement in initial block download, as mainnet-scale.yaml has it: these
    # nodes never see a block, so none announces itself (with the testbed's default every one of
    # 10,000 would at once, and the gossip alone keeps the loops seconds behind: benchmarks.md)
    core_ibd = PeerConfig(self_advertise_in_ibd=False)
    host = Host(NodeConfig(name=f"a{i}", bind=spread_ip(i), port=PORT, seed=i, peering=core_ibd) for i in mine)
    nodes = list(host.nodes.values())
    slots = [track_slots(nd) for nd in nodes]
    now = int(time.time())
    for i, nd in zip(mine, nodes):
        rng = random.Random(i)
        picks = [j for j in rng.sample(range(n), min(KNOWN + 1, n)) if j != i][:KNOWN]
        nd.connman.addrman.add([NetAddr(spread_ip(j), PORT, 9, now - 3600) for j in picks], source_ip="127.1.1.1")
    for nd in nodes:  # listeners first: the dials of every process must find them up
        await nd.start()
    loop = asyncio.get_running_loop()
    lag = nodes[0].lag  # one monitor per loop, shared by every node of this process
    # watched tx -> [nodes here still without it, count holding it, latest first-seen]: a report looks
    # only at the nodes still waiting, where asking every node for every watched tx twice a second
    # was ~2.7 % of a 10,000-node burst's CPU (2.0 of 73.7 CPU-s), counted as the nodes' own
    watched: dict[bytes, list] = {}

    def emit(**fields) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    async def report() -> None:
        while True:
            have = {}
            for txid, w in watched.items():
                if w[0]:
                    waiting = []
                    for nd in w[0]:
                        rec = nd.mempool.record(txid) if txid in nd.mempool else None
                        if rec is None:
                            waiting.append(nd)
                        else:
                            w[1], w[2] = w[1] + 1, max(w[2], rec.first_seen_ns)
                    w[0] = waiting
                have[txid.hex()] = w[1:]
            xs = sorted(list(lag.recent)[-int(5 / INTERVAL):])
            emit(event="status", full=sum(s == [8, 2] for s in slots), rss_kb=rss_kb(), rss0_kb=rss0,
                 full_relay=sum(fr >= 8 for fr, _ in slots), block_relay=sum(br >= 2 for _, br in slots),
                 cpu=time.process_time(), sys_cpu=os.times().system, msgs=sum(nd.stats.messages_total for nd in nodes),
                 gc_cpu=gc_cpu[0], gc_full=gc_full[0],
                 dials=sum(nd.connman.counters["dials"] for nd in nodes),
                 dial_failures=sum(nd.connman.counters["dial_failures"] for nd in nodes),
                 lag_p99=xs[min(len(xs) - 1, int(0.99 * len(xs)))] if xs else None, have=have)
            await asyncio.sleep(REPORT_EVERY)

    # CPU seconds this process spends in the garbage collector, and its full collections (a full one
    # walks every object of ~830 nodes, seconds of CPU), so that (d) says how much of its CPU was
    # collection: (d) varies by a quarter between runs, and this rules the collector in or out
    # (measured: 3.3 of 86.9 CPU-s, no full collection, in a slow run; docs/benchmarks.md)
    gc_cpu, gc_full, gc_start = [0.0], [0], [0.0]

    def gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_cpu[0] += time.process_time() - gc_start[0]
            gc_full[0] += info["generation"] == 2

    gc.callbacks.append(gc_timer)
    emit(event="listening", nodes=len(nodes))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = [loop.create_task(report())]
    rng = random.Random(k)
    while line := (await reader.readline()).decode().split():
        cmd, args = line[0], line[1:]
        if cmd == "dial":
            for nd in nodes:
                nd.start_dialling()
        elif cmd == "watch":
            watched[bytes.fromhex(args[0])] = [nodes, 0, 0]
        elif cmd in ("inject", "burst"):
            count = int(args[0]) if args else 1
            for _ in range(count):
                nd = nodes[0] if cmd == "inject" else rng.choice(nodes)
                tx = nd.inject_tx()
                emit(event="injected", txid=tx.txid.hex(), origin_ns=nd.mempool.record(tx.txid).origin_ns)
        elif cmd == "stop":
            break
    for t in tasks:
        t.cancel()
    await host.stop()


# --- coordinator -----------------------------------------------------------------------------------


class Workers:
    def __init__(self, workers: int, n: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, __file__, str(workers), str(k), str(n)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, bufsize=1) for k in range(workers)]
        self.status: list[dict] = [{} for _ in self.procs]
        self.injected: list[dict] = []
        self.queue: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        for k, p in enumerate(self.procs):  # one reader thread per worker's stdout (not a pool: all at once)
            threading.Thread(target=self._pump, args=(k, p), daemon=True).start()
        listening = 0
        while listening < len(self.procs):
            k, msg = await self.queue.get()
            listening += msg["event"] == "listening"

    def _pump(self, k: int, p: subprocess.Popen) -> None:
        for line in p.stdout:
            msg = json.loads(line)
            if msg["event"] == "status":
                self.status[k] = msg
            elif msg["event"] == "injected":
                self.injected.append(msg)
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (k, msg))

    def send(self, line: str, only: int | None = None) -> None:
        for k, p in enumerate(self.procs):
            if only is None or only == k:
                p.stdin.write(line + "\n")
                p.stdin.flush()

    def total(self, key: str) -> float:
        return sum(s.get(key) or 0 for s in self.status)

    def have(self, txid: str) -> tuple[int, int]:
        got = [s.get("have", {}).get(txid, [0, 0]) for s in self.status]
        return sum(g[0] for g in got), max(g[1] for g in got)

    def stop(self) -> None:
        self.send("stop")
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


async def wait_for(pred, timeout: float, what: str, period: float = 0.1) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(period)
    return time.monotonic() - t0


async def run(n: int, workers: int, progress=print, connect_timeout: float = 300) -> dict:
    w = Workers(workers, n)
    w.loop = asyncio.get_running_loop()
    result: dict = {"nodes": n, "workers": workers}
    try:
        await w.start()
        await wait_for(lambda: all(w.status), 30, "a first status of every worker")
        t0, cpu_dial, sys_dial, steal_dial = time.monotonic(), w.total("cpu"), w.total("sys_cpu"), steal_s()
        gc_dial = w.total("gc_cpu")
        w.send("dial")
        last = [t0]

        def formed() -> bool:  # and every 30 s a line: how far the graph got (a partial run still says it)
            if time.monotonic() - last[0] >= 30 and all(w.status):
                last[0] = time.monotonic()
                lags = [s["lag_p99"] or 0 for s in w.status]
                progress(f"{last[0] - t0:.0f} s: {int(w.total('full'))} of {n} with 8 + 2 "
                         f"({int(w.total('full_relay'))} with 8 full-relay, {int(w.total('block_relay'))} with 2 block-relay), "
                         f"RSS {w.total('rss_kb') / 1024:.0f} MB, worst lag p99 {max(lags) * 1000:.0f} ms")
            return w.total("full") >= n and all(w.status)

        try:
            await wait_for(formed, connect_timeout, "every node 8 + 2 outbound")
            result["connect_s"] = time.monotonic() - t0
        except TimeoutError:
            result["connect_s"] = None
        result["full_nodes"] = int(w.total("full"))
        # what forming the graph cost (handshakes, addr gossip, dials): on 2 cores it is CPU-bound
        result["connect_cpu_s"], result["connect_sys_s"] = w.total("cpu") - cpu_dial, w.total("sys_cpu") - sys_dial
        result["connect_steal_s"] = steal_s() - steal_dial
        # whether forming did only what it must (10 dials a node, none failing) and the collector's share
        result["connect_gc_s"] = w.total("gc_cpu") - gc_dial
        result["dials_per_node"], result["dial_failures"] = w.total("dials") / n, int(w.total("dial_failures"))
        progress(f"connected: {result['full_nodes']} of {n} in {time.monotonic() - t0:.1f} s")
        cpu_idle0, idle0 = w.total("cpu"), time.monotonic()
        await asyncio.sleep(6)  # idle: a full lag window with the network formed
        # CPU the formed network spends doing nothing (timers, pings), in cores: what every later window carries
        result["idle_cores"] = (w.total("cpu") - cpu_idle0) / (time.monotonic() - idle0)
        result["idle_lag_p99_s"] = max(s["lag_p99"] or 0 for s in w.status)
        result["rss_total_mb"] = w.total("rss_kb") / 1024
        result["per_node_kb"] = (w.total("rss_kb") - w.total("rss0_kb")) / n
        reach = []
        for _ in range(3):
            before = len(w.injected)
            w.send("inject 1", only=len(reach) % workers)
            await wait_for(lambda: len(w.injected) > before, 30, "injection")
            tx = w.injected[-1]
            w.send(f"watch {tx['txid']}")
            try:
                await wait_for(lambda: w.have(tx["txid"])[0] >= n, 60, "tx everywhere")
                reach.append((w.have(tx["txid"])[1] - tx["origin_ns"]) / 1e9)
            except TimeoutError:
                progress(f"tx reached {w.have(tx['txid'])[0]} of {n} in 60 s")
                break  # the next ones would not do better: keep the run within its time
        result["reach_all"] = reach
        result["reach_s"] = statistics.median(reach) if reach else None
        await asyncio.sleep(1)
        msgs0, cpu0, before, burst0 = w.total("msgs"), w.total("cpu"), len(w.injected), time.monotonic()
        gc0, full0, sys0, steal0 = w.total("gc_cpu"), w.total("gc_full"), w.total("sys_cpu"), steal_s()
        w.send("burst 2")  # 2 per process: enough traffic that idle timers do not dominate
        await wait_for(lambda: len(w.injected) >= before + 2 * workers, 30, "burst injection")
        burst = [t["txid"] for t in w.injected[before:]]
        for txid in burst:
            w.send(f"watch {txid}")
        try:
            await wait_for(lambda: all(w.have(t)[0] >= n for t in burst), 120, "burst everywhere")
        except TimeoutError:  # still messages per CPU second over the window, said to be partial
            progress(f"burst: {sum(w.have(t)[0] for t in burst)} of {n * len(burst)} deliveries in 120 s")
            result["burst_partial"] = True
        await asyncio.sleep(2 * REPORT_EVERY)  # one more report of every worker: counters after the burst
        result["msgs"] = int(w.total("msgs") - msgs0)
        result["burst_cpu_s"] = w.total("cpu") - cpu0
        result["burst_gc_s"], result["burst_gc_full"] = w.total("gc_cpu") - gc0, int(w.total("gc_full") - full0)
        # the kernel's share (loopback TCP: every message is a send and a receive system call at least)
        result["burst_sys_s"] = w.total("sys_cpu") - sys0
        result["burst_wall_s"] = time.monotonic() - burst0
        result["burst_steal_s"] = steal_s() - steal0
        result["msgs_per_cpu_s"] = result["msgs"] / max(1e-9, result["burst_cpu_s"])
    finally:
        w.stop()
    return result


def workers_needed(n: int, hard: int) -> int:
    """Enough host processes for each to hold its share within its descriptor limit (the local
    backend's own rule, harness.backends.local.capacity), at least one per core."""
    from harness.backends.local.capacity import Limits, workers_for

    return workers_for(n, Limits(nofile_hard=hard, file_max=None, mem_available=None), min_per_worker=1)


if __name__ == "__main__":
    from harness_node.procutil import new_event_loop, raise_fd_limit, tune_gc

    raise_fd_limit()
    tune_gc()  # as a host process does (host.run_host)
    K, k, N = (int(a) for a in sys.argv[1:4])
    loop = new_event_loop()
    loop.run_until_complete(worker(k, K, N))
