"""The docker backend against raw `docker run` / `docker rm -f` of the same image, same run.

    python bench/bench_docker.py [--nodes 30 100] [--packed 1000] [--per-container 100] [--base IMAGE]

For each N: (1) `harness deploy --wait` of an N-node scenario without a seeder (one container per
node, and the controller process; runner.deploy), then `harness down` (DockerBackend.down); (2) N
containers of the same image started one `docker run -d` after another (as a shell loop would)
until each answers GET /status, then one `docker rm -f` of all. Memory per node container from the
engine's stats (usage minus page cache) of (1). Where `up`'s time went: the backend's own steps
(state.backend_state["up_phases"]: image check, network, layout, containers created and started),
then, from deploy's progress events, spawning the controller, waiting until every node answers,
and until the controller serves; raw's `docker run` loop and its wait for answers. Where `down`'s
time went (DockerBackend.down_phases: controller stop, listing, container removal, network removal
with its retries, volumes, the final check that nothing is left). Then `--packed` nodes packed
`--per-container` to a container: up, ready, memory, down. Prints a table
(markdown rows for docs/benchmarks.md). Everything it creates carries a label of its own run id
and is removed at the end, whatever happens; nothing else on the engine is touched.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.backends.docker.backend import DockerBackend  # noqa: E402
from harness.backends.images import LOCAL_BASE_IMAGE, build_node_image  # noqa: E402
from harness.run import progress, runner  # noqa: E402
from harness.run.rundir import RunDir  # noqa: E402

TAG = "harness-node:bench"


def scenario(tmp: Path, nodes: int, per_container: int) -> Path:
    path = tmp / f"bench-{nodes}-{per_container}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"bench-docker-{nodes}", "duration": "10m", "seeder": {"enabled": False},
        "network": {"nodes": nodes}, "deploy": {"nodes_per_container": per_container}}))
    return path


def harness_cycle(tmp: Path, nodes: int, per_container: int) -> dict[str, float]:
    """As `harness deploy --backend docker --wait` then `harness down`: with the controller."""
    run = RunDir(tmp / f"run-{nodes}-{per_container}")
    marks: dict[str, float] = {}  # progress event -> seconds since t0, first occurrence

    def on_event(name: str, _data: object) -> None:
        marks.setdefault(name, time.monotonic() - t0)

    t0, up = time.monotonic(), float("nan")  # nan: up failed (the traceback says why)
    try:
        runner.deploy(scenario(tmp, nodes, per_container), "docker", run.path, wait=True, options={"image": TAG},
                      on_event=on_event)
        up = time.monotonic() - t0
        be = DockerBackend(run, image=TAG)
        steps = dict(be.state().backend_state.get("up_phases", {}))
        steps.update(up_steps(marks, up))
        print(f"  up {nodes}/{per_container} by step: " + " ".join(f"{k} {v:.1f}" for k, v in steps.items()), flush=True)
        time.sleep(5)  # let the nodes settle before sampling memory
        mem = container_memory(be.client, be.state().run_id)
    finally:
        be = DockerBackend(run, image=TAG)
        t1 = time.monotonic()
        summary = be.down()
        down = time.monotonic() - t1
    phases = " ".join(f"{k} {v:.1f}" for k, v in be.down_phases.items())
    print(f"  up {nodes}/{per_container}: {up:.1f} s; down: {down:.1f} s ({phases})", flush=True)
    assert summary.clean, summary
    return {"up": up, "down": down, "mem_total": sum(mem), "mem_per_container": statistics.mean(mem), "containers": len(mem)}


def up_steps(marks: dict[str, float], up: float) -> dict[str, float]:
    """deploy's steps around the backend's `up`, from the times its progress events arrived."""
    at = [marks.get(e, float("nan")) for e in (progress.STARTING_NODES, progress.STARTING_CONTROLLER,
                                               progress.WAITING_FOR_NODES, progress.NODES_READY)]
    at.append(up)
    names = ["planning", "backend_up", "controller_spawn", "nodes_ready", "controller_serves"]
    return {name: end - start for name, start, end in zip(names, [0.0, *at], at)}


def container_memory(client: docker.DockerClient, run_id: str) -> list[float]:
    containers = client.containers.list(filters={"label": f"harness.io/run={run_id}"})

    def one(c: docker.models.containers.Container) -> float:
        m = c.stats(stream=False)["memory_stats"]
        cache = m.get("stats", {}).get("inactive_file", m.get("stats", {}).get("cache", 0))
        return (m["usage"] - cache) / 2**20

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, containers))


def answers(ip: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/status", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def raw_cycle(nodes: int) -> dict[str, float]:
    """`docker run -d` one after another on the default bridge, each node's control API on its
    container IP, then until all answer; `docker rm -f` of all of them in one command."""
    label = f"harness.io/run=bench-raw-{secrets.token_hex(4)}"
    names = [f"bench-raw-{secrets.token_hex(3)}-{i}" for i in range(nodes)]
    client = docker.from_env()
    token = secrets.token_hex(16)  # a control API off loopback has a token, as the backend's nodes have
    t0 = time.monotonic()
    try:
        for name in names:
            subprocess.run(["docker", "run", "-d", "--name", name, "--label", label, TAG, "run", "--bind", "0.0.0.0",
                            "--control-port", "18445", "--control-bind", "0.0.0.0", "--token", token], check=True, capture_output=True)
        runs = time.monotonic() - t0
        ips = [client.containers.get(n).attrs["NetworkSettings"]["IPAddress"] for n in names]
        pending = set(ips)
        while pending:
            pending = {ip for ip in pending if not answers(ip, 18445)}
            time.sleep(0.2)
        up = time.monotonic() - t0
        print(f"  raw up {nodes}: {up:.1f} s (docker run loop {runs:.1f} s, then answering {up - runs:.1f} s)", flush=True)
    finally:
        t1 = time.monotonic()
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        down = time.monotonic() - t1
    left = client.containers.list(all=True, filters={"label": label})
    assert not left, left
    return {"up": up, "down": down}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="*", default=[30, 100])
    parser.add_argument("--packed", type=int, default=1000, help="0: skip")
    parser.add_argument("--per-container", type=int, default=100)
    parser.add_argument("--base", default=LOCAL_BASE_IMAGE)
    args = parser.parse_args()
    build_node_image(TAG, args.base)
    print(f"load before: {Path('/proc/loadavg').read_text().split()[:3]}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nodes:
            h = harness_cycle(Path(tmp), n, 1)
            r = raw_cycle(n)
            rows.append(f"| {n} | {h['up']:.1f} s | {r['up']:.1f} s | {h['up'] / r['up']:.2f}x | {h['down']:.1f} s | "
                        f"{r['down']:.1f} s | {h['down'] / r['down']:.2f}x | {h['mem_per_container']:.1f} MiB |")
            print(rows[-1], flush=True)
        if args.packed:
            p = harness_cycle(Path(tmp), args.packed, args.per_container)
            rows.append(f"| {args.packed} packed, {args.per_container}/container ({p['containers']} containers) | "
                        f"{p['up']:.1f} s | — | — | {p['down']:.1f} s | — | — | "
                        f"{p['mem_total'] / args.packed:.2f} MiB per node ({p['mem_total']:.0f} MiB) |")
            print(rows[-1], flush=True)
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("| Nodes | harness up | raw up | ratio | harness down | raw down | ratio | memory per container |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
