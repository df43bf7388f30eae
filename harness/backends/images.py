"""The node container image: build it from node_image/ with the Docker SDK.

One image serves every role (node, seeder, host); the docker backend and tests/node/test_image.py
build it here so the build context, build argument and error handling live in one place.
"""

from __future__ import annotations

import io
import pathlib
import subprocess
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    import docker

# Where the default base (python:3.12-slim) cannot be pulled, a base of this name built locally
# (by the CI set-up) is used instead: `--build-arg BASE_IMAGE=harness-base:bookworm`.
LOCAL_BASE_IMAGE = "harness-base:bookworm"
_LOG_TAIL_LINES = 20  # of the build log, quoted in an ImageBuildError


class ImageBuildError(HarnessError):
    """The node image could not be built (no engine, no context, a failing build step)."""


def node_image_context() -> pathlib.Path:
    """node_image/ (Dockerfile, pyproject.toml, harness_node/): the directory harness_node lives in.

    Present in a source checkout (the editable install); a wheel install of harness ships no Dockerfile.
    """
    import harness_node

    context = pathlib.Path(harness_node.__file__).resolve().parents[1]
    if not (context / "Dockerfile").is_file():
        raise ImageBuildError(f"no Dockerfile in {context}: building the node image needs a source checkout "
                              "of harness installed with `pip install -e .`")
    return context


def _client(client: docker.DockerClient | None) -> docker.DockerClient:
    import docker  # lazy: only the docker backend and its tests need the SDK

    if client is not None:
        return client
    try:
        return docker.from_env()
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"no Docker engine answers: {e}") from None


def _check_base(client: docker.DockerClient, base_image: str) -> None:
    import docker

    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(f"base image {base_image} is not on the Docker engine (it is never pulled); "
                              f"build or load it first") from None


def _build(client: docker.DockerClient, tag: str, **kwargs: Any) -> str:
    import docker

    try:
        image, _ = client.images.build(tag=tag, pull=False, rm=True, forcerm=True, **kwargs)
    except docker.errors.BuildError as e:
        lines = [str(chunk.get("stream") or chunk.get("error") or "").rstrip() for chunk in e.build_log]
        tail = "\n".join([line for line in lines if line][-_LOG_TAIL_LINES:])
        raise ImageBuildError(f"building {tag} failed: {e.msg}\n{tail}") from None
    except docker.errors.APIError as e:
        raise ImageBuildError(f"building {tag} failed: {e.explanation or e}") from None
    return str(image.id)


# Prometheus from the base image and the distribution's package, for machines that cannot pull
# prom/prometheus. The base must be Debian-like (apt-get); the monitoring stack runs it with the
# same flags as the official image (ENTRYPOINT the binary, config in /etc/prometheus).
PROMETHEUS_DOCKERFILE = """\
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
USER root
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
"""


def build_prometheus_image(tag: str, base_image: str | None = None, client: docker.DockerClient | None = None) -> str:
    """Build PROMETHEUS_DOCKERFILE as ``tag`` on ``base_image`` (never pulled; None: debian:bookworm-slim,
    pulled if missing) and return the image id."""
    client = _client(client)
    if base_image:
        _check_base(client, base_image)
    return _build(client, tag, fileobj=io.BytesIO(PROMETHEUS_DOCKERFILE.encode()),
                  buildargs={"BASE_IMAGE": base_image} if base_image else {})


# Putting a built image into a local cluster's nodes: the clusters' own CLIs do it.
LOADERS = {"kind": ["kind", "load", "docker-image"], "minikube": ["minikube", "image", "load"]}


def load_command(tag: str, cluster: str) -> list[str]:
    """The command line that loads image ``tag`` into a local ``cluster`` (kind or minikube)."""
    if cluster not in LOADERS:
        raise ImageBuildError(f"cannot load into {cluster!r}: choose one of {sorted(LOADERS)}")
    return [*LOADERS[cluster], tag]


def load_image(tag: str, cluster: str, run: Any = subprocess.run) -> None:
    """Run `load_command` (an argument list, no shell); ``run`` is subprocess.run."""
    command = load_command(tag, cluster)
    try:
        result = run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ImageBuildError(f"`{command[0]}` is not installed: cannot load {tag} into {cluster}") from None
    if result.returncode != 0:
        raise ImageBuildError(f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")


def build_node_image(tag: str, base_image: str | None = None, client: docker.DockerClient | None = None) -> str:
    """Build node_image/ as `tag` and return the image id ("sha256:...").

    base_image: passed as the BASE_IMAGE build argument and must already be on the engine (it is
    never pulled); None: the Dockerfile's default base, which the engine pulls if it lacks it.
    Cached layers are reused. client: a docker.DockerClient (default docker.from_env()).
    """
    client = _client(client)
    if base_image:
        _check_base(client, base_image)
    return _build(client, tag, path=str(node_image_context()), buildargs={"BASE_IMAGE": base_image} if base_image else {})
