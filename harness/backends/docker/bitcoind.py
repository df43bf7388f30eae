"""bitcoind members on Docker: their image and their member config.

The image is the node image (built from the base, `harness image build`) with the bitcoind binary
copied in: the same binary the local backend runs (`--bitcoind PATH`, $HARNESS_BITCOIND, or the one
scripts/fetch-bitcoind.sh fetched), so an offline machine needs no registry. Its tag is derived
from the binary's and the node image's digests, so it is built once and rebuilt when either
changes. A member runs `harness-node bitcoind` (the supervisor, harness_node/bitcoind/) alone in
its container, on the container's IP; the transport tables translate both ways (layout.py):
light nodes attribute its connections to its planned address, and it reports its peers by theirs.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

from harness.backends.docker.layout import Layout, endpoints_table, inbound_table
from harness.backends.images import _build
from harness.backends.local import bitcoind as btc
from harness.plan.model import NodePlan, Plan

BINARY_IN_IMAGE = "/usr/local/bin/bitcoind"
IMAGE_REPOSITORY = "harness-bitcoind"
# The node image's user is 10001 (node_image/Dockerfile); the binary must be runnable by it.
DOCKERFILE = f"""\
ARG NODE_IMAGE
FROM ${{NODE_IMAGE}}
USER root
COPY bitcoind {BINARY_IN_IMAGE}
RUN chmod 0755 {BINARY_IN_IMAGE} && {BINARY_IN_IMAGE} -version >/dev/null
USER 10001:10001
"""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_tag(binary: str, node_image_id: str) -> str:
    return f"{IMAGE_REPOSITORY}:{hashlib.sha256(f'{_sha256(binary)} {node_image_id}'.encode()).hexdigest()[:16]}"


def _context(binary: str) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE.encode())
        tar.addfile(info, io.BytesIO(DOCKERFILE.encode()))
        tar.add(binary, arcname="bitcoind")
    out.seek(0)
    return out


def ensure_image(client: Any, node_image: str, binary: str) -> str:
    """The bitcoind image for this node image and binary: built now if the engine lacks it."""
    import docker

    tag = image_tag(binary, client.images.get(node_image).id)
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        _build(client, tag, fileobj=_context(binary), custom_context=True, buildargs={"NODE_IMAGE": node_image})
    return tag


def resolve(path: str | None, plan: Plan) -> str:
    """The binary, checked against the scenario's magic before anything starts (exit 2 otherwise)."""
    binary = btc.resolve_binary(path)
    btc.check_binary(plan, binary)
    if any(n.role == "bitcoind" and n.config.get("capture") for n in plan.peers()):
        raise btc.BitcoindUnavailable(
            "the scenario's network.capture: true also captures the bitcoind members' messages, which works on "
            "the local backend only (from the outside: docs/capture.md); allowed on docker: network.capture: "
            "false (capture light nodes with groups[i].capture)")
    return binary


def member_config(spec: NodePlan, plan: Plan, lay: Layout, datadir: str, token: str) -> dict[str, Any]:
    """The supervisor's config (harness_node.bitcoind.launch.BitcoindConfig) inside its container:
    bitcoind binds the container IP and dials its -connect peers at their container endpoints."""
    ip, p2p, control = lay.endpoint(spec.name)
    endpoints = endpoints_table(plan, lay)  # planned ip -> "container ip:port"
    peer_addresses = {transport: planned for planned, transport in endpoints.items()}
    for container_ip, planned in inbound_table(plan, lay).items():
        if len(planned) == 1:  # a packed container's IP stands for several nodes: only ip:port tells them apart
            peer_addresses[container_ip] = planned[0]
    connect = [endpoints[peer.rpartition(":")[0]] for peer in spec.config.get("connect", [])]
    local = btc.member_config(spec, BINARY_IN_IMAGE, Path(datadir), token)
    return dict(local, address=ip, port=p2p, control_port=control, rpc_port=control + 1, connect=connect,
                identity=spec.address, peer_addresses=peer_addresses,
                capture_interface="", capture=False)  # capture from the outside: local backend only
