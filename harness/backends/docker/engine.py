"""The Docker engine, as the docker backend uses it: a labelled network with a subnet of its own,
containers with a static IP and their config copied in, many at once, and removal of exactly what
carries a run's label. The one module that talks to the Docker SDK.
"""

from __future__ import annotations

import io
import ipaddress
import json
import tarfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.backends.base import LABEL_PREFIX
from harness.errors import BackendError

CONFIG_DIR = "/etc/harness-node"
NODE_UID = 10001  # the image's non-root user (node_image/Dockerfile)
PARALLEL = 16  # concurrent engine calls: the engine serialises some work, more threads only queue
REMOVE_PARALLEL = 50  # `docker rm -f` removes up to 50 at once (the CLI's parallel operation); removal mostly waits on kills
STOP_TIMEOUT_SECONDS = 5
API_TIMEOUT_SECONDS = 180  # the SDK's 60 s was exceeded by container creation at load 200 on 2 cores  # docker stop: SIGTERM, then SIGKILL
T = TypeVar("T")


class DockerUnavailable(BackendError):
    """No Docker engine answers, or it refused a request."""


def connect() -> Any:
    """A client of the engine named by the environment (DOCKER_HOST or the local socket)."""
    import docker  # lazy: only the docker backend needs the SDK
    import requests

    try:
        client = docker.from_env(max_pool_size=REMOVE_PARALLEL, timeout=API_TIMEOUT_SECONDS)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise DockerUnavailable(f"no Docker engine answers: {e}") from None
    return client


def run_label(run_id: str) -> str:
    return f"{LABEL_PREFIX}/run={run_id}"


def parallel(fn: Callable[[Any], T], items: Iterable[Any], threads: int = PARALLEL) -> list[T]:
    """fn over items on ``threads`` threads; the first error is raised after all finished."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        results, error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # noqa: BLE001 - re-raised below, after every call has finished
                error = error or e
    if error:
        raise error
    return results


def create_network(client: Any, name: str, subnets: list[str], labels: dict[str, str]) -> tuple[Any, str]:
    """A bridge network with the first of ``subnets`` the engine accepts (others may be taken by
    other networks on the engine). Returns (network, subnet)."""
    import docker

    last = ""
    for subnet in subnets:
        gateway = str(ipaddress.ip_network(subnet).network_address + 1)  # monitor.gateway relies on it
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
        try:
            return client.networks.create(name, driver="bridge", ipam=ipam, labels=labels, check_duplicate=True), subnet
        except docker.errors.APIError as e:
            last = str(e.explanation or e)
            if "overlap" not in last.lower() and "already" not in last.lower():
                raise BackendError(f"cannot create network {name}: {last}") from None
    raise BackendError(f"no free subnet for network {name} after {len(subnets)} tries (last: {last})")


def archive(files: dict[str, bytes], mode: int, uid: int = 0) -> bytes:
    """A tar of ``files`` (name -> content), each with ``mode`` and owner ``uid``, for put_archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(raw), mode, int(time.time()), uid, uid
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def config_archive(files: dict[str, Any]) -> bytes:
    """JSON files owned by the image's user, mode 0600 (they hold the control token)."""
    return archive({name: json.dumps(data, indent=1).encode() for name, data in files.items()}, 0o600, NODE_UID)


def create_container(client: Any, *, image: str, name: str, command: list[str], labels: dict[str, str],
                     network: str, ip: str, files: dict[str, Any], limits: dict[str, Any]) -> str:
    """Create (not start) a container on ``network`` at ``ip`` with ``files`` in CONFIG_DIR.
    ``limits``: docker host-config resource keys (mem_limit, nano_cpus, pids_limit)."""
    api = client.api
    host_config = api.create_host_config(
        cap_drop=["ALL"], security_opt=["no-new-privileges"], init=False, **limits,
    )
    networking = api.create_networking_config({network: api.create_endpoint_config(ipv4_address=ip)})
    created = api.create_container(image, command=command, name=name, labels=labels, host_config=host_config,
                                   networking_config=networking, stop_signal="SIGTERM")
    cid = created["Id"]
    api.put_archive(cid, CONFIG_DIR, config_archive(files))
    return cid


def run_aux(client: Any, *, name: str, labels: dict[str, str], files: dict[str, str] | None = None,
            directory: str = "", network: str = "", ip: str = "", **kwargs: Any) -> Any:
    """Create and start a helper container (monitoring): ``files`` (name -> text, mode 0644) copied
    into ``directory`` first; on ``network`` at ``ip`` if given. Pulls the image if missing."""
    import docker

    image = kwargs.pop("image")
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
        except docker.errors.APIError as e:
            raise BackendError(f"image {image} is not on the engine and cannot be pulled ({e.explanation or e}); "
                               f"build one with `harness image build --prometheus` or name another") from None
    if network:
        kwargs.update(network=network, networking_config={network: client.api.create_endpoint_config(ipv4_address=ip or None)})
    container = client.containers.create(image, name=name, labels=labels, detach=True, **kwargs)
    if files:
        container.put_archive(directory, archive({n: t.encode() for n, t in files.items()}, 0o644))
    container.start()
    return container


def start(client: Any, cid: str) -> None:
    client.api.start(cid)


def create_and_start(client: Any, spec: dict[str, Any]) -> str:
    """create_container, then start it at once: on a pool of threads a container's interpreter is
    already importing while the engine creates the next ones (create all, then start all, kept every
    container waiting for the slowest create; docs/benchmarks.md)."""
    cid = create_container(client, **spec)
    start(client, cid)
    return cid


PAUSE_TRIES = 5


def pause(container: Any) -> None:
    """docker pause, tried again when the freezer gives up ("unable to freeze": the kernel could not
    stop every task of the cgroup in time, seen at load 100 on 2 cores); the last failure is raised."""
    import docker

    for attempt in range(PAUSE_TRIES):
        try:
            container.pause()
            return
        except docker.errors.APIError as e:
            if "freeze" not in str(e) or attempt == PAUSE_TRIES - 1:
                raise
            time.sleep(1.0)


@dataclass(frozen=True)
class Listed:
    """A container as one list call describes it (no inspect)."""

    id: str
    name: str
    member: str  # its harness.io/member label
    status: str  # created | running | paused | restarting | exited | dead | removing

    @classmethod
    def of(cls, raw: dict[str, Any]) -> "Listed":
        return cls(raw["Id"], (raw.get("Names") or ["/"])[0].lstrip("/"),
                   (raw.get("Labels") or {}).get(f"{LABEL_PREFIX}/member", ""), raw.get("State", ""))


def run_containers(client: Any, run_id: str) -> list[Listed]:
    """The run's containers in one engine call. The SDK's `containers.list` inspects each one after
    another (a second per 30 containers on a busy engine), and the readiness wait asks every poll."""
    return [Listed.of(r) for r in client.api.containers(all=True, filters={"label": run_label(run_id)})]


def of_run(client: Any, run_id: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Everything carrying the run's label: (containers, networks, volumes)."""
    selector = {"label": run_label(run_id)}
    return (client.containers.list(all=True, filters=selector), client.networks.list(filters=selector),
            client.volumes.list(filters=selector))


def remove_run(client: Any, run_id: str, phases: dict[str, float] | None = None
               ) -> tuple[dict[str, int], dict[str, int], dict[str, list[str]]]:
    """Remove every container, network and volume labelled with ``run_id``, and nothing else.
    Returns (removed, forced, left) by kind. Containers are removed with force (a kill): their
    state lives nowhere that matters after a run. ``phases``, if given, receives the seconds each
    step took (bench/bench_docker.py reports them).

    Containers are listed with one call (run_containers) and removed REMOVE_PARALLEL at a time, as
    `docker rm -f` does."""
    import docker

    timer = Phases(phases)
    selector = {"label": run_label(run_id)}
    containers = run_containers(client, run_id)
    networks, volumes = client.networks.list(filters=selector), client.volumes.list(filters=selector)
    timer.mark("list")

    def rm_container(c: Listed) -> bool:
        deadline = time.monotonic() + REMOVE_RETRY_SECONDS
        while True:
            try:
                client.api.remove_container(c.id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                # a loaded engine may answer "tried to kill container, but did not receive an exit
                # event": try again; past the deadline it is reported in `left`, not raised
                if time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
            return c.status in ("running", "paused", "restarting")

    forced = sum(parallel(rm_container, containers, REMOVE_PARALLEL))
    timer.mark("containers")
    for n in networks:
        _remove_network(n, [c.name for c in containers])
    timer.mark("networks")
    for v in volumes:
        try:
            v.remove(force=True)
        except docker.errors.NotFound:
            pass
    timer.mark("volumes")
    left_c = run_containers(client, run_id)
    left_n, left_v = client.networks.list(filters=selector), client.volumes.list(filters=selector)
    timer.mark("verify")
    removed = {"container": len(containers) - len(left_c), "network": len(networks) - len(left_n),
               "volume": len(volumes) - len(left_v)}
    left = {"container": [c.name for c in left_c], "network": [n.name for n in left_n],
            "volume": [v.name for v in left_v]}
    return removed, {"container": forced}, left


class Phases:
    """Seconds since the previous mark, by name, into ``into`` (nothing if None)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into, self.last = into, time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        if self.into is not None:
            self.into[name] = self.into.get(name, 0.0) + now - self.last
        self.last = now


REMOVE_RETRY_SECONDS = 60.0  # a container the engine failed to kill (seen at load 200) is retried this long
NETWORK_RETRY_SECONDS = 60.0  # a loaded engine was seen to hold a removed container's endpoint > 10 s


def _remove_network(network: Any, names: list[str]) -> None:
    """Remove ``network``; the engine may still hold an endpoint of a container removed a moment
    ago ("has active endpoints"): disconnect what is left, with force, and try again.

    The engine can also keep an endpoint that no inspect lists, 0 containers on the network and
    still "active endpoints" (seen once in CI, after a run of 33 containers; moby issue 33156).
    A forced disconnect by the removed container's name (``names``) is what deletes such an endpoint
    (the workaround reported there), so when nothing is listed each name is tried once."""
    import docker

    deadline = time.monotonic() + NETWORK_RETRY_SECONDS
    unlisted = list(names)
    while True:
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                return  # reported in `left` by the caller
            try:
                network.reload()
                listed = list(network.attrs.get("Containers") or {})
            except docker.errors.APIError:
                listed = []
            for target in listed or unlisted:
                try:
                    network.disconnect(target, force=True)
                except docker.errors.APIError:
                    pass  # not attached (any more): the usual answer for a name
            if not listed:
                unlisted = []
            time.sleep(0.5)
