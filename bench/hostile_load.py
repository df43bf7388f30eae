"""The hostile-load row of bench_node.py: RSS and CPU of one victim node process, idle and then
under spam peers (oversized and maximum-size invs, garbage frames, maximum-size standard txs).

Each spam peer connects from a fresh loopback address, spams until the victim drops it (a ban, a
disconnect) and comes back from the next address, for the whole window: the victim keeps paying
for new connections, not only for one banned peer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import compact_size
from harness_node.wire.messages import MSG_TX, CInv, msg_inv, msg_tx
from harness_node.wire.synthetic import make_tx

MAGIC = bytes.fromhex("fabfb5da")
MAX_STANDARD_SIZE = 99_000
KINDS = ("oversized-inv", "max-inv", "garbage", "max-size-tx")


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS MB) of `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _sample(pid: int, seconds: float) -> dict[str, float]:
    cpu0, _ = _proc_stat(pid)
    t0, peak = time.monotonic(), 0.0
    while time.monotonic() - t0 < seconds:
        peak = max(peak, _proc_stat(pid)[1])
        await asyncio.sleep(0.1)
    cpu1, rss = _proc_stat(pid)
    return {"cpu_pct": 100 * (cpu1 - cpu0) / (time.monotonic() - t0), "rss_mb": rss, "peak_mb": max(peak, rss)}


async def _spam_once(kind: str, host: str, port: int, local_ip: str, until: float, counts: dict[str, int]) -> None:
    peer = ClientPeer(MAGIC)
    try:
        await peer.connect(host, port, 5, local_ip=local_ip)
        await peer.handshake(5)
    except (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError):
        counts["refused"] += 1
        await peer.close()
        return
    counts["sessions"] += 1
    try:
        while not peer.closed and time.monotonic() < until:
            if kind == "oversized-inv":
                peer.send_frame("inv", compact_size(50_001) + os.urandom(36) * 16)  # Core reads the count only
            elif kind == "max-inv":
                peer.send(msg_inv([CInv(MSG_TX, os.urandom(32)) for _ in range(50_000)]))
            elif kind == "garbage":
                peer.send_frame("tx", os.urandom(2000), bad_checksum=True)
                peer.send_frame("ping", b"\x01")  # undecodable
                peer.send_frame("no-such-cmd", os.urandom(500))
            else:
                peer.send(msg_tx(make_tx(size=MAX_STANDARD_SIZE)))
            counts["messages"] += 1
            await peer.drain()
            await asyncio.sleep(0.05)
    finally:
        await peer.close()


async def _spammer(kind: str, host: str, port: int, ips, until: float, counts: dict[str, int]) -> None:
    while time.monotonic() < until:
        await _spam_once(kind, host, port, next(ips), until, counts)


async def bench_hostile(peers: int = 20, seconds: float = 20.0, ip_prefix: int = 62) -> dict[str, object]:
    """Victim idle for `seconds`, then under `peers` spam peers for `seconds`."""
    victim = f"127.{ip_prefix}.0.1"
    port = 18444
    proc = subprocess.Popen([sys.executable, "-m", "harness_node.cli", "run", "--name", "victim", "--bind", victim,
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                _r, w = await asyncio.open_connection(victim, port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.2)
        idle = await _sample(proc.pid, seconds)
        counts = dict.fromkeys(("sessions", "refused", "messages"), 0)
        ips = (f"127.{ip_prefix + 1 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}" for n in itertools.count())
        until = time.monotonic() + seconds
        spam = [asyncio.ensure_future(_spammer(KINDS[i % len(KINDS)], victim, port, ips, until, counts))
                for i in range(peers)]
        hostile = await _sample(proc.pid, seconds)
        await asyncio.gather(*spam, return_exceptions=True)
        return {"idle": idle, "hostile": hostile, "peers": peers, "seconds": seconds, **counts,
                "alive": proc.poll() is None}
    finally:
        proc.terminate()
        proc.wait(10)
